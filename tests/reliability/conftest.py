"""Shared fixtures of the reliability suite: a tiny random run, a small manifest of generated clips."""
from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random model saved as a run directory (seconds to build, no downloads)."""
    from emoreason.testing.tiny import save_tiny_run

    return save_tiny_run(tmp_path_factory.mktemp("tiny-run"))


def write_manifest(directory: Path, n: int = 8, **overrides) -> Path:
    """``n`` rows of 0.6 s tones (emotion / asr alternating, split train) -> manifest path;
    ``overrides``: row index -> dict of fields replacing that row's."""
    from emoreason.audio import save_audio
    from emoreason.testing.fixtures import tone

    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        save_audio(directory / f"c{i}.wav", tone(0.6, 120 + 10 * i))
        row = {"id": f"c{i}", "audio": f"c{i}.wav", "split": "train", "transcript": f"clip number {i}"}
        row.update({"task": "emotion", "label": ["angry", "sad", "happy", "neutral"][i % 4]} if i % 2 else {"task": "asr"})
        row.update(overrides.get(f"r{i}", {}))
        lines.append(json.dumps(row))
    path = directory / "manifest.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path
