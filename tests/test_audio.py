import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from emoreason.audio import SAMPLE_RATE, AudioError, guess_format, load_audio, split_windows, stream_windows, window_for_clips
from emoreason.errors import UserError
from emoreason.testing.fixtures import tone


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
    """Audio without pauses (silence throughout, a steady tone) is cut at the full window length."""
    for wave in (np.zeros(int(SAMPLE_RATE * 65.5), dtype=np.float32), np.resize(tone(1.0, 200, 0.3), int(SAMPLE_RATE * 65.5))):
        for cut in ("pause", "fixed"):
            wins = split_windows(wave, cut=cut)
            assert [(s, e) for s, e, _ in wins] == [(0.0, 30.0), (30.0, 60.0), (60.0, 65.5)]
    assert split_windows(np.zeros(SAMPLE_RATE * 30 + 100, dtype=np.float32))[-1][1] == 30.0
    assert [(s, e) for s, e, _ in split_windows(np.zeros(SAMPLE_RATE * 10, dtype=np.float32), 4.0)] == [
        (0.0, 4.0), (4.0, 8.0), (8.0, 10.0)]


def _utterances(seed: int, count: int = 9) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Tone "utterances" (1-3.5 s, varying pitch and level) with 0.2-0.7 s gaps of faint noise:
    (wave (T,), [(gap start, gap end) samples])."""
    rng = np.random.default_rng(seed)
    parts, gaps, at = [], [], 0
    for _ in range(count):
        voice = tone(float(rng.uniform(1.0, 3.5)), float(rng.uniform(120, 300)), float(rng.uniform(0.1, 0.5)))
        gap = (rng.standard_normal(int(rng.uniform(0.2, 0.7) * SAMPLE_RATE)) * 1e-3).astype(np.float32)
        parts += [voice, gap]
        at += voice.size
        gaps.append((at, at + gap.size))
        at += gap.size
    return np.concatenate(parts), gaps


@pytest.mark.parametrize("seed", range(4))
def test_pause_cuts_land_in_gaps_and_stream_like_the_whole(seed):
    """Every window but the last ends inside a gap between utterances, within its length limit
    and past its half; streaming the same clip in random blocks gives the same windows."""
    wave, gaps = _utterances(seed)
    windows = split_windows(wave, 6.0)
    assert len(windows) > 2
    for start, end, chunk in windows[:-1]:
        at = round(end * SAMPLE_RATE)
        assert 3.0 <= end - start <= 6.0 and chunk.size == at - round(start * SAMPLE_RATE)
        assert any(a <= at <= b for a, b in gaps), (start, end)
    rng = np.random.default_rng(seed)
    edges = np.sort(rng.choice(wave.size, 12, replace=False))
    streamed = list(stream_windows(iter(np.split(wave, edges)), 6.0))
    assert [(s, e) for s, e, _ in streamed] == [(s, e) for s, e, _ in windows]
    assert all(np.array_equal(a[2], b[2]) for a, b in zip(streamed, windows))


def test_pause_cuts_survive_background_noise():
    """White noise 12 dB under the signal throughout: the gaps still stand out, every cut is in one."""
    for seed in range(3):
        wave, gaps = _utterances(seed)
        noise = np.random.default_rng(seed).standard_normal(wave.size) * np.sqrt(np.mean(wave ** 2)) * 10 ** (-12 / 20)
        windows = split_windows((wave + noise).astype(np.float32), 6.0)
        assert len(windows) > 2
        for _, end, _ in windows[:-1]:
            assert any(a <= round(end * SAMPLE_RATE) <= b for a, b in gaps), end


def test_window_length_is_checked():
    with pytest.raises(UserError, match="between 1 and 30 s"):
        split_windows(np.zeros(SAMPLE_RATE), 45.0)
    with pytest.raises(UserError, match="unknown window cut"):
        split_windows(np.zeros(SAMPLE_RATE), 5.0, cut="middle")


def test_window_for_clips():
    """Twice the training clips' median, in whole seconds, never under 4 s or over 30 s."""
    assert window_for_clips([1.5] * 99 + [10.4]) == 4.0
    assert window_for_clips([2.0] * 40 + [3.3] * 30 + [9.0] * 30) == 7.0
    assert window_for_clips([40.0] * 10) == 30.0 and window_for_clips([]) == 30.0


