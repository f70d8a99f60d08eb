"""benchmarks/probe_invariance.py: its level change, its scores line and its language clips."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from emoreason.testing.benchmarks import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("probe_invariance")


def test_level_normalises_then_applies_gain_and_clips(bench):
    wave = (0.01 * np.sin(np.arange(16000) / 5)).astype(np.float32)
    rms = lambda w: 20 * np.log10(np.sqrt(np.mean(w.astype(np.float64) ** 2)))  # noqa: E731
    assert rms(bench.level(wave, 0, normalise=True)) == pytest.approx(bench.TARGET_RMS_DBFS, abs=0.01)
    assert rms(bench.level(wave, 12, normalise=False)) - rms(wave) == pytest.approx(12, abs=0.01)
    assert np.abs(bench.level(wave, 60, normalise=False)).max() == 1.0  # clipped like a recorder


def test_scores_line(bench):
    line = bench.scores(["sad", "sad", "angry", "angry"], ["sad", "sad", "sad", "angry"])
    assert line.startswith("acc  75.0  UA  75.0") and "{'angry': 1, 'sad': 3}" in line


def test_language_clips_are_written_once(bench, tmp_path):
    clips = bench.language_clips(tmp_path, 2, "de")
    assert [e for _, e in clips] == ["neutral", "happy"]
    first = clips[0][0].stat().st_mtime_ns
    wave, sr = sf.read(clips[0][0])
    assert sr == 16000 and wave.size > 8000
    assert bench.language_clips(tmp_path, 2, "de")[0][0].stat().st_mtime_ns == first
