"""Audio input: load any file soundfile or ffmpeg decodes, downmix, resample to 16 kHz, validate.

Every entry point that takes audio from a user goes through :func:`load_audio`, so bad input
(unreadable, empty, not audio, NaN samples, absurd length) fails the same way everywhere: an
:class:`AudioError` with a one-line message naming the file (and, when nothing decodes it, the
format it looks like).

Decoding: soundfile (libsndfile: wav, flac, ogg/vorbis, opus in ogg, mp3 with libsndfile >= 1.1)
first, as it is in-process and exact; what it refuses (m4a/AAC, webm/Opus as phones and browsers
record, mp4/mkv sound tracks, ...) goes to an ``ffmpeg`` subprocess when one is on PATH.
"""
from __future__ import annotations

from emoreason.errors import UserError

import contextlib
import io
import itertools
import math
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
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
MAX_PEAK = 4.0
"""Largest accepted |sample| (+12 dBFS): float files may overshoot full scale a little (filtering,
resampling), but values in the tens or hundreds are unscaled data, not audio at full scale = 1."""
SILENT_DBFS = -60.0
"""A clip whose loudest sample stays under this (1/1000 of full scale) holds no sound to analyse:
digital silence, or a muted or unplugged input. Speech recorded even far too quietly peaks above
it; a room's noise floor often does too, so this catches silence only, not "no speech"."""
DECODE_BLOCK_SECONDS = 30.0
"""Audio is decoded, downmixed and resampled this much at a time (see ``_decode_blocks``)."""


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
    check_samples(wave, name)
    check_length(wave.size, name, max_seconds)
    return wave.astype(np.float32, copy=False)


def check_samples(wave: np.ndarray, name: str) -> None:
    """AudioError for NaN / infinite samples or samples far outside [-1, 1] in (T,) (a whole clip or one block of it)."""
    if wave.size == 0:
        return
    # min / max propagate NaN and keep inf, and need no (T,) temporary (np.abs or np.isfinite of a
    # 2-hour clip would briefly double or quarter-add its 460 MB)
    lo, hi = float(wave.min()), float(wave.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise AudioError(f"{name}: audio contains NaN or infinite samples")
    peak = max(hi, -lo)
    if peak > MAX_PEAK:
        raise AudioError(f"{name}: samples reach {peak:.3g}, far outside [-1, 1] (float audio must be scaled to "
                         f"full scale = 1; loudness would read {20 * np.log10(peak):+.1f} dBFS)")


def peak_dbfs(peak: float) -> float:
    """The peak |sample| in dBFS (-inf for 0)."""
    return 20 * float(np.log10(peak)) if peak > 0 else float("-inf")


def check_sound(peak: float, name: str) -> None:
    """AudioError when a whole clip's peak |sample| is under :data:`SILENT_DBFS`: without it a
    model answers silence with a confident label (the full demo's detailed-dual: 99 % "angry" for
    3 s of digital silence, explained as "loud and clear", over Whisper's transcript "you")."""
    if peak_dbfs(peak) < SILENT_DBFS:
        level = "digital silence" if peak == 0 else f"peak {peak_dbfs(peak):.1f} dBFS"
        raise AudioError(f"{name}: no sound to analyze ({level}, under {SILENT_DBFS:.0f} dBFS): "
                         "silent, muted, or far too quiet")


def check_length(samples: int, name: str, max_seconds: float = MAX_SECONDS) -> None:
    """AudioError for a 16 kHz clip of ``samples`` that is empty, too short or over ``max_seconds``."""
    if samples == 0:
        raise AudioError(f"{name}: audio is empty (0 samples)")
    seconds = samples / SAMPLE_RATE
    if seconds < MIN_SECONDS:
        raise AudioError(f"{name}: audio is too short ({seconds * 1000:.0f} ms < {MIN_SECONDS * 1000:.0f} ms)")
    if seconds > max_seconds:
        raise AudioError(f"{name}: audio is {_duration(seconds)} long, over the {_duration(max_seconds)} limit")


def load_audio(source: str | Path | bytes, max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """Read a file (or encoded bytes) -> float32 mono 16 kHz waveform (T,).

    Any sample rate and channel count is accepted; any container/codec ffmpeg decodes when
    soundfile cannot. Raises AudioError with a one-line message.
    """
    name = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    check_file(source, name)
    try:
        wave = _read_soundfile(source, name, max_seconds)
    except _Undecodable as e:
        data, sr = _read_ffmpeg(source, name, max_seconds, e.reason)
        wave = resample(to_mono(np.asarray(data, dtype=np.float32)), sr)
    return validate_wave(wave, name, max_seconds)


def stream_audio(source: str | Path | bytes, max_seconds: float = MAX_SECONDS,
                 block_seconds: float = WINDOW_SECONDS) -> Iterator[np.ndarray]:
    """Read a file (or encoded bytes) as consecutive float32 mono 16 kHz blocks ((block_seconds * 16000,)
    each, the last one shorter), decoding one block at a time: memory is one block, not the clip.

    The blocks, joined, equal :func:`load_audio`'s waveform, and every check of ``load_audio``
    applies with the same one-line AudioError (the decoder is chosen by the first read, as there);
    the checks of samples (NaN, far outside [-1, 1]) and of a too short clip fire when the block
    that shows them is read, i.e. possibly after earlier blocks were yielded, and so does damage
    that libsndfile finds past its first 30 s (``load_audio`` would hand such a file to ffmpeg).
    ffmpeg-only formats are first decoded to a temporary 16 kHz file, then streamed from it.
    """
    name = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    check_file(source, name)
    size = max(1, int(block_seconds * SAMPLE_RATE))
    total = 0
    with contextlib.ExitStack() as stack:
        reason = None
        try:
            pieces = _iter_decoded(stack.enter_context(_open_soundfile(source, name, max_seconds)))
            head = [next(pieces)]  # the first read decides the decoder, as in load_audio
        except _Undecodable as e:
            reason = e.reason
        except AudioError:
            raise
        except Exception as e:  # a file whose header opened but whose data does not decode
            reason = str(e).splitlines()[0] if str(e) else e.__class__.__name__
        if reason is not None:
            stack.close()
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="emoreason-audio-"))
            wav = _ffmpeg_to_wav(source, name, max_seconds, reason, Path(tmp))
            pieces, head = _iter_decoded(stack.enter_context(sf.SoundFile(str(wav)))), []
        pending = np.zeros(0, dtype=np.float32)
        try:
            for piece in itertools.chain(head, pieces):
                check_samples(piece, name)
                pending = piece if pending.size == 0 else np.concatenate([pending, piece])
                while pending.size >= size:
                    total += size
                    if total / SAMPLE_RATE > max_seconds:  # a header that understated the length
                        check_length(total, name, max_seconds)
                    yield pending[:size]
                    pending = pending[size:]
        except AudioError:
            raise
        except Exception as e:  # LibsndfileError / RuntimeError on damage found past the first read
            detail = str(e).splitlines()[0] if str(e) else e.__class__.__name__
            raise AudioError(f"{name}: not a readable audio file ({detail})") from None
        total += pending.size
        check_length(total, name, max_seconds)
        if pending.size:
            yield pending


