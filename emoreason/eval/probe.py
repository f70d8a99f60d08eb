"""Linear-probe baseline: what the frozen emotion encoder knows, measured without the LLM.

    emoreason eval probe --model runs/mini --train train.jsonl --manifest test.jsonl --out eval/probe

Each clip goes through the emotion encoder alone (no padding: the frames are those of the clip's
own audio); its frames (T, d) are pooled to mean and standard deviation over time (2d,). A
logistic regression (standardised features, L2, scikit-learn) is fitted on the training
manifest's emotion rows and scored on the test manifest's emotion rows, the same split the
AudioLLM was trained and evaluated on. Pooled features are cached per clip, so a second probe
(another C, another test set) encodes only new clips.

Why a probe: the AudioLLM's emotion side is this encoder plus an adapter and an LLM. If it scores
far below a logistic regression on the same frozen frames, the recipe, not the encoder, is what
loses the information (issue 12 item 3; the paper's emotion2vec+ classifier row plays the same
role). ``probe.json`` holds accuracy, unweighted accuracy (95 % bootstrap CIs over clips),
per-class numbers and the confusion matrix.
"""
from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from emoreason.errors import UserError
from emoreason.jsonl import atomic_write

PROBE_FILE = "probe.json"
GAP_POINTS = 5.0
"""An AudioLLM more than this many unweighted-accuracy points below the probe is called out."""


@dataclass
class ProbeEncoder:
    """A frozen frame encoder and what its input is (``mel`` or ``wave``), with a cache key."""

    module: torch.nn.Module
    spec: Any
    """The processor's :class:`~emoreason.model.processing.FeatureSpec` for this encoder."""
    key: str
    """Identifies the weights: cached features of another encoder are never reused."""


def encoder_from_config(cfg: Any, weights_from: Path | None = None) -> ProbeEncoder:
    """The emotion encoder of a ``ModelConfig``. Pretrained frozen encoders are built from their
    spec alone; a trained or randomly initialised one needs ``weights_from`` (a saved model
    directory, whose whole model is loaded to take its encoder)."""
    from emoreason.model.builder import build_encoder, load_pretrained

    enc = cfg.emotion_encoder
    if enc is None or cfg.fusion == "none":
        raise UserError("this model has no emotion encoder (fusion none): give --config or --encoder-config "
                        "with one to probe")
    from_spec = enc.init == "pretrained" and not enc.trainable
    if not from_spec and weights_from is None:
        raise UserError(f"the emotion encoder ({enc.type} {enc.path}, init {enc.init}, trainable {enc.trainable}) "
                        "has no fixed weights without a trained model: give --model RUN_DIR")
    module, spec = build_encoder(enc, "emotion_encoder")
    if from_spec:
        key = f"{enc.type}|{enc.path}|{enc.dynamic_length}"
    else:
        model, _ = load_pretrained(weights_from, device="cpu")
        module = model.encoders["emotion"]
        digest = hashlib.sha256()
        for name, p in sorted(module.state_dict().items()):
            digest.update(name.encode())
            digest.update(p.detach().float().cpu().numpy().tobytes()[:4096])
        key = f"{enc.type}|{weights_from}|{digest.hexdigest()[:16]}"
    return ProbeEncoder(module.eval(), spec, hashlib.sha256(key.encode()).hexdigest()[:16])


def resolve_encoder(model: str | None, config: str | None, overrides: list[str] | None = None) -> ProbeEncoder:
    """``--model`` (a run directory or its ``final/``) or ``--config`` (packaged name or YAML)."""
    from emoreason.model.builder import read_config

    if model:
        path = Path(model)
        final = path / "final" if (path / "final").is_dir() else path
        try:
            cfg = read_config(final)
        except Exception as e:  # ConfigError: not a saved model directory
            raise UserError(f"--model {model}: {e}") from None
        return encoder_from_config(cfg, final)
    from emoreason.config import load_config
    from emoreason.configs import find_config

    return encoder_from_config(load_config(find_config(config or "mini"), overrides).model)


