"""Compact curves of one clip for the web page: waveform peaks, pitch and loudness over time.

The engine reports summary cues (``emoreason.cues.measure_cues``); the page also draws how pitch and
loudness move. :func:`clip_curves` reduces the 10 ms frame tracks of ``emoreason.cues.frame_tracks``
to at most ``points`` bins, so the JSON stays a few kilobytes whatever the clip's length:

    {"points": 300, "step_s": 0.02, "peak": [0.0-1.0 ...], "loudness_dbfs": [-31.2, ...],
     "pitch_hz": [212.4, null, ...]}

``peak``: the largest absolute sample in the bin (full scale 1.0); ``loudness_dbfs``: the energy
mean of the bin's frame RMS; ``pitch_hz``: the median F0 of the bin's voiced speech frames, null
where the bin has none (silence, unvoiced sounds). Bin ``i`` covers ``[i * step_s, (i + 1) * step_s)``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from emoreason.audio import SAMPLE_RATE
from emoreason.cues import HOP_S, SILENCE_BELOW_PEAK_DB, SILENCE_FLOOR_DBFS, frame_tracks

MAX_POINTS = 400
"""The most bins a request may ask for (the page asks for 300)."""


def clip_curves(wave: np.ndarray, points: int = 300, sr: int = SAMPLE_RATE) -> dict[str, Any]:
    """(T,) float32 mono -> the bounded curve series above; ``points`` is clamped to [1, MAX_POINTS]
    and to the clip's frame count (a 1 s clip has at most 100 frames)."""
    wave = np.asarray(wave, dtype=np.float32).reshape(-1)
    db, f0, _ = frame_tracks(wave, sr)  # (N,) each, HOP_S apart
    n = db.size
    points = int(max(1, min(points, MAX_POINTS, n)))
    # Frames are the unit: bin edges in frames, so every bin holds at least one frame.
    edges = np.linspace(0, n, points + 1).round().astype(int)
    speech = db > max(float(db.max()) - SILENCE_BELOW_PEAK_DB, SILENCE_FLOOR_DBFS)  # as measure_cues reads speech
    hop = int(HOP_S * sr)
    peak, loud, pitch = [], [], []
    for a, b in zip(edges[:-1], edges[1:]):
        chunk = wave[a * hop : max(b * hop, a * hop + 1)]
        peak.append(round(float(np.abs(chunk).max()) if chunk.size else 0.0, 4))
        loud.append(round(float(10 * np.log10(np.mean(10 ** (db[a:b] / 10)))), 1))
        voiced = f0[a:b][speech[a:b] & np.isfinite(f0[a:b])]
        pitch.append(round(float(np.median(voiced)), 1) if voiced.size else None)
    return {"points": points, "step_s": round(n * HOP_S / points, 5), "peak": peak, "loudness_dbfs": loud, "pitch_hz": pitch}