def check_file(source: str | Path | bytes, name: str) -> None:
    """AudioError for a path that is missing, a directory or empty (bytes pass)."""
    if isinstance(source, (bytes, bytearray)):
        return
    path = Path(source)
    if not path.exists():
        raise AudioError(f"{name}: file not found")
    if path.is_dir():
        raise AudioError(f"{name}: is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{name}: file is empty (0 bytes)")


class _Undecodable(Exception):
    """soundfile could not decode the input; ``reason`` is its one-line message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@contextlib.contextmanager
def _open_soundfile(source: str | Path | bytes, name: str, max_seconds: float) -> Iterator[sf.SoundFile]:
    """An open libsndfile reader, or raise :class:`_Undecodable` (AudioError when the header says it is too long)."""
    handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else str(source)
    try:
        f = sf.SoundFile(handle)
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError / TypeError on junk
        reason = str(e).splitlines()[0] if str(e) else e.__class__.__name__
        raise _Undecodable(reason.replace(repr(handle), repr(name))) from None  # not "<_io.BytesIO object at 0x...>"
    with f:
        sr = f.samplerate
        if f.frames / max(sr, 1) > max_seconds:
            raise AudioError(f"{name}: audio is {_duration(f.frames / sr)} long, over the {_duration(max_seconds)} limit")
        yield f


def _read_soundfile(source: str | Path | bytes, name: str, max_seconds: float) -> np.ndarray:
    """float32 mono 16 kHz (T,) via libsndfile, decoded block by block (:func:`_decode_blocks`), or
    raise :class:`_Undecodable`."""
    with _open_soundfile(source, name, max_seconds) as f:
        try:
            return _decode_blocks(f)
        except AudioError:
            raise
        except Exception as e:  # a file whose header opened but whose data does not decode
            reason = str(e).splitlines()[0] if str(e) else e.__class__.__name__
            raise _Undecodable(reason) from None


# Leading bytes -> format name, for error messages only (decoding never trusts the guess).
_MAGIC: list[tuple[int, bytes, str]] = [
    (0, b"RIFF", "wav"), (0, b"fLaC", "flac"), (0, b"OggS", "ogg"), (0, b"ID3", "mp3"), (0, b"\xff\xfb", "mp3"),
    (0, b"\xff\xf3", "mp3"), (0, b"\xff\xf1", "aac"), (0, b"\xff\xf9", "aac"), (4, b"ftyp", "mp4/m4a"),
    (0, b"\x1aE\xdf\xa3", "webm/matroska"), (0, b"FORM", "aiff"), (0, b"#!AMR", "amr"), (0, b"caff", "caf"),
]


def guess_format(source: str | Path | bytes) -> str:
    """A short name for what ``source`` looks like (``m4a``, ``webm/matroska``, ``unknown``): the
    file extension when there is one, else the leading bytes. Only for messages."""
    if not isinstance(source, (bytes, bytearray)):
        suffix = Path(source).suffix.lower().lstrip(".")
        if suffix:
            return suffix
        with open(source, "rb") as f:
            source = f.read(16)
    head = bytes(source[:16])
    return next((fmt for offset, magic, fmt in _MAGIC if head[offset:offset + len(magic)] == magic), "unknown")


def _read_ffmpeg(source: str | Path | bytes, name: str, max_seconds: float, sf_reason: str) -> tuple[np.ndarray, int]:
    """Decode with an ffmpeg subprocess to float32 16 kHz ((T,) or (T, C), sample rate); one-line AudioError naming the format
    when ffmpeg is missing or fails too."""
    with tempfile.TemporaryDirectory(prefix="emoreason-audio-") as tmp:
        data, sr = sf.read(str(_ffmpeg_to_wav(source, name, max_seconds, sf_reason, Path(tmp))), dtype="float32",
                           always_2d=False)
    if len(data) > max_seconds * sr:
        raise AudioError(f"{name}: audio is longer than the {_duration(max_seconds)} limit")
    return data, sr


def _ffmpeg_to_wav(source: str | Path | bytes, name: str, max_seconds: float, sf_reason: str, tmp: Path) -> Path:
    """Decode with an ffmpeg subprocess to a float32 16 kHz wav in ``tmp`` (its channels kept); one-line
    AudioError naming the format when ffmpeg is missing or fails too."""
    fmt = guess_format(source)
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise AudioError(f"{name}: not a readable audio file (format {fmt}: soundfile: {sf_reason}; ffmpeg, which "
                         f"decodes m4a/webm/mp3 and more, is not installed)")
    if isinstance(source, (bytes, bytearray)):
        # A file, not stdin: mp4/m4a keep their index (moov) at the end, which a pipe cannot seek to.
        path = tmp / "input"
        path.write_bytes(source)
    else:
        path = Path(source)
    # Decode one second past the limit: enough to tell "too long" without decoding hours. The
    # channels are kept (a float wav in the temp dir) and averaged by to_mono: ffmpeg's own -ac
    # mixes at -3 dB, and a clip must give the same samples whichever decoder read it.
    out = tmp / "decoded.wav"
    cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path), "-t", f"{max_seconds + 1:.3f}",
           "-vn", "-map", "0:a:0", "-ar", str(SAMPLE_RATE), "-c:a", "pcm_f32le", "-f", "wav", str(out)]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=max(60.0, max_seconds / 10))
    except subprocess.TimeoutExpired:
        raise AudioError(f"{name}: ffmpeg took too long to decode this {fmt} file") from None
    if done.returncode != 0 or not out.is_file():
        lines = [ln.strip() for ln in done.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
        detail = lines[-1].replace(str(path), name) if lines else "no audio stream"
        raise AudioError(f"{name}: not a readable audio file (format {fmt}: soundfile: {sf_reason}; ffmpeg: {detail})")
    return out


def _iter_decoded(f: sf.SoundFile) -> Iterator[np.ndarray]:
    """An open file -> consecutive float32 mono 16 kHz pieces, DECODE_BLOCK_SECONDS of the file at a time.

    Each block is downmixed and resampled through one soxr stream over the whole file, so block
    edges leave no seam: the pieces joined equal resampling the whole file at once.
    """
    sr = f.samplerate
    stream = None
    if sr != SAMPLE_RATE:
        import soxr

        stream = soxr.ResampleStream(sr, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
    block = max(1, int(DECODE_BLOCK_SECONDS * sr))
    while True:
        data = f.read(block, dtype="float32", always_2d=True)  # (n, C)
        last = data.shape[0] < block
        mono = to_mono(data) if data.shape[1] > 1 else data[:, 0]
        if stream is not None:
            mono = stream.resample_chunk(np.ascontiguousarray(mono, dtype=np.float32), last=last)
        yield np.ascontiguousarray(mono, dtype=np.float32)
        if last:
            break


def _decode_blocks(f: sf.SoundFile) -> np.ndarray:
    """An open file -> float32 mono 16 kHz (T,), read DECODE_BLOCK_SECONDS at a time (:func:`_iter_decoded`)
    into one preallocated output: peak memory is the 16 kHz mono result plus one block, not the
    file's samples at its own rate and channel count (a 2-hour 44.1 kHz stereo file is 2.5 GB as
    float32, 460 MB as 16 kHz mono).
    """
    expected = int(math.ceil(f.frames * SAMPLE_RATE / f.samplerate)) if f.frames > 0 else 0
    out = np.empty(expected + SAMPLE_RATE, dtype=np.float32)  # + 1 s: the stream may round up
    filled = 0
    for mono in _iter_decoded(f):
        if filled + mono.size > out.size:  # a header that understated its length: grow
            out = np.concatenate([out[:filled], np.empty(mono.size + SAMPLE_RATE, dtype=np.float32)])
        out[filled : filled + mono.size] = mono
        filled += mono.size
    return out[:filled].copy() if filled < out.size // 2 else out[:filled]


def probe_audio(path: str | Path, max_seconds: float = MAX_SECONDS) -> str | None:
    """What is wrong with an audio file, from its header only (no decoding), or None.

    Fast enough to check every clip of a training manifest before the first step: a missing,
    empty, unreadable, too short or absurdly long file. Damage past the header (a truncated data
    chunk) is only found when the file is decoded.
    """
    return probe_audio_seconds(path, max_seconds)[0]


def probe_audio_seconds(path: str | Path, max_seconds: float = MAX_SECONDS) -> tuple[str | None, float | None]:
    """:func:`probe_audio` and the file's length: (problem or None, seconds or None when unreadable)."""
    path = Path(path)
    if not path.is_file():
        return ("file not found" if not path.exists() else "not a regular file"), None
    if path.stat().st_size == 0:
        return "file is empty (0 bytes)", None
    try:
        info = sf.info(str(path))
    except Exception as e:  # soundfile's errors on junk (LibsndfileError, RuntimeError, TypeError)
        if shutil.which("ffmpeg") is not None:  # m4a / webm / ...: no header reader here, decode it once
            try:
                wave = load_audio(path, max_seconds)
            except AudioError as err:
                return str(err).removeprefix(f"{path}: "), None
            return None, wave.size / SAMPLE_RATE
        reason = str(e).splitlines()[0] if str(e) else e.__class__.__name__
        return f"not a readable audio file ({reason.replace(repr(str(path)), 'header')})", None
    seconds = info.frames / max(info.samplerate, 1)
    if seconds < MIN_SECONDS:
        return f"audio is too short ({seconds * 1000:.0f} ms < {MIN_SECONDS * 1000:.0f} ms)", seconds
    if seconds > max_seconds:
        return f"audio is {_duration(seconds)} long, over the {_duration(max_seconds)} limit", seconds
    return None, seconds


