"""Generated corpora for tests and smoke runs: ``dummy:N`` in ``data.train_manifest``.

Each clip is synthesised with numpy, so no download, no espeak and no corpus are needed. The
acoustics carry the label (pitch and loudness per emotion, as a crude stand-in for prosody) so a
model can in principle learn it; the "transcript" is a few words from a small vocabulary.

The corpus is written once per (N, seed) to a cache directory as 16 kHz wav files plus a
``manifest.jsonl`` (the manifest contract of ARCHITECTURE.md), atomically: a crash leaves no half
corpus behind, and concurrent processes (e.g. two DDP ranks) agree on the result.
"""
from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np

from emoreason.audio import SAMPLE_RATE, save_audio
from emoreason.data.manifest import ManifestRow, write_manifest
from emoreason.errors import UserError

DUMMY_PREFIX = "dummy:"

# label -> (base pitch Hz, amplitude): high and loud for angry/happy, low and soft for sad.
EMOTION_ACOUSTICS: dict[str, tuple[float, float]] = {
    "neutral": (160.0, 0.20),
    "happy": (260.0, 0.35),
    "sad": (110.0, 0.10),
    "angry": (220.0, 0.60),
}
WORDS = ["yes", "no", "today", "really", "fine", "never", "again", "please", "stop", "great", "home", "now"]
SPEAKERS = ["spk0", "spk1", "spk2", "spk3"]
# Task mix of a dummy corpus: both task groups of the alternating schedule must be present.
TASKS = ["emotion", "asr", "sentiment", "sqa"]
INSTRUCTIONS = {
    "emotion": "What emotion does the speaker convey?",
    "sentiment": "Is the speaker's sentiment positive, negative or neutral?",
    "asr": "Transcribe the speech.",
    "sqa": "How many words does the speaker say?",
}
_SENTIMENT = {"neutral": "neutral", "happy": "positive", "sad": "negative", "angry": "negative"}


def default_cache_dir() -> Path:
    """``$EMOREASON_CACHE/dummy`` or ``~/.cache/emoreason/dummy``."""
    root = os.environ.get("EMOREASON_CACHE") or Path.home() / ".cache" / "emoreason"
    return Path(root) / "dummy"


def parse_dummy_spec(spec: str) -> int | None:
    """``"dummy:12"`` -> 12; any other string -> None; ``"dummy:x"`` -> UserError."""
    if not spec.startswith(DUMMY_PREFIX):
        return None
    raw = spec[len(DUMMY_PREFIX):]
    if not raw.isdigit() or int(raw) < 1:
        raise UserError(f"data manifest {spec!r}: expected dummy:N with N >= 1")
    return int(raw)


def synth_clip(label: str, n_words: int, rng: np.random.Generator) -> np.ndarray:
    """One clip (T,) float32 at 16 kHz: a harmonic tone per word, pitch/energy set by ``label``.

    Words are 0.12-0.2 s tone bursts separated by short pauses, with a little noise, so clip
    length grows with the transcript (as speech does).
    """
    pitch, amp = EMOTION_ACOUSTICS[label]
    pieces = [np.zeros(int(0.05 * SAMPLE_RATE), np.float32)]
    for _ in range(n_words):
        dur = rng.uniform(0.12, 0.2)
        t = np.arange(int(dur * SAMPLE_RATE)) / SAMPLE_RATE
        f0 = pitch * rng.uniform(0.9, 1.1)
        tone = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in (1, 2, 3))
        envelope = np.hanning(t.size)
        pieces.append((amp * envelope * tone).astype(np.float32))
        pieces.append(np.zeros(int(rng.uniform(0.03, 0.08) * SAMPLE_RATE), np.float32))
    wave = np.concatenate(pieces)
    wave += rng.normal(0.0, 0.005, wave.size).astype(np.float32)
    return np.clip(wave, -1.0, 1.0)


def _rows(n: int, seed: int) -> list[tuple[ManifestRow, np.ndarray]]:
    """N rows cycling over tasks and labels; split 80/10/10 by index (train first)."""
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    labels = list(EMOTION_ACOUSTICS)
    out = []
    for i in range(n):
        task = TASKS[i % len(TASKS)]
        label = labels[(i // len(TASKS)) % len(labels)]
        words = [pick.choice(WORDS) for _ in range(pick.randint(2, 5))]
        transcript = " ".join(words)
        wave = synth_clip(label, len(words), rng)
        if task == "emotion":
            target = f"The speaker sounds {label}."
        elif task == "sentiment":
            target = _SENTIMENT[label]
        elif task == "asr":
            target = transcript
        else:
            target = str(len(words))
        split = "train" if i < max(1, int(0.8 * n)) else ("dev" if i < int(0.9 * n) else "test")
        row = ManifestRow(
            id=f"dummy-{i:05d}",
            audio=f"wav/dummy-{i:05d}.wav",
            task=task,
            duration=round(wave.size / SAMPLE_RATE, 3),
            transcript=transcript,
            label=_SENTIMENT[label] if task == "sentiment" else label,
            instruction=INSTRUCTIONS[task],
            target=target,
            split=split,
            speaker=SPEAKERS[i % len(SPEAKERS)],
            source="dummy",
        )
        out.append((row, wave))
    return out


def make_dummy_corpus(n: int, cache_dir: str | Path | None = None, seed: int = 0) -> Path:
    """Write (or reuse) N generated clips; return the path of their ``manifest.jsonl``.

    Deterministic in (n, seed). Built in a temporary sibling directory and renamed into place, so
    readers never see a partial corpus; if another process won the race its copy is kept.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    final = root / f"n{n}-seed{seed}"
    manifest = final / "manifest.jsonl"
    if manifest.is_file():
        return manifest
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".n{n}-seed{seed}-", dir=root))
    try:
        (tmp / "wav").mkdir()
        rows = _rows(n, seed)
        for row, wave in rows:
            save_audio(tmp / row.audio, wave)
        write_manifest(tmp / "manifest.jsonl", [row for row, _ in rows])
        try:
            os.rename(tmp, final)
        except OSError:
            if not manifest.is_file():  # not a lost race: a real failure
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def resolve_manifest(spec: str, cache_dir: str | Path | None = None, columns: dict[str, str] | None = None) -> Path:
    """A ``data.*_manifest`` value -> manifest path: ``dummy:N`` generates the corpus first; a
    ``datasets`` directory, parquet file or ``hf:ID`` is written as a manifest once
    (``emoreason.data.hf_source``, ``columns``: manifest field -> column)."""
    from emoreason.data.hf_source import is_dataset_source, materialize

    if is_dataset_source(spec):
        return materialize(spec, columns)
    n = parse_dummy_spec(spec)
    if n is None:
        return Path(spec)
    return make_dummy_corpus(n, cache_dir)
