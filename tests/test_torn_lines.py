"""A crash mid-write leaves half a line at the end of an append-only JSONL file. Every resumable
writer must cut that fragment off before appending, so the rerun neither glues its first row onto
the fragment (an unparsable file, a lost result) nor fails on it forever.

Each test runs a writer once, tears its last line by hand (cut in the middle, no newline: what a
kill -9 or a full disk leaves), reruns the same command and checks the file parses line by line
and holds every result exactly once."""
from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emoreason.cli import main
from emoreason.configs import config_path

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def tear_last_line(path: Path) -> str:
    """Cut the file in the middle of its last line; return the id-bearing text that was lost."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    assert lines and lines[-1].endswith("\n")
    path.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2], encoding="utf-8")
    return lines[-1]


def parsed_lines(path: Path) -> list[dict]:
    """Every line must be one JSON object (raises on a glued or torn line)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    from emoreason.testing.tiny import save_tiny_run

    return save_tiny_run(tmp_path_factory.mktemp("run"))


def test_analyze_out_recovers_from_a_torn_last_line(run_dir, tmp_path, capsys):
    clips = []
    for i in range(2):
        path = tmp_path / f"clip{i}.wav"
        t = np.arange(16000) / 16000
        sf.write(path, (0.2 * np.sin(2 * np.pi * (150 + 50 * i) * t)).astype(np.float32), 16000)
        clips.append(str(path))
    out = tmp_path / "results.jsonl"
    args = ["analyze", "--model", str(run_dir), *clips, "--out", str(out), "--max-new-tokens", "0"]
    assert main(args) == 0
    tear_last_line(out)  # clip1's result is lost mid-write
    assert main(args) == 0  # clip1 is analysed again, clip0 is not
    rows = parsed_lines(out)
    assert [r["file"] for r in rows] == clips
    assert all("error" not in r for r in rows)


@needs_espeak
def test_eval_run_recovers_from_a_torn_last_line(run_dir, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rows = []
    for cid, text, label in [("c1", "I hate this", "angry"), ("c2", "Thank you so much", "happy")]:
        subprocess.run(["espeak-ng", "-w", str(corpus / f"{cid}.wav"), text], check=True, capture_output=True)
        rows.append({"id": cid, "audio": f"{cid}.wav", "task": "emotion", "label": label, "transcript": text, "split": "test"})
    manifest = corpus / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "eval"
    argv = ["eval", "run", "--model", str(run_dir), "--manifest", str(manifest), "--out", str(out),
            "--max-new-tokens", "2", "--bootstrap", "20"]
    assert main(argv) == 0
    predictions = out / "predictions.jsonl"
    tear_last_line(predictions)
    assert main(argv) == 0  # neither "not valid JSON" on every rerun nor a glued line
    assert sorted(p["id"] for p in parsed_lines(predictions)) == ["c1", "c2"]
    assert json.loads((out / "metrics.json").read_text())["tasks"]["emotion"]["n"] == 2


def test_cascade_recovers_from_a_torn_last_line(tmp_path, monkeypatch):
    from emoreason.data.manifest import read_manifest
    from emoreason.eval import cascade
    from emoreason.testing.fixtures import make_manifest

    manifest = make_manifest(tmp_path / "corpus", audio=True)
    rows = [r for r in read_manifest(manifest) if r.task in ("emotion", "sentiment")]
    transcripts = {r.id: r.transcript for r in rows}

    class TranscriptASR:  # the packaged Whisper is tested in test_eval_run; here only the file matters
        order: list[str] = []

        def __init__(self, spec=None):
            pass

        def transcribe(self, waves):
            return [transcripts[self.order.pop(0)] for _ in waves]

    monkeypatch.setattr(cascade, "WhisperASR", TranscriptASR)
    out = tmp_path / "preds.jsonl"

    TranscriptASR.order = [r.id for r in rows]
    cascade.cascade_predictions(manifest, out)
    tear_last_line(out)  # the last row is lost mid-write and must be redone
    TranscriptASR.order = [rows[-1].id]
    cascade.cascade_predictions(manifest, out)
    assert [p["id"] for p in parsed_lines(out)] == [r.id for r in rows]


def test_train_resumes_when_metrics_end_in_a_torn_line(tmp_path):
    tiny = config_path("tiny")
    out = tmp_path / "run"
    args = ["train", "--config", str(tiny), "--out", str(out), "data.train_manifest=dummy:12",
            "train.max_steps=3", "train.save_every_steps=2"]
    assert main(args) == 0
    metrics = out / "metrics.jsonl"
    tear_last_line(metrics)
    # as after a kill between step 2's checkpoint and the end: resume from step 2
    shutil.rmtree(out / "final")
    for ckpt in (out / "checkpoints").glob("step-3"):
        shutil.rmtree(ckpt)
    assert main(args) == 0
    rows = parsed_lines(metrics)
    steps = sorted({r["step"] for r in rows})
    assert steps == [1, 2, 3]
    assert len([r for r in rows if r["task"] == "all"]) == 3