def save_audio(path: str | Path, wave: np.ndarray, sr: int = SAMPLE_RATE) -> None:
    """Write a mono float waveform as 16-bit PCM wav."""
    sf.write(str(path), np.asarray(wave, dtype=np.float32), sr, subtype="PCM_16")


PAUSE_FRAME_S = 0.01
"""Hop of the loudness track that :func:`pause_cut` looks for pauses in (10 ms)."""
PAUSE_SMOOTH_S = 0.1
"""Loudness is averaged over this much audio before the quietest stretch is sought, so a cut
lands in a pause between words, not in the gap of a plosive."""
PAUSE_MIN_DROP_DB = 6.0
"""A stretch counts as a pause only when it is this much quieter than the searched range's
median loudness; audio without one (a steady tone, continuous noise) is cut at the full length."""


def pause_cut(chunk: np.ndarray, earliest: int) -> int:
    """Where to end a window of (T,) ``chunk``: the middle of its longest pause that lies at or past
    sample ``earliest``, or ``chunk.size`` when that part has no pause.

    A pause is a run of 10 ms frames whose smoothed loudness (mean energy over 0.1 s) stays within
    3 dB of the range's quietest, at least :data:`PAUSE_MIN_DROP_DB` below its median; the longest
    run wins, the later one on a tie (longer windows). Depends only on ``chunk``, so streamed
    and whole-clip splits agree."""
    hop = int(PAUSE_FRAME_S * SAMPLE_RATE)
    tail = np.asarray(chunk[earliest:], dtype=np.float64)
    frames = tail.size // hop
    if frames < 3:
        return chunk.size
    energy = (tail[: frames * hop].reshape(frames, hop) ** 2).mean(axis=1)
    width = min(frames, max(1, int(PAUSE_SMOOTH_S / PAUSE_FRAME_S)))
    # "valid": no zero padding, which would make the range's ends look like pauses
    smooth = np.convolve(energy, np.ones(width) / width, mode="valid")  # frame j + width // 2 is its centre
    db = 10 * np.log10(smooth + 1e-12)
    quietest = db.min()
    if np.median(db) - quietest < PAUSE_MIN_DROP_DB:
        return chunk.size
    quiet = np.concatenate([[False], db <= quietest + 3.0, [False]])
    edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
    starts, ends = edges[0::2], edges[1::2]  # runs [start, end) in frames
    longest = np.flatnonzero(ends - starts == (ends - starts).max())[-1]
    middle = (starts[longest] + ends[longest]) // 2 + width // 2
    return earliest + int(middle) * hop


