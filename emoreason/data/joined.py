"""Joined utterances: two training clips of one speaker and one label, spoken one after the other,
as one more training clip of that label.

Why: a model trained on single utterances only can learn that the clip's length is a cue. In our
synthetic corpus the same sentences are spoken faster when angry or happy and slower when sad, so
length alone separates the classes there; the full demo's label-dual model (sixteenth session)
called two held-out clips of one speaker and one emotion, joined, right 18 times in 80 (chance
20), against 119 of 160 for the same clips alone, and answered "sad" for most joined pairs: a
window of long audio holding two utterances got a near-random label. The full demo trained with
every training clip also in one joined pair: 60 of 80 joined, 121 of 160 alone
(``benchmarks/joined_clips.py``; docs/data.md, "Joined utterances"). Real speech varies in length for reasons other than emotion, so the
length cue does not carry to it either.
"""
from __future__ import annotations

import logging
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from emoreason.audio import SAMPLE_RATE, AudioError, load_audio

log = logging.getLogger(__name__)

PAUSE_SECONDS = (0.15, 0.6)
"""Range of the silent pause put between the two clips (uniform, seeded)."""
JOIN_TASKS = ("emotion",)
"""Tasks whose rows are joined: the label of two clips with one label is that label."""


def join_pairs(rows: list[dict[str, Any]], root: Path, out_dir: Path, share: float = 1.0, seed: int = 0,
               audio_prefix: str = "") -> list[dict[str, Any]]:
    """New rows, one per joined pair, with their audio written to ``out_dir``.

    ``rows``: manifest rows (audio paths absolute or relative to ``root``); only :data:`JOIN_TASKS`
    rows with a ``speaker`` and a ``label`` are joined, within each (speaker, label) group, in a
    seeded order; ``share`` of each group's clips go into pairs (1.0: all, an odd one out stays
    single; a pair with an unreadable clip is skipped with a warning naming it). A joined row is its first clip's row with the pair's audio (``audio_prefix`` +
    file name), duration, both transcripts (when both have one) and ``meta.joined`` (the two ids and
    the pause). Files already written are reused, so a rerun redoes nothing."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r.get("task") in JOIN_TASKS and r.get("speaker") and r.get("label"):
            groups[(r["task"], r["speaker"], r["label"])].append(r)
    out_dir.mkdir(parents=True, exist_ok=True)
    joined: list[dict[str, Any]] = []
    for key in sorted(groups):
        rng = random.Random(f"{seed}|{'|'.join(key)}")
        members = sorted(groups[key], key=lambda r: r["id"])
        rng.shuffle(members)
        members = members[: int(len(members) * share) // 2 * 2]
        for a, b in zip(members[0::2], members[1::2]):
            pause = rng.uniform(*PAUSE_SECONDS)
            try:
                joined.append(_join(a, b, pause, root, out_dir, audio_prefix))
            except AudioError as e:  # a broken clip costs its pair, not the stage
                log.warning("joined utterances: pair %s + %s skipped: %s", a["id"], b["id"], e)
    return joined


def _join(a: dict[str, Any], b: dict[str, Any], pause: float, root: Path, out_dir: Path,
          audio_prefix: str) -> dict[str, Any]:
    """One joined row; its wav (a, ``pause`` seconds of silence, b) written unless it exists."""
    import soundfile as sf

    name = _stem(a["id"]) + "+" + _stem(b["id"])
    path = out_dir / f"{name}.wav"
    if path.exists():
        samples = sf.info(str(path)).frames
    else:
        wave = np.concatenate([_load(a, root), np.zeros(int(pause * SAMPLE_RATE), np.float32), _load(b, root)])
        tmp = path.with_name(path.name + ".tmp.wav")  # atomic: a half-written file is never reused
        sf.write(str(tmp), wave, SAMPLE_RATE, subtype="FLOAT")
        tmp.replace(path)
        samples = wave.size
    task = a["task"]
    base = a["id"][: -len(task) - 1] if a["id"].endswith("/" + task) else a["id"]
    both = a.get("transcript") and b.get("transcript")
    return {**a, "id": f"{base}+{_stem(b['id'])}/{task}", "audio": audio_prefix + path.name, "duration": round(samples / SAMPLE_RATE, 4),
            "transcript": f"{a['transcript']} {b['transcript']}" if both else None,
            "meta": {**(a.get("meta") or {}), "joined": {"ids": [a["id"], b["id"]], "pause_s": round(pause, 3)}}}


def _load(row: dict[str, Any], root: Path) -> np.ndarray:
    audio = Path(row["audio"])
    return load_audio(audio if audio.is_absolute() else root / audio)


def _stem(row_id: str) -> str:
    """A row id as part of a file name: its clip part (``synth/syn00003/emotion`` -> ``syn00003``)."""
    parts = [p for p in row_id.split("/") if p]
    core = parts[-2] if len(parts) >= 2 else parts[-1]
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in core)
