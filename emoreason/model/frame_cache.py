"""Reuse a frozen encoder's output frames instead of recomputing them every epoch.

A frozen encoder in eval mode is a pure function of its input features, so its frames for a clip
can be computed once and looked up afterwards, at the encoder's own precision (autocast off: it is
once per clip). Entries are content-addressed: the key hashes the encoder's weights (a cheap
fingerprint) and the clip's own valid features, so
no clip ids have to be threaded through the data pipeline, and two runs with the same frozen
encoder (the demo's variants) can share one directory.

Each clip missing from the cache is encoded alone, cut to its own length: its frames then depend on
nothing but the clip (not on which neighbours padded its batch), which keeps a resumed or re-ordered
run's inputs identical to an uninterrupted one's. A batch is assembled from the per-clip entries:

    frames (B, T, d), T = the longest clip's frame count (or the encoder's fixed count);
    frame_mask (B, T) bool, a prefix of each row (None for fixed-length encoders).

Memory: entries live in an LRU bounded by ``max_memory_mb``; with a ``directory`` they are also
written there (one safetensors file per clip) and survive the process.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
import weakref
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger("emoreason.train")


def encoder_fingerprint(encoder: nn.Module) -> str:
    """A short hash of an encoder's class and weights (shape, sum and sum of squares per tensor):
    different checkpoints give different fingerprints without hashing gigabytes."""
    h = hashlib.blake2b(type(encoder).__qualname__.encode(), digest_size=16)
    with torch.no_grad():
        for name, tensor in list(encoder.named_parameters()) + list(encoder.named_buffers()):
            t = tensor.detach().double()
            stats = torch.stack([t.sum(), t.square().sum()]).cpu().tolist()
            h.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}{stats[0]:.9e}{stats[1]:.9e}".encode())
    return h.hexdigest()


class FrameCache:
    """Per-clip frames of frozen encoders, in memory (LRU) and optionally on disk.

    Args:
        directory: where entries are also stored (created on first write); None: memory only.
        max_memory_mb: bound of the in-memory LRU (entries evicted from memory stay on disk).
    """

    def __init__(self, directory: str | Path | None = None, max_memory_mb: float = 2048) -> None:
        self.directory = Path(directory) if directory else None
        self.max_bytes = int(max_memory_mb * 2**20)
        self._memory: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._bytes = 0
        # Keyed by the module itself (weakly): an id() could be reused by a later encoder.
        self._fingerprints: weakref.WeakKeyDictionary[nn.Module, str] = weakref.WeakKeyDictionary()
        self.hits = 0
        self.misses = 0
        self.encode_seconds = 0.0
        """Wall seconds spent encoding the misses (what a cold cache costs a run: the demo's time
        budget counts it)."""
        self.evicted = 0
        """Entries dropped from memory; with no directory each is recomputed when next needed."""

    # ------------------------------------------------------------------ storage
    def _path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / key[:2] / f"{key}.safetensors"

    def _get(self, key: str) -> torch.Tensor | None:
        if key in self._memory:
            self._memory.move_to_end(key)
            return self._memory[key]
        if self.directory is not None:
            path = self._path(key)
            if path.exists():
                from safetensors.torch import load_file

                try:
                    frames = load_file(str(path))["frames"]
                except Exception:  # a torn or foreign file: recompute and overwrite it
                    return None
                self._remember(key, frames)
                return frames
        return None

    def _remember(self, key: str, frames: torch.Tensor) -> None:
        self._memory[key] = frames
        self._bytes += frames.numel() * frames.element_size()
        while self._bytes > self.max_bytes and len(self._memory) > 1:
            _, old = self._memory.popitem(last=False)
            self._bytes -= old.numel() * old.element_size()
            if self.evicted == 0 and self.directory is None:
                log.warning("frame cache: %.0f MB hold %d clips and it is full, so clips will be encoded again; "
                            "set train.feature_cache_dir (disk) or raise train.feature_cache_memory_mb",
                            self.max_bytes / 2**20, len(self._memory))
            self.evicted += 1

    def _put(self, key: str, frames: torch.Tensor) -> None:
        frames = frames.detach().to("cpu").contiguous().clone()
        self._remember(key, frames)
        if self.directory is not None:
            from safetensors.torch import save_file

            path = self._path(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # atomic: readers never see half a file
            save_file({"frames": frames}, str(tmp))
            os.replace(tmp, path)

    # ------------------------------------------------------------------ encoding
    def _fingerprint(self, encoder: nn.Module) -> str:
        if encoder not in self._fingerprints:
            self._fingerprints[encoder] = encoder_fingerprint(encoder)
        return self._fingerprints[encoder]

    @torch.no_grad()
    def encode(self, encoder: nn.Module, features: torch.Tensor, mask: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Same contract as ``encoder(features, mask)`` for a frozen encoder in eval mode.

        features (B, C, M) log-mel or (B, S) waveform; mask (B, M) 1 = real feature frame, a prefix
        of each row (the processor's dynamic-length layout) or None.
        Returns frames (B, T, d) and frame_mask (B, T) bool (None when mask is None).
        """
        device = features.device
        prefix = f"{self._fingerprint(encoder)}|"
        lengths = [features.shape[-1]] * features.shape[0] if mask is None else mask.sum(-1).long().tolist()
        rows: list[torch.Tensor] = []
        for i, length in enumerate(lengths):
            clip = features[i : i + 1, ..., :length]
            digest = hashlib.blake2b(prefix.encode(), digest_size=20)
            digest.update(str(tuple(clip.shape)).encode() + str(clip.dtype).encode())
            digest.update(clip.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
            key = digest.hexdigest()
            frames = self._get(key)
            if frames is None:
                self.misses += 1
                clip_mask = None if mask is None else mask[i : i + 1, :length]
                tic = time.perf_counter()
                # Outside autocast: once per clip, full precision costs little, and one entry then
                # serves fp32 and autocast runs alike.
                with torch.autocast(device.type, enabled=False):
                    out, out_mask = encoder(clip, clip_mask)
                self.encode_seconds += time.perf_counter() - tic
                if out_mask is not None:
                    out = out[:, : int(out_mask[0].sum())]
                frames = out[0]
                self._put(key, frames)
            else:
                self.hits += 1
            rows.append(frames)
        t = max(r.shape[0] for r in rows)
        batch = rows[0].new_zeros(len(rows), t, rows[0].shape[-1])
        for i, r in enumerate(rows):
            batch[i, : r.shape[0]] = r
        batch = batch.to(device)
        if mask is None:
            return batch, None
        counts = torch.tensor([r.shape[0] for r in rows], device=device)
        return batch, torch.arange(t, device=device)[None, :] < counts[:, None]


__all__ = ["FrameCache", "encoder_fingerprint"]
