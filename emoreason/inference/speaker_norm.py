"""Speaker normalisation of the emotion encoder's frames (per-speaker CMVN), for clips of known speakers.

A voice the model never heard shifts every frame of the emotion encoder the same way, whatever
the emotion: a model trained on a handful of voices then answers one label for most of that
speaker's clips (issue 12: a synthetic-only model called 82 % of real clips "angry"). With several
clips of one speaker, that shift can be measured without labels and taken out: each frame
dimension of the speaker's clips is mapped from the speaker's mean and standard deviation to the
training clips' (cepstral mean and variance normalisation per speaker, as ASR does it, on the
encoder's output). The speaker's clips should cover their emotions about evenly (a corpus's
speaker, a long recording): on the clips of one emotion alone, that emotion is what is taken out.

Statistics are clip-weighted: a clip's moments are the mean and mean square over its own frames
(every 30 s window's valid frames), and a group's mean / std come from the average of its clips'
moments, so a long clip counts as one clip.

The affine (scale, shift) per dimension goes to ``AudioLLM.emotion_frame_affine``: the adapters
read ``frames * scale + shift``; the encoder outputs themselves stay raw (a Whisper transcriber
may reuse them).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emoreason.audio import WINDOW_SAMPLES
from emoreason.errors import UserError

STATS_FILE = "emotion_frame_stats.npz"
"""Cache of the training clips' :class:`FrameStats`, beside the model's weights."""
FEW_CLIPS = 4
"""Below this many clips a speaker's statistics hold much of the clips' own emotion, and normalising
takes it out: measured with the default demo's label-dual (docs/data.md), statistics from 1 clip
lost 1-16 points against no normalisation, 2 clips about broke even, 4-8 gained most of what all
clips gain. Callers warn below it."""
MIN_STD = 1e-4
"""Floor on a dimension's std (a dimension constant over the clips would divide by zero)."""


@dataclass(frozen=True)
class FrameStats:
    """Per-dimension mean and std (d,) of the emotion encoder's frames over ``clips`` clips."""

    mean: np.ndarray
    std: np.ndarray
    clips: int

    @classmethod
    def of_moments(cls, moments: np.ndarray) -> "FrameStats":
        """(N, 2, d) per-clip (mean, mean square) -> the group's stats (N >= 1)."""
        if moments.ndim != 3 or moments.shape[0] == 0 or moments.shape[1] != 2:
            raise ValueError(f"expected (N >= 1, 2, d) clip moments, got {moments.shape}")
        m = moments.astype(np.float64).mean(axis=0)
        std = np.sqrt(np.maximum(m[1] - m[0] ** 2, 0.0))
        return cls(m[0].astype(np.float32), np.maximum(std, MIN_STD).astype(np.float32), int(moments.shape[0]))

    def affine_to(self, target: "FrameStats") -> np.ndarray:
        """(2, d) float32 (scale, shift) mapping these stats onto ``target``'s: x -> (x - mu) / sd * sd_t + mu_t."""
        if self.mean.shape != target.mean.shape:
            raise UserError(f"speaker statistics have {self.mean.shape[0]} dimensions, the training clips' "
                            f"{target.mean.shape[0]} (another emotion encoder?)")
        scale = target.std / self.std
        return np.stack([scale, target.mean - self.mean * scale]).astype(np.float32)

    def save(self, path: Path, source: str = "") -> None:
        """Write to ``path`` (.npz) through a temporary sibling and a rename; ``source`` names what
        they were measured on (:func:`load` returns None when asked for another)."""
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez(tmp, mean=self.mean, std=self.std, clips=np.array(self.clips), source=np.array(source))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, source: str = "") -> "FrameStats | None":
        """The stats :meth:`save` wrote, or None when they were measured on another ``source``
        (e.g. the run was trained again on other clips) or the file is unreadable."""
        try:
            with np.load(path) as z:
                if str(z["source"]) != source:
                    return None
                return cls(z["mean"].astype(np.float32), z["std"].astype(np.float32), int(z["clips"]))
        except (OSError, ValueError, KeyError):
            return None


def clip_moments(model: Any, processor: Any, windows: list[list[np.ndarray]], batch_size: int = 8) -> np.ndarray:
    """Each clip's (mean, mean square) of its emotion frames: (N, 2, d) float32 (over the frames of
    its own samples: the frame mask, or for a fixed 30 s window the share its samples fill).

    ``windows``: per clip, its 16 kHz windows (each <= 30 s). Runs the emotion encoder only (the
    model's frame cache serves it when set). The caller holds ``torch.inference_mode``.
    """
    import torch

    if processor.emotion is None:
        raise UserError("speaker normalisation needs a model with an emotion encoder (this one has none)")
    flat = [(i, w) for i, clip in enumerate(windows) for w in clip]
    sums: dict[int, torch.Tensor] = {}
    counts = np.zeros(len(windows))
    for start in range(0, len(flat), batch_size):
        part = flat[start:start + batch_size]
        feats = processor.features(processor.emotion, [w for _, w in part])
        mask = torch.from_numpy(feats["mask"]).to(model.device) if "mask" in feats else None
        frames, frame_mask = model.encode_frames("emotion", torch.from_numpy(feats["features"]).to(model.device), mask)
        frames = frames.float()
        for row, (i, w) in enumerate(part):
            if frame_mask is None:  # a fixed 30 s window: the clip's own share of the frames, not the padding
                f = frames[row][: max(1, math.ceil(frames.shape[1] * w.size / WINDOW_SAMPLES))]
            else:
                f = frames[row][frame_mask[row].bool()]
            both = torch.stack([f.sum(0), (f * f).sum(0)])
            sums[i] = sums[i] + both if i in sums else both
            counts[i] += f.shape[0]
    return np.stack([(sums[i] / counts[i]).cpu().numpy() for i in range(len(windows))]).astype(np.float32)


def training_record(model_dir: Path) -> tuple[list[Path], str]:
    """The distinct audio files the run's ``train_clips.json`` lists, and the SHA-256 of that file
    (what cached statistics are checked against). UserError when the run has no such record."""
    from emoreason.data.clip_hashes import TRAIN_CLIPS_FILE

    recorded = model_dir / TRAIN_CLIPS_FILE
    if not recorded.is_file():
        raise UserError(f"speaker normalisation needs the model's training clips: {recorded} is missing "
                        "(models trained before it was written cannot be normalised)")
    text = recorded.read_text()
    try:
        paths = list(dict.fromkeys(Path(c["audio"]) for c in json.loads(text)["clips"]))
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{recorded}: not a training-clips file ({e})") from None
    return paths, hashlib.sha256(text.encode()).hexdigest()


def existing_clips(paths: list[Path], model_dir: Path) -> list[Path]:
    """Those of ``paths`` that exist here; UserError when none does (the audio moved or is gone)."""
    found = [p for p in paths if p.is_file()]
    if not found:
        raise UserError(f"speaker normalisation needs the model's training audio, and none of the {len(paths)} "
                        f"files {model_dir}/train_clips.json lists exists here (e.g. {paths[0] if paths else '-'})")
    return found


def speakers_of(rows: list[Any]) -> list[str]:
    """Each manifest row's (``emoreason.data.manifest.Row``) speaker; UserError naming the first
    row without one."""
    missing = next((r for r in rows if not r.speaker), None)
    if missing is not None:
        raise UserError(f"--speaker-norm needs a speaker on every row; row {missing.id} has none")
    return [str(r.speaker) for r in rows]


__all__ = ["FEW_CLIPS", "FrameStats", "MIN_STD", "STATS_FILE", "clip_moments", "existing_clips", "speakers_of", "training_record"]
