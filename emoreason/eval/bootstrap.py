"""Seeded percentile bootstrap confidence intervals for headline scores."""
from __future__ import annotations

import numpy as np


def bootstrap_ci(values: list[float], resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
                 scale: float = 1.0) -> dict[str, float]:
    """Mean of ``values`` x ``scale`` with a percentile bootstrap interval.

    ``values`` (N,) per-item scores (e.g. 0/1 judge ratings; scale 100 gives a 0-100 score).
    Resampling is vectorised: one (resamples, N) index matrix from ``numpy.random.default_rng(seed)``,
    so the interval is reproducible. Returns ``{"mean", "low", "high", "n"}``.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return {"mean": 0.0, "low": 0.0, "high": 0.0, "n": 0}
    rng = np.random.default_rng(seed)
    # Chunk so 10k items x 1000 resamples stays small in memory.
    means = []
    chunk = max(1, 2_000_000 // x.size)
    for start in range(0, resamples, chunk):
        n = min(chunk, resamples - start)
        means.append(x[rng.integers(0, x.size, size=(n, x.size))].mean(axis=1))
    boot = np.concatenate(means)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha])
    return {"mean": float(x.mean() * scale), "low": float(low * scale), "high": float(high * scale), "n": int(x.size)}


def bootstrap_ratio_ci(numerators: list[float], denominators: list[float], resamples: int = 1000,
                       confidence: float = 0.95, seed: int = 0, scale: float = 1.0) -> dict[str, float]:
    """sum(numerators) / sum(denominators) x ``scale`` with a percentile bootstrap interval.

    Items are resampled as (numerator, denominator) pairs, so the interval is that of a pooled
    ratio such as corpus WER (errors / reference words), not of the mean per-item ratio.
    Returns ``{"value", "low", "high", "n"}``.
    """
    num = np.asarray(numerators, dtype=np.float64)
    den = np.asarray(denominators, dtype=np.float64)
    if num.shape != den.shape:
        raise ValueError(f"{num.size} numerators but {den.size} denominators")
    if num.size == 0:
        return {"value": 0.0, "low": 0.0, "high": 0.0, "n": 0}
    rng = np.random.default_rng(seed)
    ratios = []
    chunk = max(1, 2_000_000 // num.size)
    for start in range(0, resamples, chunk):
        idx = rng.integers(0, num.size, size=(min(chunk, resamples - start), num.size))
        ratios.append(num[idx].sum(axis=1) / np.maximum(den[idx].sum(axis=1), 1.0))
    boot = np.concatenate(ratios)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha])
    value = num.sum() / max(den.sum(), 1.0)
    return {"value": float(value * scale), "low": float(low * scale), "high": float(high * scale), "n": int(num.size)}


def bootstrap_balanced_ci(values: list[float], groups: list[str], resamples: int = 1000, confidence: float = 0.95,
                          seed: int = 0, scale: float = 1.0) -> dict[str, float]:
    """Mean over groups of each group's mean ``values`` (balanced accuracy when ``values`` are 0/1
    hits and ``groups`` the gold classes) x ``scale``, with a percentile bootstrap interval.

    Items are resampled as a whole (as for :func:`bootstrap_ci`), so a class's share varies between
    resamples like it would between test sets; a class absent from a resample is left out of that
    resample's mean. ``values`` / ``groups`` (N,). Returns ``{"mean", "low", "high", "n"}``.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size != len(groups):
        raise ValueError(f"{x.size} values but {len(groups)} groups")
    if x.size == 0:
        return {"mean": 0.0, "low": 0.0, "high": 0.0, "n": 0}
    names = sorted(set(groups))
    g = np.asarray([names.index(name) for name in groups])
    onehot = np.eye(len(names))[g]  # (N, G)

    def balanced(idx: np.ndarray) -> np.ndarray:
        """(R, N) resample indices -> (R,) balanced means."""
        counts = onehot[idx].sum(axis=1)  # (R, G)
        sums = (onehot[idx] * x[idx][..., None]).sum(axis=1)  # (R, G)
        present = counts > 0
        return np.where(present, sums / np.maximum(counts, 1), 0.0).sum(axis=1) / present.sum(axis=1)

    rng = np.random.default_rng(seed)
    means = []
    chunk = max(1, 2_000_000 // (x.size * len(names)))
    for start in range(0, resamples, chunk):
        means.append(balanced(rng.integers(0, x.size, size=(min(chunk, resamples - start), x.size))))
    boot = np.concatenate(means)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha])
    value = balanced(np.arange(x.size)[None, :])[0]
    return {"mean": float(value * scale), "low": float(low * scale), "high": float(high * scale), "n": int(x.size)}
