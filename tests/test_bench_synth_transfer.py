"""benchmarks/synth_transfer.py: the held-out-synthesiser probe, run end to end at a tiny size
(espeak-ng held-out voice, a random-weight Whisper encoder so it takes seconds), and its metrics."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from emoreason.testing.benchmarks import load_benchmark



@pytest.fixture(scope="module")
def bench():
    return load_benchmark("synth_transfer")


def test_unweighted_accuracy_and_ci(bench):
    classes = list(bench.EMOTIONS)
    y = np.array(["neutral"] * 6 + ["happy"] * 2)
    pred = np.array(["neutral"] * 6 + ["neutral"] * 2)  # majority class only
    assert bench.unweighted_accuracy(y, pred, classes) == pytest.approx(0.5)  # (1 + 0) / 2 classes present
    assert bench.unweighted_accuracy(y, y, classes) == 1.0
    lo, hi = bench.bootstrap_ci(y, pred, classes, seed=0, reps=200)
    assert 0.0 <= lo <= 0.5 <= hi <= 1.0
    assert (lo, hi) == bench.bootstrap_ci(y, pred, classes, seed=0, reps=200)


def test_speaker_normalize_is_per_speaker(bench):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(5, 2, (10, 3)), rng.normal(-3, 0.5, (10, 3))])
    out = bench.speaker_normalize(x, ["a"] * 10 + ["b"] * 10)
    for rows in (slice(0, 10), slice(10, 20)):
        assert np.allclose(out[rows].mean(0), 0, atol=1e-9) and np.allclose(out[rows].std(0), 1, atol=1e-4)


@pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")), reason="needs espeak-ng and sox")
def test_runs_at_a_tiny_size(bench, tmp_path, capsys):
    args = ["--work", str(tmp_path), "--train-n", "16", "--speakers", "4", "--test-n", "8",
            "--heldout", "espeak:en-us-nyc+klatt", "--encoder", "preset:whisper-test", "--encoder-init", "random",
            "--speaker-norm", "--style", "v2"]
    res = bench.main(args)
    out = capsys.readouterr().out
    assert res["style"] == "v2" and res["train_n"] == 16 and res["train_speakers"] == 4
    assert [r["features"] for r in res["rows"]] == ["raw", "speaker-norm"]
    for r in res["rows"]:
        assert r["n"] == 8 and r["chance"] == 0.25 and 0 <= r["ci95"][0] <= r["ua"] <= r["ci95"][1] <= 1
        assert sum(sum(v.values()) for v in r["confusion"].values()) == 8
        assert f"{100 * r['ua']:.1f}" in out
    assert json.loads((tmp_path / "results_v2-t0.4.json").read_text())["rows"] == res["rows"]
    # held-out clips: balanced, neutral-worded only, and none of the training voices
    from emoreason.data.manifest import read_manifest
    from emoreason.data.synth import load_bank

    neutral = {e["text"] for e in load_bank()["neutral"]}
    plan = bench.heldout_plan(8, 1000)
    assert [p[1] for p in plan] == list(bench.EMOTIONS) * 2 and all(p[2] in neutral for p in plan)
    train_voices = {r.meta["voice"] for r in read_manifest(tmp_path / "train_v2_s0_k4_t0.4" / "manifest.jsonl")}
    assert "en-us-nyc+klatt" not in train_voices
    # a rerun encodes nothing new (features cached by wav hash) and gives the same numbers
    again = bench.main(args)
    assert "encoded" not in capsys.readouterr().out and again["rows"] == res["rows"]


def test_engine_choices_that_cannot_measure_transfer_are_refused(bench, tmp_path):
    """Refused in one line before anything is synthesized: flite held out from the v4 corpus (which
    has flite speakers), an engine both added to training and held out, piper without its venv."""
    cases = [(["--style", "v4", "--heldout", "flite"], "flite: trained on"),
             (["--style", "v1", "--heldout", "piper", "--train-extra", "piper", "--piper-python", "x"], "piper: trained on"),
             (["--style", "v1", "--heldout", "piper"], "needs --piper-python"),
             (["--style", "v1", "--train-extra", "espeak"], "unknown --train-extra"),
             (["--style", "v1", "--heldout", "festival"], "unknown --heldout")]
    for extra, message in cases:
        with pytest.raises(SystemExit, match=message):
            bench.main(["--work", str(tmp_path / "w"), *extra])
        assert not list((tmp_path / "w").glob("train_*")), extra  # nothing synthesized
