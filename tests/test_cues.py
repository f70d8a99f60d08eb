"""Acoustic cues: F0 accuracy and the direction of every cue on controlled audio."""
import shutil

import numpy as np
import pytest

from emoreason.audio import SAMPLE_RATE, load_audio
from emoreason.cues import count_syllables, describe_cues, measure_cues, speaker_baseline, yin_f0
from emoreason.testing.fixtures import speak, tone

SR = SAMPLE_RATE
TEXT = "I cannot believe you did that to me, this is outrageous"
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


@pytest.mark.parametrize("f0", [90.0, 150.0, 320.0])
def test_yin_recovers_the_fundamental_of_a_harmonic_tone(f0):
    track, _ = yin_f0(tone(0.5, f0), SR)
    voiced = track[np.isfinite(track)]
    assert voiced.size > 0.8 * track.size
    assert np.median(voiced) == pytest.approx(f0, rel=0.01)


def test_silence_and_noise_have_no_pitch():
    assert measure_cues(np.zeros(SR, np.float32), SR, "")["f0_median_hz"] is None
    noise = np.random.default_rng(0).normal(0, 0.1, SR).astype(np.float32)
    assert measure_cues(noise, SR, None)["voiced_ratio"] < 0.2


def test_loudness_follows_gain_and_nothing_else_changes():
    wave = tone(1.0, 140, 0.5)
    loud, quiet = measure_cues(wave, SR, TEXT), measure_cues(wave * 0.1, SR, TEXT)
    assert loud["loudness_dbfs"] - quiet["loudness_dbfs"] == pytest.approx(20.0, abs=0.2)
    assert loud["f0_median_hz"] == quiet["f0_median_hz"]
    assert loud["pause_count"] == quiet["pause_count"] == 0


def test_pauses_are_counted_between_speech_only():
    gap = np.zeros(int(0.5 * SR), np.float32)
    wave = np.concatenate([gap, tone(0.6), gap, tone(0.6), np.zeros(int(0.1 * SR), np.float32), tone(0.6), gap])
    cues = measure_cues(wave, SR, "one two three")
    assert cues["pause_count"] == 1  # the 0.1 s gap is too short, leading/trailing silence is no pause
    assert cues["pause_total_s"] == pytest.approx(0.5, abs=0.05)
    assert cues["speech_s"] == pytest.approx(1.9, abs=0.1)
    assert cues["speaking_rate_wps"] == pytest.approx(3 / cues["speech_s"], rel=0.01)


def test_syllable_counter():
    assert [count_syllables(w) for w in ["cat", "table", "believe", "outrageous", "the"]] == [1, 2, 2, 3, 1]


@needs_espeak
def test_espeak_high_vs_low_pitch_and_fast_vs_slow(tmp_path):
    low = measure_cues(load_audio(speak(TEXT, tmp_path / "lo.wav", pitch=15)), SR, TEXT)
    high = measure_cues(load_audio(speak(TEXT, tmp_path / "hi.wav", pitch=85)), SR, TEXT)
    fast = measure_cues(load_audio(speak(TEXT, tmp_path / "fast.wav", speed=260)), SR, TEXT)
    slow = measure_cues(load_audio(speak(TEXT, tmp_path / "slow.wav", speed=110)), SR, TEXT)
    assert high["f0_median_hz"] > 1.3 * low["f0_median_hz"]
    assert fast["syllable_rate"] > 1.5 * slow["syllable_rate"]
    assert fast["words"] == slow["words"] == 11


def test_describe_relative_to_the_speaker_baseline():
    base = [{"f0_median_hz": f, "f0_std_semitones": 2.0 + d, "loudness_dbfs": -20.0 + d, "syllable_rate": 4.0 + d / 4, "pause_total_s": 0.1}
            for f, d in [(110, 0.0), (120, 0.5), (115, -0.5), (118, 0.2)]]
    baseline = speaker_baseline(base)
    excited = {"f0_median_hz": 170.0, "f0_std_semitones": 4.5, "loudness_dbfs": -12.0, "syllable_rate": 5.5, "pause_total_s": 0.1}
    subdued = {"f0_median_hz": 95.0, "f0_std_semitones": 0.8, "loudness_dbfs": -29.0, "syllable_rate": 3.0, "pause_total_s": 1.2}
    assert describe_cues(excited, baseline) == [
        "much higher pitch than usual", "more varied, animated pitch than usual", "much louder than usual", "much faster speech than usual",
    ]
    assert describe_cues(subdued, baseline) == [
        "much lower pitch than usual", "flatter, more monotone pitch than usual", "much quieter than usual",
        "much slower speech than usual", "longer pauses than usual",
    ]
    assert describe_cues(base[0], baseline) == []  # a typical clip of this speaker: nothing to say


def test_without_baseline_only_absolute_cues_are_described():
    assert speaker_baseline([{"f0_median_hz": 100.0}] * 2) is None  # fewer than 3 clips
    cues = {"f0_median_hz": 300.0, "loudness_dbfs": -5.0, "syllable_rate": 7.0, "f0_std_semitones": 0.5,
            "pause_count": 3, "pause_total_s": 1.5, "duration_s": 4.0}
    assert describe_cues(cues, None) == ["fast speech", "flat, monotone pitch", "frequent pauses"]


def test_blockwise_tracks_equal_one_block_and_memory_is_bounded():
    """Cues are measured block by block: the same numbers as one block over the whole clip, and
    the peak of temporary memory does not grow with the clip."""
    import tracemalloc

    from emoreason.cues import frame_tracks

    rng = np.random.default_rng(1)
    wave = np.concatenate([tone(2.3, 140, 0.5), np.zeros(8000, np.float32), tone(3.1, 220, 0.3)])
    wave = wave + rng.normal(0, 0.01, wave.size).astype(np.float32)
    whole = frame_tracks(wave, SR, block_frames=10**6)
    for block in (1, 7, 256):
        for a, b in zip(whole, frame_tracks(wave, SR, block_frames=block)):
            np.testing.assert_array_equal(a, b)

    def peak(seconds: float) -> int:
        x = np.resize(wave, int(seconds * SR))
        tracemalloc.start()
        frame_tracks(x, SR)
        size = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return size

    short, long = peak(20.0), peak(200.0)
    assert long < short + 8 * 200 * 100 * 4  # only the (N,) tracks grow: 3 float64 per 10 ms frame (+ slack)
