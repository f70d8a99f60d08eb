"""Seeded train/dev/test assignment: per item (random) or per group (speaker- / session-disjoint)."""
from __future__ import annotations

import random
from typing import Hashable, Sequence

from emoreason.errors import UserError


def _counts(n: int, test: float, dev: float, at_least_one: bool) -> tuple[int, int]:
    if not (0 <= test < 1 and 0 <= dev < 1 and test + dev < 1):
        raise UserError(f"split fractions must be in [0, 1) and sum below 1 (test={test}, dev={dev})")
    n_test, n_dev = round(n * test), round(n * dev)
    if at_least_one:  # a group split with a non-zero fraction must hold out at least one group
        n_test = max(n_test, 1 if test > 0 else 0)
        n_dev = max(n_dev, 1 if dev > 0 else 0)
    if n_test + n_dev >= n and n > 0:
        raise UserError(f"only {n} group(s): cannot hold out {n_test} for test and {n_dev} for dev and keep any for train")
    return n_test, n_dev


def assign_groups(groups: Sequence[Hashable], test: float, dev: float, seed: int,
                  at_least_one: bool = True) -> dict[Hashable, str]:
    """Group -> split, holding out whole groups: sorted, seeded shuffle, first for test, next for dev.

    Used for item-level splits too (each item its own group), giving an exact share:
    ``round(n * test)`` items in test. ``at_least_one``: a non-zero fraction holds out at least
    one group even when the share rounds to zero (speaker-disjoint splits of few speakers).
    """
    unique = sorted(set(groups), key=str)
    n_test, n_dev = _counts(len(unique), test, dev, at_least_one)
    random.Random(seed).shuffle(unique)
    out = {}
    for i, g in enumerate(unique):
        out[g] = "test" if i < n_test else "dev" if i < n_test + n_dev else "train"
    return out


def speaker_folds(speakers: Sequence[Hashable], folds: int, seed: int) -> list[list[Hashable]]:
    """Whole speakers dealt into ``folds`` groups for leave-k-speakers-out cross-validation.

    Sorted, seeded shuffle, then dealt round-robin, so group sizes differ by at most one
    (24 RAVDESS actors in 6 folds: 4 each; 10 EmoDB speakers in 5 folds: 2 each). The same
    (speakers, folds, seed) always gives the same groups, in any process.
    """
    unique = sorted(set(speakers), key=str)
    if folds < 2:
        raise UserError(f"--folds must be at least 2 (got {folds})")
    if folds > len(unique):
        raise UserError(f"--folds {folds} is more than the {len(unique)} speaker(s) of this corpus")
    random.Random(seed).shuffle(unique)
    groups: list[list[Hashable]] = [[] for _ in range(folds)]
    for i, spk in enumerate(unique):
        groups[i % folds].append(spk)
    return [sorted(g, key=str) for g in groups]


def fold_splits(speakers: Sequence[Hashable], folds: int, fold: int, seed: int,
                dev_speakers: int = 0) -> dict[Hashable, str]:
    """Speaker -> split for fold ``fold`` (1-based) of :func:`speaker_folds`: that group is test,
    ``dev_speakers`` speakers of the rest (seeded) are dev, the others train."""
    groups = speaker_folds(speakers, folds, seed)
    if not 1 <= fold <= folds:
        raise UserError(f"--fold must be between 1 and --folds {folds} (got {fold})")
    test = set(groups[fold - 1])
    rest = sorted((s for g in groups for s in g if s not in test), key=str)
    if dev_speakers < 0 or dev_speakers >= len(rest):
        raise UserError(f"--dev-speakers {dev_speakers}: only {len(rest)} non-test speaker(s), at least one must train")
    random.Random(f"{seed}:dev:{fold}").shuffle(rest)
    dev = set(rest[:dev_speakers])
    return {s: "test" if s in test else "dev" if s in dev else "train" for g in groups for s in g}