# ------------------------------------------------------------------ formats only ffmpeg decodes
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")


def _encode(tmp_path, suffix: str, codec: list[str], seconds: float = 1.5):
    """A 440 Hz tone at 48 kHz stereo, encoded by the real ffmpeg: returns (path, reference wave at 16 kHz)."""
    sr = 48_000
    t = np.arange(int(sr * seconds)) / sr
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    src = tmp_path / "tone.wav"
    sf.write(src, np.stack([tone, tone], axis=1), sr)
    out = tmp_path / f"tone{suffix}"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(src), *codec, str(out)], check=True)
    return out


@needs_ffmpeg
@pytest.mark.parametrize("suffix, codec", [
    (".m4a", ["-c:a", "aac", "-b:a", "96k"]),           # what phones record
    (".webm", ["-c:a", "libopus", "-b:a", "48k"]),      # what browsers' MediaRecorder gives
    (".mp3", ["-c:a", "libmp3lame", "-b:a", "96k"]),
])
def test_ffmpeg_formats_decode_to_the_same_tone(tmp_path, suffix, codec):
    if suffix == ".mp3" and b"libmp3lame" not in subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True).stdout:
        pytest.skip("this ffmpeg has no mp3 encoder")
    path = _encode(tmp_path, suffix, codec)
    wave = load_audio(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(wave.size / SAMPLE_RATE - 1.5) < 0.1  # codec padding is a few ms
    # the tone survives: amplitude ~0.5 and the spectrum peaks at 440 Hz
    assert 0.4 < np.abs(wave[4000:-4000]).max() < 0.6
    spectrum = np.abs(np.fft.rfft(wave[:SAMPLE_RATE]))
    assert abs(np.argmax(spectrum) - 440) <= 2
    # encoded bytes (an upload) decode the same as the file
    np.testing.assert_allclose(load_audio(path.read_bytes()), wave, atol=1e-6)


@needs_ffmpeg
def test_ffmpeg_fallback_keeps_the_length_limit(tmp_path):
    path = _encode(tmp_path, ".m4a", ["-c:a", "aac"], seconds=3.0)
    with pytest.raises(AudioError, match="limit"):
        load_audio(path, max_seconds=2.0)


@needs_ffmpeg
def test_undecodable_names_the_format(tmp_path):
    path = _encode(tmp_path, ".m4a", ["-c:a", "aac"])
    broken = tmp_path / "broken.m4a"
    broken.write_bytes(path.read_bytes()[:200])  # header of an mp4, no sound data
    with pytest.raises(AudioError, match=r"broken\.m4a: not a readable audio file \(format m4a") as err:
        load_audio(broken)
    assert "\n" not in str(err.value)
    with pytest.raises(AudioError, match=r"<bytes>: not a readable audio file \(format mp4/m4a") as err:
        load_audio(path.read_bytes()[:200])
    assert "\n" not in str(err.value) and "emoreason-audio-" not in str(err.value)  # no temp path leaks


def test_without_ffmpeg_the_error_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg on this PATH
    p = tmp_path / "clip.webm"
    p.write_bytes(b"\x1aE\xdf\xa3" + b"\x00" * 100)
    with pytest.raises(AudioError, match=r"clip\.webm: not a readable audio file \(format webm.*ffmpeg.*not installed"):
        load_audio(p)


def test_guess_format_from_bytes():
    assert guess_format(b"\x1aE\xdf\xa3....") == "webm/matroska"
    assert guess_format(b"\x00\x00\x00\x20ftypM4A ") == "mp4/m4a"
    assert guess_format(b"hello") == "unknown"


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
