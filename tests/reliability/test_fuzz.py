"""Property-based fuzz (hypothesis) of the two readers every user file goes through: the audio
loader (``load_audio`` and the streaming ``stream_audio`` the engine reads long files with) and the
manifest reader. Any input either loads or fails with the module's one-line error; nothing else
escapes; the streaming reader gives the same samples or the same error as the whole-file one.

Bounded and deterministic for CI: ``derandomize`` (examples follow from the test itself, no
database, no clock), a fixed number of examples, no deadline (2 shared cores)."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emoreason.audio import AudioError, load_audio, stream_audio
from emoreason.data.manifest import ManifestError, read_manifest

FUZZ = settings(max_examples=120, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
MAX_SECONDS = 5.0


# ---------------------------------------------------------------------- audio
@st.composite
def wav_bytes(draw: st.DrawFn) -> bytes:
    """An encoded clip: WAV (PCM_16 or float, samples possibly far outside [-1, 1]) or FLAC, any
    common rate, mono or stereo, 0 samples to 1 s."""
    sr = draw(st.sampled_from([8000, 16000, 22050, 44100, 48000]))
    n = draw(st.sampled_from([0, 1, 10, 800, 1600, sr]))
    channels = draw(st.integers(1, 2))
    scale = draw(st.sampled_from([0.1, 1.0, 50.0]))
    data = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).normal(0, scale, (n, channels)).astype(np.float32)
    fmt = draw(st.sampled_from(["WAV", "FLAC"]))
    subtype = "PCM_16" if fmt == "FLAC" else draw(st.sampled_from(["PCM_16", "FLOAT"]))
    buf = io.BytesIO()
    sf.write(buf, np.clip(data, -1, 1) if fmt == "FLAC" else data, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


MUTATIONS = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(0, 255), st.booleans()),  # a byte (header or samples)
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("append"), st.binary(max_size=64)),  # junk at the end
    st.tuples(st.just("nan"),),  # a NaN / inf sample pattern
)


def mutate(blob: bytes, ops: list[tuple]) -> bytes:
    b = bytearray(blob)
    for op in ops:
        if op[0] == "flip" and b:
            _, i, value, in_header = op
            b[i % (min(len(b), 64) if in_header else len(b))] = value
        elif op[0] == "truncate":
            b = b[: int(op[1] * len(b))]
        elif op[0] == "append":
            b += op[1]
        elif op[0] == "nan":
            b += np.array([np.nan, np.inf], np.float32).tobytes()
    return bytes(b)


AUDIO = st.one_of(wav_bytes(), st.builds(mutate, wav_bytes(), st.lists(MUTATIONS, min_size=1, max_size=5)),
                  st.binary(max_size=300))
"""Valid clips, damaged ones, and plain junk."""


def load_outcome(load, source) -> np.ndarray | str:
    """``load(source)`` -> its waveform, or the AudioError's message; anything else fails the test."""
    try:
        wave = load(source)
    except AudioError as e:
        message = str(e)
        assert message and "\n" not in message, repr(message)
        return message
    assert wave.dtype == np.float32 and wave.ndim == 1 and wave.size > 0
    assert np.isfinite(wave).all() and np.abs(wave).max() <= 4.0
    return wave


def streamed(source) -> np.ndarray:
    blocks = list(stream_audio(source, max_seconds=MAX_SECONDS, block_seconds=0.25))  # many blocks even for short clips
    assert all(b.size == 4000 for b in blocks[:-1])
    return np.concatenate(blocks)


@FUZZ
@given(blob=AUDIO, as_file=st.booleans())
def test_audio_loader_fuzz(blob, as_file, tmp_path_factory):
    source: bytes | Path = blob
    if as_file:
        source = tmp_path_factory.mktemp("fuzz") / "clip.wav"
        source.write_bytes(blob)
    whole = load_outcome(lambda s: load_audio(s, max_seconds=MAX_SECONDS), source)
    stream = load_outcome(streamed, source)
    if isinstance(whole, str):
        assert stream == whole  # the same one-line error, whichever reader
    else:
        assert isinstance(stream, np.ndarray) and np.array_equal(stream, whole)


def test_loader_fuzz_can_fail():
    """The property rejects what it must: a foreign exception, a multi-line error, NaN samples."""
    def boom(_):
        raise ValueError("not an AudioError")

    with pytest.raises(ValueError):
        load_outcome(boom, b"")
    with pytest.raises(AssertionError):
        load_outcome(lambda _: (_ for _ in ()).throw(AudioError("two\nlines")), b"")
    with pytest.raises(AssertionError):
        load_outcome(lambda _: np.array([np.nan], np.float32), b"")


# ---------------------------------------------------------------------- manifests
JUNK = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=12),
                 st.lists(st.text(max_size=4), max_size=2), st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))

VALID_ROW = st.builds(lambda i: {"id": f"x{i}", "audio": "a.wav", "task": "emotion", "label": "angry", "transcript": "hi"},
                      st.integers(0, 99))

ODD_ROW = st.fixed_dictionaries({}, optional={
    "id": st.one_of(st.just("x1"), JUNK), "audio": st.one_of(st.just("a.wav"), JUNK),
    "task": st.sampled_from(["asr", "emotion", "sentiment", "sqa", "?"]),
    "label": st.one_of(st.sampled_from(["angry", "", "ANGRY"]), JUNK),
    "transcript": st.one_of(st.sampled_from(["hi", "<audio>", "<audio_end>"]), JUNK),
    "duration": st.one_of(st.sampled_from([1.5, -1.0, float("nan")]), JUNK),
    "split": st.one_of(st.sampled_from(["train", "dev", "test", "x"]), JUNK),
    "meta": st.one_of(st.just({"q": "<audio_end>"}), JUNK), "bogus": JUNK,
})


@st.composite
def manifest_line(draw: st.DrawFn) -> bytes:
    row = draw(st.one_of(VALID_ROW, VALID_ROW, ODD_ROW, st.lists(ODD_ROW, max_size=1), JUNK))
    text = json.dumps(row)
    if draw(st.integers(0, 9)) == 0:  # torn / broken JSON
        text = text[: draw(st.integers(0, len(text)))]
    return text.encode()


@FUZZ
@given(lines=st.lists(manifest_line(), min_size=1, max_size=4), newline=st.booleans(),
       tail=st.sampled_from([b"", b"", b"", b"\xff\xfe\n", b"\n\n", b"   \n"]))
def test_manifest_reader_fuzz(lines, newline, tail, tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "m.jsonl"
    path.write_bytes(b"\n".join(lines) + (b"\n" if newline else b"") + tail)
    try:
        read_manifest(path)
    except ManifestError as e:
        assert str(e).startswith(f"{path}:") and "\n" not in str(e)
    # the lenient mode never raises: bad rows are reported and skipped
    bad: list[int] = []
    read_manifest(path, strict=False, on_error=lambda line, reason: bad.append(line))
