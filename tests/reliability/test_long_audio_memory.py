"""Memory of `analyze` is bounded by the 30 s window, not the clip: a 10-minute clip's peak RSS is
within a fixed bound of a 1-minute clip's (before block-wise cues, each second of audio added
~3.8 MB, so 10 minutes would have added ~2 GB)."""
from __future__ import annotations

import numpy as np

from emoreason.audio import save_audio
from emoreason.testing.fixtures import tone

from .procs import cli, peak_rss_kb

BOUND_MB = 150
"""Allowed growth from 1 to 10 minutes: the 16 kHz waveform itself (38 MB as float32), the decoded
file's blocks, the cue tracks (24 bytes per 10 ms) and 20 windows' results, with slack for the
allocator."""


def _clip(path, minutes: float):
    unit = np.concatenate([tone(1.5, 140, 0.4), np.zeros(8000, np.float32), tone(1.0, 210, 0.2)])  # 3 s
    save_audio(path, np.resize(unit, int(minutes * 60 * 16000)))
    return path


def test_ten_minutes_cost_no_more_than_a_window_bound_over_one(tiny_run, tmp_path):
    peaks = {}
    for minutes in (1, 10):
        wav = _clip(tmp_path / f"{minutes}.wav", minutes)
        code, kb = peak_rss_kb(cli("analyze", "--model", str(tiny_run), str(wav), "--max-new-tokens", "0",
                                   "--transcript", "none", "--batch-size", "1", "--json"))
        assert code == 0
        peaks[minutes] = kb / 1024
    print(f"peak RSS: 1 min {peaks[1]:.0f} MB, 10 min {peaks[10]:.0f} MB")
    assert peaks[10] - peaks[1] < BOUND_MB, peaks