def split_windows(wave: np.ndarray, window_seconds: float = WINDOW_SECONDS,
                  cut: str = "pause") -> list[tuple[float, float, np.ndarray]]:
    """Split (T,) into consecutive windows of at most ``window_seconds``: [(start_s, end_s, chunk)],
    views of ``wave``.

    ``cut``: ``pause`` (default) ends each window that is not the last at the longest pause in its
    second half (:func:`pause_cut`), so an utterance is not cut in two where the audio allows it;
    ``fixed``: at exactly ``window_seconds``. A trailing piece shorter than 1 s after at least one
    window is dropped: too short to carry an emotion, and it would cost a whole forward pass.
    """
    return list(stream_windows(iter([wave]), window_seconds, cut))


def window_size(window_seconds: float) -> int:
    """Samples in a window of ``window_seconds`` (16 kHz); UserError unless 1 s <= it <= 30 s."""
    if not 1.0 <= float(window_seconds) <= WINDOW_SECONDS:
        raise UserError(f"window length must be between 1 and {WINDOW_SECONDS:g} s, got {window_seconds!r}")
    return int(window_seconds * SAMPLE_RATE)


MIN_AUTO_WINDOW_SECONDS = 4.0
"""The shortest window :func:`window_for_clips` picks: a window that ends at a pause in its second
half may then hold 2 s, about one short utterance, and each window costs a forward pass (the
shortest measured, 5 s, labelled the demo's six-utterance files about as well as 7 s:
docs/inference.md, "long audio")."""


