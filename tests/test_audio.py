import numpy as np
import pytest
import soundfile as sf

from emoreason.audio import SAMPLE_RATE, AudioError, load_audio, split_windows


def test_resample_and_downmix(tmp_path):
    t = np.arange(44100) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], axis=1) * 0.5
    p = tmp_path / "s.wav"
    sf.write(p, stereo, 44100)
    wave = load_audio(p)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(wave.size - SAMPLE_RATE) <= 2
    assert 0.45 < np.abs(wave).max() < 0.55


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b""), "file is empty"),
        (lambda p: p.write_bytes(b"RIFF\x00\x00junk" * 10), "not a readable audio file"),
        (lambda p: p.write_text("hello, I am text"), "not a readable audio file"),
        (lambda p: sf.write(p, np.full(1600, np.nan, dtype=np.float32), 16000, subtype="FLOAT"), "NaN"),
        (lambda p: sf.write(p, np.zeros(10, dtype=np.float32), 16000), "too short"),
    ],
)
def test_bad_input_one_line(tmp_path, make, message):
    p = tmp_path / "bad.wav"
    make(p)
    with pytest.raises(AudioError, match=message) as err:
        load_audio(p)
    assert "\n" not in str(err.value) and str(p) in str(err.value)


def test_missing_and_too_long(tmp_path):
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "none.wav")
    p = tmp_path / "long.wav"
    sf.write(p, np.zeros(16000 * 3, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="limit"):
        load_audio(p, max_seconds=2.0)


def test_split_windows():
    wave = np.zeros(int(SAMPLE_RATE * 65.5), dtype=np.float32)
    wins = split_windows(wave)
    assert [(s, e) for s, e, _ in wins] == [(0.0, 30.0), (30.0, 60.0), (60.0, 65.5)]
    assert split_windows(np.zeros(SAMPLE_RATE * 30 + 100, dtype=np.float32))[-1][1] == 30.0


def test_unscaled_float_samples_are_refused(tmp_path):
    p = tmp_path / "unscaled.wav"
    sf.write(p, np.full(16000, 200.0, dtype=np.float32), 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="far outside") as err:
        load_audio(p)
    assert "\n" not in str(err.value)
    sf.write(p, np.full(16000, 1.2, dtype=np.float32), 16000, subtype="FLOAT")  # a mild overshoot is audio
    assert load_audio(p).max() == pytest.approx(1.2)


@pytest.mark.parametrize("sr, channels", [(44100, 2), (16000, 1), (22050, 3)])
def test_blockwise_decoding_matches_one_shot(tmp_path, sr, channels):
    """Long files are decoded in blocks through one resampler stream: no seam at block edges."""
    import soxr

    from emoreason.audio import DECODE_BLOCK_SECONDS

    x = np.random.default_rng(sr).normal(0, 0.2, (int(sr * (2.5 * DECODE_BLOCK_SECONDS)), channels)).astype(np.float32)
    p = tmp_path / "long.wav"
    sf.write(p, x, sr, subtype="FLOAT")
    mono = x.mean(axis=1)
    ref = soxr.resample(mono, sr, SAMPLE_RATE, quality="HQ") if sr != SAMPLE_RATE else mono
    wave = load_audio(p)
    assert wave.size == ref.size
    np.testing.assert_allclose(wave, ref, atol=1e-6)
