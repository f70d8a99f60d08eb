"""Content hashes of audio clips: the sha256 of the decoded float32 16 kHz mono samples
(:func:`emoreason.audio.load_audio`), so the same recording under another id, file name or lossless
container hashes the same. Used by the training runs' contamination record
(:mod:`emoreason.train.contamination`) and by importers that exclude another set's clips.

Hashes are cached by (resolved path, size, mtime) in ``$EMOREASON_CACHE/clip_hashes.json`` (or a
file the caller names), so a rerun decodes nothing twice.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from emoreason.audio import AudioError, load_audio
from emoreason.jsonl import atomic_write

HASH_KIND = "sha256 of float32 16 kHz mono samples (emoreason.audio.load_audio)"
TRAIN_CLIPS_FILE = "train_clips.json"
"""A training run's record of its clips and their hashes (:mod:`emoreason.train.contamination`), in
``RUN_DIR`` and copied into every model directory the run writes (``final/``, ``best/``); here so
that the inference engine (speaker normalisation) can read it without importing training."""


def default_cache_file() -> Path:
    """``$EMOREASON_CACHE/clip_hashes.json`` or ``~/.cache/emoreason/clip_hashes.json``."""
    return Path(os.environ.get("EMOREASON_CACHE") or Path.home() / ".cache" / "emoreason") / "clip_hashes.json"


def clip_hash(path: str | Path) -> str:
    """Content hash of one clip: sha256 of its decoded float32 16 kHz samples (uncached)."""
    wave = np.ascontiguousarray(load_audio(path), dtype=np.float32)
    return hashlib.sha256(wave.tobytes()).hexdigest()


def hash_clips(paths: Iterable[str | Path], cache_file: str | Path | None = None, unreadable_ok: bool = False) -> list[str]:
    """:func:`clip_hash` of each path, reusing hashes cached under (resolved path, size, mtime).

    ``unreadable_ok``: a missing or undecodable file gets ``""`` (evaluation reports it per row
    later) instead of raising."""
    cache_file = Path(cache_file) if cache_file is not None else default_cache_file()
    try:
        cache: dict[str, str] = json.loads(cache_file.read_text())
    except (OSError, ValueError):  # absent or torn: start over, it is only a cache
        cache = {}
    out, added = [], 0
    for path in paths:
        path = Path(path).resolve()
        try:
            stat = path.stat()
            key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
            if key not in cache:
                cache[key] = clip_hash(path)
                added += 1
        except (OSError, AudioError):
            if not unreadable_ok:
                raise
            out.append("")
            continue
        out.append(cache[key])
    if added:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(cache_file, json.dumps(cache))  # concurrent writers: last one wins, nothing is torn
    return out
