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


TRAIN = ["--config", "tiny", "data.train_manifest=dummy:12", "train.epochs=2", "train.alternation_epochs=2",
         "train.final_phase=false", "train.save_every_steps=2", "train.keep_checkpoints=2"]
"""A tiny training run of a few steps with a checkpoint every 2 of them (the last 2 kept)."""


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root holding ``ref/`` (TRAIN run to the end, uninterrupted) and ``cache/`` (its clips)."""
    from emoreason.cli import main

    root = tmp_path_factory.mktemp("ckpt")
    assert main(["train", "--out", str(root / "ref"), "--cache-dir", str(root / "cache"), *TRAIN]) == 0
    return root


def seeds() -> list[int]:
    """Kill-point seeds: one by default (CI time), more with EMOREASON_FAULT_SEEDS=0,1,2,..."""
    import os

    return [int(s) for s in os.environ.get("EMOREASON_FAULT_SEEDS", "0").split(",")]
