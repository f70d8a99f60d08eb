"""SIGKILL at a seeded point of every long-running command, then a rerun: the result equals an
uninterrupted run's, and no output file holds a torn or repeated row.

The kill point is "after the output has k rows, plus a random 0-0.5 s", k and the delay drawn from
the seed (EMOREASON_FAULT_SEEDS=0,1,2 runs more points). References run in-process; the killed
run is a child process.
"""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file

from emoreason.cli import main
from emoreason.testing.fakeserver import FakeTeacherServer

from .conftest import TRAIN, seeds, write_manifest
from .procs import cli, kill_when, rows


def lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def k_of(seed: int, n: int) -> int:
    return random.Random(f"k{seed}").randrange(n)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Six short clips and their manifest (emotion / asr rows)."""
    return write_manifest(tmp_path_factory.mktemp("clips"), n=6)


@pytest.mark.parametrize("seed", seeds())
def test_analyze_out(tiny_run, clips, tmp_path, seed):
    files = sorted(str(p) for p in clips.parent.glob("c*.wav"))
    args = ["analyze", "--model", str(tiny_run), *files, "--max-new-tokens", "3", "--batch-size", "1", "--json"]
    assert main([*args, "--out", str(tmp_path / "ref.jsonl")]) == 0
    out = tmp_path / "out.jsonl"
    kill_when(cli(*args, "--out", str(out)), lambda: lines(out) >= k_of(seed, len(files)), seed)
    assert main([*args, "--out", str(out)]) == 0
    ref, got = rows(tmp_path / "ref.jsonl"), rows(out)
    assert [r["file"] for r in got] == files  # each file once, in order
    for a, b in zip(ref, got):
        assert (a["label"], a["explanation"]) == (b["label"], b["explanation"])
        assert a["scores"] == pytest.approx(b["scores"], rel=1e-4)


@pytest.mark.parametrize("seed", seeds())
def test_eval_run(tiny_run, clips, tmp_path, seed):
    args = ["eval", "run", "--model", str(tiny_run), "--manifest", str(clips), "--max-new-tokens", "3",
            "--batch-size", "1", "--bootstrap", "10"]
    assert main([*args, "--out", str(tmp_path / "ref")]) == 0
    out = tmp_path / "out"
    preds = out / "predictions.jsonl"
    kill_when(cli(*args, "--out", str(out)), lambda: lines(preds) >= k_of(seed, 6), seed)
    assert main([*args, "--out", str(out)]) == 0
    ref, got = rows(tmp_path / "ref" / "predictions.jsonl"), rows(preds)
    assert [r["id"] for r in got] == [r["id"] for r in ref]
    assert [r["prediction"] for r in got] == [r["prediction"] for r in ref]
    assert [r["score"] for r in rows(out / "scores.jsonl")] == [r["score"] for r in rows(tmp_path / "ref" / "scores.jsonl")]


def _judge_answer(prompt: str) -> str:
    return f"Rating: {len(prompt) % 2}"


@pytest.mark.parametrize("seed", seeds())
def test_eval_score_with_an_llm_judge(tmp_path, seed):
    preds = tmp_path / "p.jsonl"
    preds.write_text("".join(json.dumps({"id": f"r{i}", "label": ["angry", "sad"][i % 2],
                                         "prediction": f"answer {i} " + "x" * i}) + "\n" for i in range(16)))
    with FakeTeacherServer(delay_s=0.15, text_answer=_judge_answer) as server:
        args = ["eval", "score", "--predictions", str(preds), "--judge", server.url, "--concurrency", "2", "--bootstrap", "10"]
        assert main([*args, "--out", str(tmp_path / "ref")]) == 0
        out = tmp_path / "out"
        kill_when(cli(*args, "--out", str(out)), lambda: lines(out / "scores.jsonl") >= k_of(seed, 12), seed)
        before = server.requests
        assert main([*args, "--out", str(out)]) == 0
        asked = server.requests - before
    ref, got = rows(tmp_path / "ref" / "scores.jsonl"), rows(out / "scores.jsonl")
    assert [(r["id"], r["score"]) for r in got] == [(r["id"], r["score"]) for r in ref]
    assert asked <= 16  # at most the rows not yet on disk (the cache covers the rest)


@pytest.mark.parametrize("seed", seeds())
def test_data_teach(clips, tmp_path, seed):
    with FakeTeacherServer(delay_s=0.2) as server:
        args = ["data", "teach", "--manifest", str(clips), "--teacher", server.url, "--concurrency", "1", "--no-progress"]
        assert main([*args, "--out", str(tmp_path / "ref.jsonl")]) == 0
        out = tmp_path / "out.jsonl"
        kill_when(cli(*args, "--out", str(out)), lambda: lines(out) >= k_of(seed, 3), seed)
        assert main([*args, "--out", str(out)]) == 0
    ref, got = rows(tmp_path / "ref.jsonl"), rows(out)
    assert sorted(json.dumps(r, sort_keys=True) for r in got) == sorted(json.dumps(r, sort_keys=True) for r in ref)


@pytest.mark.parametrize("seed", seeds())
def test_train(finished_run, tmp_path, seed):
    run = tmp_path / "run"
    metrics = run / "metrics.jsonl"
    args = ["train", "--out", str(run), "--cache-dir", str(finished_run / "cache"), *TRAIN]
    kill_when(cli(*args), lambda: lines(metrics) >= 1 + k_of(seed, 6), seed, max_extra_s=1.0)
    assert main(args) == 0
    a = load_file(str(finished_run / "ref" / "final" / "trainable.safetensors"))
    b = load_file(str(run / "final" / "trainable.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    steps = [r["step"] for r in rows(metrics) if r["task"] == "all"]
    assert steps == sorted(set(steps))  # no step logged twice after the resume
