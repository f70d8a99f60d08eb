"""Contamination guard: every training run records a content hash of each training clip, and an
evaluation refuses (or drops) test clips the model was trained on.

    record_training_clips([(row_id, audio_path), ...], run_dir)   # the recipe, in setup_data
    kept, dropped = check_contamination(model_dir, rows, audio_paths, exclude=False)  # evaluation

A clip's hash is the sha256 of its decoded samples (float32, 16 kHz mono, :func:`emoreason.audio.load_audio`),
so the same recording under another id, file name or lossless container is caught; a re-encoded
(lossy) or trimmed copy is not. Hashes are cached by (path, size, mtime) in
``$EMOREASON_CACHE/clip_hashes.json``, so a rerun or a resumed run decodes nothing twice.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from emoreason.data.clip_hashes import HASH_KIND, TRAIN_CLIPS_FILE, hash_clips
from emoreason.errors import UserError
from emoreason.jsonl import atomic_write

log = logging.getLogger("emoreason.train")



def record_training_clips(clips: Sequence[tuple[str, str | Path]], run_dir: str | Path,
                          cache_file: str | Path | None = None) -> Path:
    """Write ``RUN_DIR/train_clips.json``: the hash of every training clip ``(row id, audio path)``
    (one entry per distinct audio file; the first row id that uses it)."""
    seen: dict[str, str] = {}
    for row_id, audio in clips:
        seen.setdefault(str(Path(audio).resolve()), row_id)
    paths = list(seen)
    hashes = hash_clips(paths, cache_file)
    record = {"hash": HASH_KIND, "clips": [{"id": seen[p], "audio": p, "sha256": h} for p, h in zip(paths, hashes)]}
    target = Path(run_dir) / TRAIN_CLIPS_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, json.dumps(record, indent=0))
    return target


def load_training_hashes(model_dir: str | Path) -> set[str] | None:
    """Hashes of the clips a model was trained on, from ``model_dir`` (a model directory or a run
    directory, whose ``final/`` is tried next); None when the model has no record (packaged
    weights, runs from before the record existed)."""
    model_dir = Path(model_dir)
    for directory in (model_dir, model_dir / "final"):
        path = directory / TRAIN_CLIPS_FILE
        if path.is_file():
            return {c["sha256"] for c in json.loads(path.read_text())["clips"]}
    return None


def overlaps(hashes: set[str], clips: Mapping[str, str | Path], cache_file: str | Path | None = None) -> list[str]:
    """Ids of ``clips`` (id -> audio path) whose audio is one of the training ``hashes``, in order."""
    ids = list(clips)
    return [i for i, h in zip(ids, hash_clips([clips[i] for i in ids], cache_file)) if h in hashes]


def _row_id(row: Any) -> str:
    return str(row["id"] if isinstance(row, Mapping) else row.id)


def check_contamination(model_dir: str | Path, manifest_rows: Sequence[Any], audio_paths: Sequence[str | Path],
                        exclude: bool, cache_file: str | Path | None = None) -> tuple[list[Any], list[str]]:
    """Evaluation rows whose audio the model was not trained on.

    Args:
        model_dir: the model (or run) directory being evaluated.
        manifest_rows: rows with an ``id`` (``ManifestRow`` or dicts), in evaluation order.
        audio_paths: each row's audio file (same order).
        exclude: drop overlapping rows instead of refusing.

    Returns:
        (rows kept, ids of overlapping rows). Without a training record every row is kept.

    Raises:
        UserError: some rows overlap the training clips and ``exclude`` is False (names a few).
    """
    if len(manifest_rows) != len(audio_paths):
        raise ValueError(f"{len(manifest_rows)} rows but {len(audio_paths)} audio paths")
    hashes = load_training_hashes(model_dir)
    if hashes is None:
        log.warning("%s has no %s: cannot check the evaluation clips against its training data", model_dir, TRAIN_CLIPS_FILE)
        return list(manifest_rows), []
    trained = [bool(h) and h in hashes for h in hash_clips(audio_paths, cache_file, unreadable_ok=True)]
    bad = [_row_id(r) for r, t in zip(manifest_rows, trained) if t]
    if bad and not exclude:
        raise UserError(f"{len(bad)} evaluation clip(s) have the same audio as clips {model_dir} was trained on "
                        f"({', '.join(bad[:5])}{', ...' if len(bad) > 5 else ''}): evaluate on held-out clips, "
                        "or exclude them")
    return [r for r, t in zip(manifest_rows, trained) if not t], bad