def window_for_clips(seconds: Sequence[float]) -> float:
    """The long-audio window length for a model trained on clips of these lengths: twice their
    median, rounded up to whole seconds, between :data:`MIN_AUTO_WINDOW_SECONDS` and 30 s. Cut at
    pauses in their second half, windows then hold about one to two typical training clips; a
    window much longer than what the model heard holds several utterances, and the model hears
    their mixture as none of them (docs/inference.md, "long audio", has the measurement)."""
    if len(seconds) == 0:
        return WINDOW_SECONDS
    twice = math.ceil(2 * float(np.median(np.asarray(seconds, dtype=np.float64))))
    return float(min(WINDOW_SECONDS, max(MIN_AUTO_WINDOW_SECONDS, twice)))


def stream_windows(blocks: Iterator[np.ndarray], window_seconds: float = WINDOW_SECONDS, cut: str = "pause",
                   ) -> Iterator[tuple[float, float, np.ndarray]]:
    """:func:`split_windows` over a clip given as consecutive (T_i,) blocks (:func:`stream_audio`):
    the same windows, yielded as soon as each is decided, so at most one window plus one block is
    held at a time."""
    if cut not in ("pause", "fixed"):
        raise UserError(f"unknown window cut {cut!r} (expected 'pause' or 'fixed')")
    size = window_size(window_seconds)
    pending, start, count = np.zeros(0, dtype=np.float32), 0, 0
    for block in blocks:
        pending = block if pending.size == 0 else np.concatenate([pending, block])
        # more than a window waiting: the first window is decided (a window exactly `size` long
        # may be the clip's last, so it waits for the next sample)
        while pending.size > size:
            end = pause_cut(pending[:size], size // 2) if cut == "pause" else size
            yield start / SAMPLE_RATE, (start + end) / SAMPLE_RATE, pending[:end]
            pending, start, count = pending[end:], start + end, count + 1
    if pending.size and not (count and pending.size < SAMPLE_RATE):  # a trailing sliver: not worth a window
        yield start / SAMPLE_RATE, (start + pending.size) / SAMPLE_RATE, pending
