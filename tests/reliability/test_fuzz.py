"""Bounded seeded fuzzing of the two readers every user file goes through: ``load_audio`` and the
manifest reader. Any input either loads or fails with the module's one-line error; nothing else
escapes. (Seeded ``random`` rather than hypothesis: no extra test dependency.)"""
from __future__ import annotations

import io
import json
import random

import numpy as np
import pytest
import soundfile as sf

from emoreason.audio import AudioError, load_audio
from emoreason.data.manifest import ManifestError, read_manifest

CASES = 120


def _wav_bytes(rng: random.Random) -> bytes:
    sr = rng.choice([8000, 16000, 22050, 44100, 48000])
    n = rng.choice([0, 1, 10, 800, 1600, sr])
    ch = rng.choice([1, 2])
    data = np.random.default_rng(rng.randrange(2**32)).normal(0, rng.choice([0.1, 1.0, 50.0]), (n, ch)).astype(np.float32)
    buf = io.BytesIO()
    fmt = rng.choice(["WAV", "FLAC"])
    sf.write(buf, np.clip(data, -1, 1) if fmt == "FLAC" else data, sr, format=fmt,
             subtype="PCM_16" if fmt == "FLAC" else rng.choice(["PCM_16", "FLOAT"]))
    return buf.getvalue()


def _mutate(blob: bytes, rng: random.Random) -> bytes:
    b = bytearray(blob)
    for _ in range(rng.randrange(1, 6)):
        op = rng.randrange(4)
        if op == 0 and b:  # flip bytes (header or samples)
            i = rng.randrange(min(len(b), 64) if rng.random() < 0.6 else len(b))
            b[i] = rng.randrange(256)
        elif op == 1:  # truncate
            b = b[: rng.randrange(len(b) + 1)]
        elif op == 2:  # junk appended
            b += bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
        else:  # a NaN / inf sample pattern
            b += np.array([np.nan, np.inf], np.float32).tobytes()
    return bytes(b)


def test_audio_loader_fuzz(tmp_path):
    rng = random.Random(13)
    outcomes = {"ok": 0, "error": 0}
    for case in range(CASES):
        blob = _wav_bytes(rng)
        if case % 4:
            blob = _mutate(blob, rng)
        source = blob if case % 2 else tmp_path / f"f{case}.wav"
        if not isinstance(source, bytes):
            source.write_bytes(blob)
        try:
            wave = load_audio(source, max_seconds=5.0)
        except AudioError as e:
            assert "\n" not in str(e) and str(e)
            outcomes["error"] += 1
            continue
        assert wave.dtype == np.float32 and wave.ndim == 1 and np.isfinite(wave).all() and np.abs(wave).max() <= 4.0
        outcomes["ok"] += 1
    assert outcomes["ok"] > 10 and outcomes["error"] > 10  # both sides were exercised


def _row(rng: random.Random) -> object:
    if rng.random() < 0.6:  # a valid row, so whole files sometimes pass
        return {"id": f"x{rng.randrange(99)}", "audio": "a.wav", "task": "emotion", "label": "angry", "transcript": "hi"}
    fields = {"id": "x1", "audio": "a.wav", "task": rng.choice(["asr", "emotion", "sentiment", "sqa", "?"]),
              "label": rng.choice(["angry", None, 3, ""]), "transcript": rng.choice(["hi", None, ["hi"], "<audio>"]),
              "duration": rng.choice([1.5, -1, "2", None, float("nan"), True]), "split": rng.choice(["train", "dev", "x", None]),
              "meta": rng.choice([{}, {"q": "<audio_end>"}, [], None]), "bogus": 1}
    row = {k: v for k, v in fields.items() if rng.random() < 0.8 and not (k == "bogus" and rng.random() < 0.8)}
    return rng.choice([row, row, row, [row], "text", 42, None])


def test_manifest_reader_fuzz(tmp_path):
    rng = random.Random(7)
    path = tmp_path / "m.jsonl"
    seen = {"ok": 0, "error": 0}
    for case in range(CASES):
        lines = []
        for _ in range(rng.randrange(1, 4)):
            text = json.dumps(_row(rng))
            if rng.random() < 0.15:
                text = text[: rng.randrange(len(text) + 1)]  # torn / broken JSON
            lines.append(text.encode())
        blob = b"\n".join(lines) + (b"\n" if rng.random() < 0.8 else b"")
        if rng.random() < 0.1:
            blob += b"\xff\xfe\n"
        path.write_bytes(blob)
        try:
            read_manifest(path)
            seen["ok"] += 1
        except ManifestError as e:
            assert str(e).startswith(f"{path}:") and "\n" not in str(e)
            seen["error"] += 1
        # the lenient mode never raises: bad rows are reported and skipped
        bad: list[int] = []
        read_manifest(path, strict=False, on_error=lambda line, reason: bad.append(line))
    assert seen["ok"] > 5 and seen["error"] > 5