@torch.inference_mode()
def pooled_features(encoder: ProbeEncoder, wave: np.ndarray, frame_cache: Any = None) -> np.ndarray:
    """One clip, float32 (S,) at 16 kHz -> (2d,) mean and standard deviation of its frames.

    Only frames that cover the clip's own samples are pooled (a fixed 30 s Whisper window is
    encoded whole but its padding frames are left out). ``frame_cache``: a
    :class:`~emoreason.model.frame_cache.FrameCache` to take the frames from (and fill): a
    training run's cache of the same frozen encoder holds its clips' frames already, computed
    from the same features (the demo's probe reuses its variants' cache)."""
    spec = encoder.spec
    wave = np.asarray(wave, dtype=np.float32)[: 30 * 16000]
    if spec.kind == "mel":
        from transformers import WhisperFeatureExtractor

        mel = WhisperFeatureExtractor(feature_size=spec.num_mel_bins, sampling_rate=16000)(
            [wave], sampling_rate=16000, padding="max_length", return_tensors="np")["input_features"]
        if spec.dynamic_length:  # the clip's own length, rounded up to the adapter group (as in training)
            mel = mel[:, :, : spec.tokens_for(wave.size) * spec.group * 2]
        mel = torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32))
        frames, _ = encoder.module(mel) if frame_cache is None else frame_cache.encode(encoder.module, mel)
        real = max(1, min(frames.shape[1], -(-wave.size // 320)))  # 160-sample hop, stride-2 conv
    else:
        if spec.normalize:
            wave = (wave - wave.mean()) / np.sqrt(wave.var() + spec.normalize_eps)
        samples = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))[None]
        frames, _ = encoder.module(samples) if frame_cache is None else frame_cache.encode(encoder.module, samples)
        real = frames.shape[1]
    x = frames[0, :real].float()  # (T, d)
    return torch.cat([x.mean(0), x.std(0, unbiased=False)]).numpy()


def clip_features(encoder: ProbeEncoder, audio_paths: list[Path], cache_dir: Path | None,
                  progress: Callable[[int, int], None] | None = None, frame_cache: Any = None) -> np.ndarray:
    """(N, 2d) pooled features of ``audio_paths``, from ``cache_dir`` where already computed
    (``frame_cache``: see :func:`pooled_features`)."""
    from emoreason.audio import load_audio

    out = []
    folder = cache_dir / encoder.key if cache_dir is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(audio_paths):
        cached = None
        if folder is not None:
            stat = path.stat()
            name = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:24]
            cached = folder / f"{name}.npy"
            if cached.is_file():
                out.append(np.load(cached))
                continue
        feats = pooled_features(encoder, load_audio(path), frame_cache)
        if cached is not None:
            tmp = cached.with_suffix(".tmp.npy")
            np.save(tmp, feats)
            tmp.replace(cached)  # atomic: a killed run never leaves half a feature file
        out.append(feats)
        if progress:
            progress(i + 1, len(audio_paths))
    return np.stack(out)


def labelled_clips(manifest: str | Path, task: str, purpose: str, split: str | None = None
                   ) -> tuple[list[str], list[Path], list[str]]:
    """(ids, audio paths, gold labels) of the manifest's ``task`` rows that have a label (of
    ``split`` only, when given)."""
    from emoreason.data.manifest import read_manifest, resolve_audio

    rows = [r for r in read_manifest(manifest) if r.task == task and r.label and (split is None or r.split == split)]
    if not rows:
        raise UserError(f"{manifest}: no labelled {task} rows{f' in split {split}' if split else ''} to {purpose}")
    return [r.id for r in rows], [Path(resolve_audio(r, manifest)) for r in rows], [r.label for r in rows]


def bootstrap_accuracies(gold: list[str], pred: list[str], resamples: int = 1000, seed: int = 0) -> dict[str, list[float]]:
    """95 % percentile intervals of accuracy and unweighted accuracy, resampling clips (seeded).

    A resample that misses a class averages over the classes it has (as the metric does)."""
    g, p = np.asarray(gold), np.asarray(pred)
    classes = sorted(set(gold))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(g), size=(resamples, len(g)))
    correct = (g == p)[idx]  # (R, N)
    acc = correct.mean(1)
    per = []
    for c in classes:
        mask = g[idx] == c
        n = mask.sum(1)
        per.append(np.where(n > 0, (correct & mask).sum(1) / np.maximum(n, 1), np.nan))
    ua = np.nanmean(np.stack(per), axis=0)
    q = lambda v: [float(100 * np.quantile(v, 0.025)), float(100 * np.quantile(v, 0.975))]
    return {"accuracy": q(acc), "unweighted_accuracy": q(ua)}


