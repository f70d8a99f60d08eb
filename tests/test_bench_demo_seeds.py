"""benchmarks/demo_seeds.py: the demo's variants over several seeds, mean +- sd per metric. Run here
in tiny mode only (random tiny models, two seeds, one variant): it checks the plumbing, the numbers
mean nothing; the full and quick modes are the same code with bigger plans."""
from __future__ import annotations

import json
import shutil
import statistics

import pytest

from emoreason.testing.benchmarks import load_benchmark



@pytest.fixture(scope="module")
def bench():
    return load_benchmark("demo_seeds")


def test_aggregate_mean_and_sample_sd(bench):
    per_seed = {0: {"a": {"emotion (judge)": 50.0, "groundedness": 10.0}}, 1: {"a": {"emotion (judge)": 70.0}},
                2: {"a": {"emotion (judge)": 60.0}}}
    s = bench.aggregate(per_seed)["a"]
    assert s["emotion (judge)"]["mean"] == pytest.approx(60) and s["emotion (judge)"]["sd"] == pytest.approx(10)
    assert s["groundedness"] == {"values": {0: 10.0}, "mean": 10.0, "sd": None}  # one seed: no sd
    table = bench.format_table(bench.aggregate(per_seed), [0, 1, 2])
    assert "| a | emotion (judge) | 60.0 +- 10.0 | 50.0 | 70.0 | 60.0 |" in table
    assert "| a | groundedness | 10.0 +- - | 10.0 | - | - |" in table
    assert bench.main(["--mode", "tiny", "--seeds", "0,0", "--out", "unused"]) == 2  # a repeated seed: one-line error
    assert bench.main(["--mode", "tiny", "--variants", "nope", "--out", "unused"]) == 2


@pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("sox") is None, reason="needs espeak-ng and sox")
def test_runs_the_demo_per_seed_in_tiny_mode(bench, tmp_path, capsys):
    out = tmp_path / "seeds"
    assert bench.main(["--mode", "tiny", "--seeds", "0,1", "--variants", "detailed-dual-transcript", "--out", str(out)]) == 0
    data = json.loads((out / "seeds.json").read_text())
    assert data["seeds"] == [0, 1] and set(data["per_seed"]) == {"0", "1"}
    for seed in (0, 1):  # one whole demo per seed, each with its own seeded corpus
        marker = json.loads((out / f"seed{seed}" / "corpus" / "DONE.json").read_text())
        assert marker["params"]["seed"] == seed
        assert (out / f"seed{seed}" / "report.md").is_file()
    summary = data["summary"]["detailed-dual-transcript"]
    for metric in ("emotion (judge)", "emotion forced choice", "ASR WER %"):
        values = [data["per_seed"][s]["detailed-dual-transcript"][metric] for s in ("0", "1")]
        assert summary[metric]["mean"] == pytest.approx(statistics.fmean(values))
        assert summary[metric]["sd"] == pytest.approx(statistics.stdev(values))
    printed = capsys.readouterr().out
    assert "| detailed-dual-transcript | emotion forced choice |" in printed and "+-" in printed
    assert printed.strip() == (out / "seeds.md").read_text().strip()  # what it prints is what it writes
    # the transcript variant's model was saved with the option, so its evaluation rendered transcripts
    processor = json.loads((out / "seed0" / "runs" / "detailed-dual-transcript" / "final" / "processor_config.json").read_text())
    assert processor["transcript_in_prompt"] is True
