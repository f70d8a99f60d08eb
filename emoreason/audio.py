"""Audio input: load any file soundfile reads, downmix, resample to 16 kHz, validate.

Every entry point that takes audio from a user goes through :func:`load_audio`, so bad input
(unreadable, empty, not audio, NaN samples, absurd length) fails the same way everywhere: an
:class:`AudioError` with a one-line message naming the file.
"""
from __future__ import annotations

from emoreason.errors import UserError

import io
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16_000
"""All encoders in emoreason take 16 kHz mono."""
WINDOW_SECONDS = 30.0
"""Whisper's fixed input window; longer clips are split into windows of at most this length."""
WINDOW_SAMPLES = int(SAMPLE_RATE * WINDOW_SECONDS)
"""480000 samples in one window."""
MEL_HOP = 160
"""Samples between Whisper log-mel frames: 100 mel frames per second."""
MEL_FRAMES = WINDOW_SAMPLES // MEL_HOP
"""3000 log-mel frames in one window (what Whisper's feature extractor pads to)."""
MAX_SECONDS = 4 * 3600.0
"""Anything longer is treated as a mistake (an 'absurd length'), not as audio to process."""
MIN_SECONDS = 0.05


class AudioError(UserError):
    """Audio could not be used; ``str(err)`` is a one-line message naming the source."""


def resample(wave: np.ndarray, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Resample a mono float32 waveform (T,) -> (T * target_sr / orig_sr,)."""
    if orig_sr == target_sr:
        return wave.astype(np.float32, copy=False)
    import soxr

    return soxr.resample(wave, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def to_mono(data: np.ndarray) -> np.ndarray:
    """(T,) or (T, C) -> (T,) by averaging channels."""
    if data.ndim == 2:
        return data.mean(axis=1)
    return data


def _duration(seconds: float) -> str:
    """Readable length for messages: '65.0 s', '12.5 min', '4.5 h' (a limit of 60 s is not '0.0 h')."""
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def validate_wave(wave: np.ndarray, name: str, max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """Check a 16 kHz mono waveform; return it as float32 or raise AudioError."""
    if wave.ndim != 1:
        raise AudioError(f"{name}: expected mono audio, got shape {tuple(wave.shape)}")
    if wave.size == 0:
        raise AudioError(f"{name}: audio is empty (0 samples)")
    if not np.all(np.isfinite(wave)):
        raise AudioError(f"{name}: audio contains NaN or infinite samples")
    seconds = wave.size / SAMPLE_RATE
    if seconds < MIN_SECONDS:
        raise AudioError(f"{name}: audio is too short ({seconds * 1000:.0f} ms < {MIN_SECONDS * 1000:.0f} ms)")
    if seconds > max_seconds:
        raise AudioError(f"{name}: audio is {_duration(seconds)} long, over the {_duration(max_seconds)} limit")
    return wave.astype(np.float32, copy=False)


def load_audio(source: str | Path | bytes, max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """Read a file (or encoded bytes) -> float32 mono 16 kHz waveform (T,).

    Any sample rate and channel count is accepted. Raises AudioError with a one-line message.
    """
    name = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    if not isinstance(source, (bytes, bytearray)):
        path = Path(source)
        if not path.exists():
            raise AudioError(f"{name}: file not found")
        if path.is_dir():
            raise AudioError(f"{name}: is a directory, not an audio file")
        if path.stat().st_size == 0:
            raise AudioError(f"{name}: file is empty (0 bytes)")
    try:
        handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else str(source)
        with sf.SoundFile(handle) as f:
            sr = f.samplerate
            if f.frames / max(sr, 1) > max_seconds:
                raise AudioError(f"{name}: audio is {_duration(f.frames / sr)} long, over the {_duration(max_seconds)} limit")
            data = f.read(dtype="float32", always_2d=False)
    except AudioError:
        raise
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError / TypeError on junk
        reason = str(e).splitlines()[0] if str(e) else e.__class__.__name__
        reason = reason.replace(repr(handle), repr(name))  # not "<_io.BytesIO object at 0x...>"
        raise AudioError(f"{name}: not a readable audio file ({reason})") from None
    wave = resample(to_mono(np.asarray(data, dtype=np.float32)), sr)
    return validate_wave(wave, name, max_seconds)


def save_audio(path: str | Path, wave: np.ndarray, sr: int = SAMPLE_RATE) -> None:
    """Write a mono float waveform as 16-bit PCM wav."""
    sf.write(str(path), np.asarray(wave, dtype=np.float32), sr, subtype="PCM_16")


def split_windows(wave: np.ndarray, window_seconds: float = WINDOW_SECONDS) -> list[tuple[float, float, np.ndarray]]:
    """Split (T,) into consecutive windows of at most ``window_seconds``: [(start_s, end_s, chunk)].

    A trailing piece shorter than 1 s after at least one full window is dropped: too short to carry
    an emotion, and it would cost a whole forward pass.
    """
    size = int(window_seconds * SAMPLE_RATE)
    out = []
    for start in range(0, wave.size, size):
        chunk = wave[start : start + size]
        if out and chunk.size < SAMPLE_RATE:  # a sliver: not worth a window of its own
            break
        out.append((start / SAMPLE_RATE, (start + chunk.size) / SAMPLE_RATE, chunk))
    return out