def fit_probe(x_train: np.ndarray, y_train: list[str], c: float = 1.0, seed: int = 0) -> Any:
    """Standardise, then a multinomial L2 logistic regression (scikit-learn pipeline)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(set(y_train)) < 2:
        raise UserError(f"the training rows have one label only ({y_train[0]}): a probe needs at least two")
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000, random_state=seed))
    return probe.fit(x_train, y_train)


def run_probe(train_manifest: str | Path, test_manifest: str | Path, out_dir: str | Path, encoder: ProbeEncoder,
              task: str = "emotion", c: float = 1.0, seed: int = 0, resamples: int = 1000,
              cache_dir: str | Path | None = None, train_split: str | None = None,
              test_split: str | None = None, frame_cache: Any = None) -> dict[str, Any]:
    """Fit on ``train_manifest``'s ``task`` rows, score ``test_manifest``'s (each optionally of one
    split); write ``OUT/probe.json`` and ``OUT/predictions.jsonl`` (one row per test clip); return
    the metrics dict. ``frame_cache``: see :func:`pooled_features`."""
    from emoreason.eval.metrics import classification_metrics

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir) if cache_dir is not None else out / "features"
    train_ids, train_audio, y_train = labelled_clips(train_manifest, task, "train the probe on", train_split)
    test_ids, test_audio, y_test = labelled_clips(test_manifest, task, "score the probe on", test_split)
    overlap = {p.resolve() for p in train_audio} & {p.resolve() for p in test_audio}
    if overlap:
        print(f"probe: warning: {len(overlap)} test clip(s) are also training clips (e.g. {sorted(overlap)[0]})",
              file=sys.stderr)

    def say(i: int, n: int) -> None:
        if i % 50 == 0 or i == n:
            print(f"probe: encoded {i}/{n} clips", file=sys.stderr)

    x_train = clip_features(encoder, train_audio, cache, say, frame_cache)
    x_test = clip_features(encoder, test_audio, cache, say, frame_cache)
    probe = fit_probe(x_train, y_train, c, seed)
    pred = [str(p) for p in probe.predict(x_test)]
    probs = probe.predict_proba(x_test)
    labels = [l for l in dict.fromkeys(y_train + y_test)]
    metrics = classification_metrics(y_test, pred, labels)
    metrics.update(
        ci=bootstrap_accuracies(y_test, pred, resamples, seed), task=task, n_train=len(y_train), n_test=len(y_test),
        train_manifest=str(train_manifest), test_manifest=str(test_manifest), c=c, seed=seed,
        feature_dim=int(x_train.shape[1]), train_accuracy=float(100 * (probe.predict(x_train) == np.asarray(y_train)).mean()),
    )
    classes = [str(k) for k in probe.classes_]
    lines = [json.dumps({"id": i, "task": task, "label": g, "model_label": p,
                         "model_scores": dict(zip(classes, map(float, s))), "model": "probe"})
             for i, g, p, s in zip(test_ids, y_test, pred, probs)]
    atomic_write(out / "predictions.jsonl", "\n".join(lines) + "\n")
    atomic_write(out / PROBE_FILE, json.dumps(metrics, indent=2) + "\n")
    return metrics


def read_probe(directory: str | Path) -> dict[str, Any] | None:
    """``probe.json`` of a probe directory, or None when there is none."""
    path = Path(directory) / PROBE_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def probe_cells(metrics: dict[str, Any]) -> tuple[str, str]:
    """("acc [low, high]", "unwt acc [low, high]") for a report row."""
    ci = metrics.get("ci", {})

    def cell(key: str) -> str:
        low, high = ci.get(key, [None, None])
        return f"{metrics[key if key != 'accuracy' else 'weighted_accuracy']:.1f}" + (
            f" [{low:.1f}, {high:.1f}]" if low is not None else "")

    return cell("accuracy"), cell("unweighted_accuracy")


def gap_note(model_unweighted: float, probe: dict[str, Any], model_name: str = "the AudioLLM") -> str | None:
    """One line when ``model_unweighted`` (%) is more than :data:`GAP_POINTS` below the probe's."""
    gap = probe["unweighted_accuracy"] - model_unweighted
    if gap <= GAP_POINTS:
        return None
    return (f"{model_name} is {gap:.1f} points below the linear probe on its own frozen emotion encoder "
            f"({model_unweighted:.1f} vs {probe['unweighted_accuracy']:.1f} unweighted): the encoder carries "
            "information the recipe does not use.")


def format_probe(metrics: dict[str, Any]) -> str:
    """A few lines for the terminal."""
    acc, ua = probe_cells(metrics)
    lines = [f"linear probe ({metrics['task']}, {metrics['n_train']} training clips, {metrics['n_test']} test clips, "
             f"{metrics['feature_dim']}-dim mean+std features, C={metrics['c']})",
             f"  accuracy {acc}   unweighted {ua}   (training accuracy {metrics['train_accuracy']:.1f})"]
    for label, row in metrics["per_class"].items():
        lines.append(f"  {label:<10} n={row['n']:<4} accuracy {row['accuracy']:.1f}  precision {row['precision']:.1f}")
    return "\n".join(lines)
