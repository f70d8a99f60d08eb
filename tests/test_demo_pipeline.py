"""The demo pipeline on tiny random models: outputs, stage markers, resumption, parameter changes.

One tiny demo run (synthetic corpus -> targets + held-out rows of every task -> one variant
trained -> evaluated on emotion, sentiment, asr and sqa -> analysed -> report) is shared by the tests of this module; the real quick demo on packaged weights is CI's job.
"""
from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from emoreason.demo.pipeline import majority_rate, run_demo, select_test_rows, select_train_rows
from emoreason.demo.plan import make_plan
from emoreason.demo.stages import DONE, PARAMS, StageRunner
from emoreason.errors import UserError

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("sox") is None,
                                reason="needs espeak-ng and sox (scripts/setup.sh installs them)")


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    lines: list[str] = []
    result = run_demo(make_plan("tiny", variants=["label-dual"]), out, say=lines.append)
    return out, result, lines


def _read(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def test_outputs_and_markers(tiny_demo):
    out, result, _ = tiny_demo
    for stage in ("corpus", "targets", "testset", "runs/label-dual", "eval/label-dual", "probe", "analysis"):
        marker = json.loads((out / stage / DONE).read_text())
        assert marker["params"] == json.loads((out / stage / PARAMS).read_text())
        assert marker["seconds"] >= 0
    assert (out / "runs/label-dual/final/config.yaml").is_file()
    metrics = json.loads((out / "eval/label-dual/metrics.json").read_text())
    # the tiny plan evaluates every task on held-out clips: 4 emotion rows, 2 of each other task
    assert {t: m["n"] for t, m in metrics["tasks"].items()} == {"emotion": 4, "sentiment": 2, "asr": 2, "sqa": 2}
    assert all(math.isfinite(m["score"]) for m in metrics["tasks"].values())
    assert 0 <= metrics["tasks"]["sqa"]["score"] <= 100 and metrics["tasks"]["asr"]["score"] >= 0  # WER may exceed 100
    entry = result.table["label-dual"]
    assert set(entry["tasks"]) == {"emotion", "sentiment", "asr", "sqa"} and set(entry["forced_choice"]) == {"emotion", "sentiment"}
    assert entry["tasks"]["emotion"]["score"] == entry["score"]
    html = (out / "report.html").read_text()
    assert html.startswith("<!doctype html>") and "label-dual" in html and "data:image/png;base64," in html
    md = (out / "report.md").read_text()
    assert "Majority-class rate" in md and "One held-out clip" in md
    # the linear-probe baseline on the same held-out emotion rows, beside the variant
    probe = json.loads((out / "probe/probe.json").read_text())
    assert probe["n_test"] == 4 and probe["n_train"] == 8 and 0 <= probe["unweighted_accuracy"] <= 100
    # the tiny plan's emotion encoder is trained, so no frames are cached for it: all 12 clips encoded
    reused = json.loads((out / "probe" / DONE).read_text())["result"]
    assert (reused["frames_reused"], reused["frames_encoded"]) == (0, 12)
    assert "Baseline: linear probe" in md and "linear probe on the frozen emotion encoder" in md
    # the results table is eval compare's: one column per dataset x task, each cell "score [low, high]"
    table = _md_table(md, "| run |")
    columns = ["synth-ER", "synth-SR", "synth-SQA", "synth-ASR WER"]
    assert table["run"] == ["label-dual"] and all(c in table for c in columns + ["avg", "forced-choice acc"])
    for c in columns:
        score, low, high = (float(x) for x in table[c][0].replace("[", "").replace("]", "").replace(",", "").split())
        assert all(map(math.isfinite, (score, low, high))) and low <= score <= high
    assert all(f"<th>{c}</th>" in html for c in columns)
    # every accuracy carries its 95% CI (bootstrap over the clips), and the report says how they were made
    for c in ("wt acc", "unwt acc", "forced-choice acc", "forced-choice sentiment"):
        score, low, high = (float(x) for x in table[c][0].replace("[", "").replace("]", "").replace(",", "").split())
        assert low <= score <= high, c
    assert entry["forced_choice_ci"]["emotion"]["low"] <= entry["forced_choice_accuracy"] <= entry["forced_choice_ci"]["emotion"]["high"]
    assert "percentile bootstrap over the held-out clips" in md and "percentile bootstrap over the held-out clips" in html
    assert "analyze --task asr:" in md and "analyze --task sqa --question" in md
    assert "not that it was learned" in md
    # evaluated as analyze answers: the engine's transcript (the tiny random speech encoder has no
    # Whisper decoder: the model's ASR task), recorded per row; disagreement and transcriber WER reported
    preds = [r for r in _read(out / "eval/label-dual/predictions.jsonl") if r["task"] == "emotion"]
    assert {(r["transcript_mode"], r["quotes_mode"], r["engine_transcript"]["source"]) for r in preds} == {
        ("auto", "constrained", "model-asr")}
    agree, wer = entry["agreement"]["emotion"], entry["transcriber"]["emotion"]
    assert agree["n"] == 4 and agree["disagree"] == sum(r["consistent"] is False for r in preds)
    assert wer["source"] == "model-asr" and wer["n"] == 4 and wer["ci"]["wer"]["low"] <= wer["wer"] <= wer["ci"]["wer"]["high"]
    engine_table = _md_table(md, "| variant | answers | label / explanation disagree %")
    assert engine_table["variant"] == ["label-dual"] and engine_table["transcript source"] == ["model-asr"]
    assert engine_table["transcriber WER % (emotion clips)"][0].endswith("(n=4)")
    # the analysed clip: forced-choice label among the demo's emotions, scores a distribution
    a = result.analysis
    assert a["label"] in ("neutral", "happy", "sad", "angry") and a["variant"] == "label-dual"
    assert abs(sum(a["scores"].values()) - 1) < 1e-6 and set(a["scores"]) == {"neutral", "happy", "sad", "angry"}
    assert json.loads((out / "analysis/analysis.json").read_text())["label"] == a["label"]
    # the same clip through --task asr and --task sqa with the clip's own content question
    assert isinstance(a["asr"]["transcript"], str) and a["asr"]["error"] is None
    assert a["sqa"]["question"] and isinstance(a["sqa"]["answer"], str) and a["sqa"]["reference"]
    assert json.loads((out / "analysis/PARAMS.json").read_text())["question"] == a["sqa"]["question"]


def _md_table(md: str, header_start: str) -> dict[str, list[str]]:
    """The first Markdown table whose header line starts with ``header_start``: column -> cells."""
    lines = md.splitlines()
    i = next(k for k, l in enumerate(lines) if l.startswith(header_start))
    cells = lambda line: [c.strip() for c in line.strip().strip("|").split(" | ")]  # noqa: E731
    head = cells(lines[i])
    end = next((k for k in range(i + 2, len(lines)) if not lines[k].startswith("|")), len(lines))
    body = [cells(l) for l in lines[i + 2:end]]
    return {h: [row[j] for row in body] for j, h in enumerate(head)}


def test_long_audio_benchmark_runs_on_a_demo(tiny_demo):
    """benchmarks/long_audio_windows.py on the tiny demo's held-out clips (one clip a file, as the
    tiny plan holds out one clip per speaker and emotion): the model's recorded window and a given one."""
    import subprocess
    import sys

    out, _, _ = tiny_demo
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "long_audio_windows.py"
    done = subprocess.run([sys.executable, str(script), "--demo-out", str(out), "--run", "label-dual", "--clips", "1",
                           "--draws", "1", "--windows", "model,5", "--cut", "pause,fixed"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| label-dual")]
    recorded = json.loads((out / "runs/label-dual/final/processor_config.json").read_text())["window_seconds"]
    model = f"{recorded:g} s (model)"
    assert 4 <= recorded <= 30 and [r.split(" | ")[1:3] for r in rows] == [
        [model, "pause"], [model, "fixed"], ["5 s", "pause"], ["5 s", "fixed"]]
    assert all("/4 = " in r for r in rows)  # 4 held-out emotion clips: 4 files


def test_held_out_speakers_and_targets(tiny_demo):
    out, _, _ = tiny_demo
    test = _read(out / "testset/test.jsonl")
    train = _read(out / "targets/train_label.jsonl")
    assert test and all(r["split"] == "test" for r in test)
    assert {t: sum(r["task"] == t for r in test) for t in ("emotion", "sentiment", "asr", "sqa")} == \
        {"emotion": 4, "sentiment": 2, "asr": 2, "sqa": 2}
    clips = {t: {r["audio"] for r in test if r["task"] == t} for t in ("emotion", "sentiment", "asr", "sqa")}
    assert clips["sentiment"] | clips["asr"] | clips["sqa"] <= clips["emotion"]  # subsets of the same clips
    assert all((out / "testset" / r["audio"]).is_file() for r in test)  # audio paths valid from testset/
    assert all(r["target"] and r["meta"]["question"] for r in test if r["task"] == "sqa")
    assert not {r["speaker"] for r in test} & {r["speaker"] for r in train}  # speaker-disjoint
    # every style trains on the same rows; label targets are exactly the label sentence
    detailed = _read(out / "targets/train_detailed.jsonl")
    assert [r["id"] for r in detailed] == [r["id"] for r in train]
    for r in train:
        if r["task"] == "emotion":
            assert r["target"] == f"The speaker sounds {r['label']}."
    emo = {r["id"]: r for r in detailed if r["task"] == "emotion"}
    assert all(t["target"].startswith(f"The speaker sounds {t['label']}.") and len(t["target"]) > 40 for t in emo.values())
    assert {r["task"] for r in train} == {"emotion", "sentiment", "asr", "sqa"}


def test_rerun_reuses_every_stage(tiny_demo):
    out, result, _ = tiny_demo
    before = (out / "runs/label-dual/final/trainable.safetensors").stat().st_mtime_ns
    lines: list[str] = []
    again = run_demo(make_plan("tiny", variants=["label-dual"]), out, say=lines.append)
    reused = [l for l in lines if "reusing" in l]
    assert len(reused) == 7, lines
    assert (out / "runs/label-dual/final/trainable.safetensors").stat().st_mtime_ns == before
    assert again.analysis == result.analysis and again.table == result.table


def test_changed_test_rows_reevaluate_without_retraining(tiny_demo):
    out, _, _ = tiny_demo
    lines: list[str] = []
    plan = replace(make_plan("tiny", variants=["label-dual"]), test_rows={"emotion": 2, "sentiment": 1, "asr": 1, "sqa": 1})
    again = run_demo(plan, out, say=lines.append)
    text = "\n".join(lines)
    assert "targets: done earlier" in text and "runs/label-dual: done earlier" in text
    assert "testset: parameters changed" in text and "eval/label-dual: parameters changed" in text
    assert {t: m["n"] for t, m in again.table["label-dual"]["tasks"].items()} == {"emotion": 2, "sentiment": 1, "asr": 1, "sqa": 1}


def test_changed_parameter_reruns_that_stage_and_after(tiny_demo):
    out, _, _ = tiny_demo
    lines: list[str] = []
    run_demo(make_plan("tiny", variants=["label-dual"], extra_overrides=["train.lr=0.001"]), out, say=lines.append)
    text = "\n".join(lines)
    assert "corpus: done earlier" in text and "targets: done earlier" in text
    assert "runs/label-dual: parameters changed" in text and "eval/label-dual: parameters changed" in text
    cfg = (out / "runs/label-dual/config.yaml").read_text()
    assert "lr: 0.001" in cfg


def test_stage_runner_resume_and_invalidate(tmp_path):
    runner = StageRunner(tmp_path, log=lambda _: None)
    calls = []

    def interrupted(d: Path):
        (d / "partial.txt").write_text("kept")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runner.run("s", {"a": 1}, interrupted)
    assert not (tmp_path / "s" / DONE).exists()

    def finish(d: Path):
        calls.append((d / "partial.txt").exists())
        return {"ok": True}

    assert runner.run("s", {"a": 1}, finish) == {"ok": True}
    assert calls == [True]  # same parameters: the interrupted stage's files are still there
    assert runner.run("s", {"a": 1}, finish) == {"ok": True} and calls == [True]  # done: not called
    runner.run("s", {"a": 2}, finish)
    assert calls == [True, False]  # changed parameters: the directory was emptied first
    assert runner.digest("s") == StageRunner(tmp_path).digest("s")  # from the marker on disk
    with pytest.raises(RuntimeError):
        runner.digest("never-ran")


def test_select_train_rows_and_majority():
    rows = [{"id": f"u{i}/{t}", "task": t, "split": "train" if i < 8 else "test"} for i in range(10)
            for t in ("emotion", "asr", "sqa")]
    picked = select_train_rows(rows, {"emotion": 100, "asr": 3}, seed=0)
    assert sum(r["task"] == "emotion" for r in picked) == 8 and sum(r["task"] == "asr" for r in picked) == 3
    assert all(r["split"] == "train" and r["task"] != "sqa" for r in picked)
    assert picked == select_train_rows(rows, {"emotion": 100, "asr": 3}, seed=0)
    assert [r["id"] for r in picked] == [r["id"] for r in rows if r in picked]  # manifest order
    assert majority_rate(["sad", "sad", "happy", "angry"]) == ("sad", 50.0)
    rows = [{"id": f"u{i}/{t}", "audio": f"u{i}.wav", "task": t, "split": "test" if i >= 4 else "train",
             "speaker": f"s{i % 2}"} for i in range(10) for t in ("emotion", "asr", "sqa")]
    test = select_test_rows(rows, {"emotion": 0, "asr": 3, "sqa": 2}, seed=0)
    assert [sum(r["task"] == t for r in test) for t in ("emotion", "asr", "sqa")] == [6, 3, 2]
    assert all(r["split"] == "test" for r in test)
    order = [r["audio"] for r in test if r["task"] == "emotion"]  # one ranking of the clips for every task
    assert [r["audio"] for r in test if r["task"] == "asr"] == order[:3]
    assert [r["audio"] for r in test if r["task"] == "sqa"] == order[:2]
    speakers = [rows[[r["audio"] for r in rows].index(a)]["speaker"] for a in order]
    assert speakers[0] != speakers[1] and speakers[2] != speakers[3]  # the held-out speakers in turn


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_capped_test_set_is_even_over_speakers_and_emotions(seed):
    # 4 held-out speakers x 4 emotions x 10 clips, listed speaker by speaker and emotion by emotion
    emotions = ("neutral", "happy", "sad", "angry")
    rows = [{"id": f"s{s}e{e}c{c}/{t}", "audio": f"s{s}e{e}c{c}.wav", "task": t, "split": "test",
             "speaker": f"s{s}", "label": emotions[e] if t == "emotion" else "positive"}
            for s in range(4) for e in range(4) for c in range(10) for t in ("emotion", "sentiment")]
    for cap in (16, 40, 80):
        test = select_test_rows(rows, {"emotion": cap, "sentiment": cap // 2}, seed=seed)
        emo = [r for r in test if r["task"] == "emotion"]
        assert len(emo) == cap
        assert {Counter(r["speaker"] for r in emo)[f"s{s}"] for s in range(4)} == {cap // 4}
        assert {Counter(r["label"] for r in emo)[e] for e in emotions} == {cap // 4}
        # the sentiment rows are the first clips of the same ranking
        assert [r["audio"] for r in test if r["task"] == "sentiment"] == [r["audio"] for r in emo][: cap // 2]
    everything = select_test_rows(rows, {"emotion": 0}, seed=seed)
    assert sorted(r["id"] for r in everything) == sorted(r["id"] for r in rows if r["task"] == "emotion")


def test_plan_errors():
    with pytest.raises(UserError, match="unknown variant"):
        make_plan("quick", variants=["nope"])
    with pytest.raises(UserError, match="unknown demo mode"):
        make_plan("huge")
    with pytest.raises(UserError, match="test_rows needs a count"):
        replace(make_plan("tiny"), test_rows={"emotion": 4})
    for mode in ("full", "quick", "tiny"):  # every mode evaluates every task
        assert set(make_plan(mode).test_rows) == {"emotion", "sentiment", "asr", "sqa"}
    full = make_plan("full")
    names = {v.name for v in full.variants}
    assert {"label-dual", "detailed-dual", "detailed-single", "detailed-dual-transcript"} <= names
    # the full demo's test set: >= 4 held-out speakers, >= 160 emotion clips (every clip has an
    # emotion row; the synthesizer gives each speaker the same number of clips)
    held_out = round(full.speakers * full.test_fraction)
    assert held_out >= 4 and full.utterances // full.speakers * held_out >= 160 and full.test_rows["emotion"] == 0
    assert full.train_rows["emotion"] >= 160  # the training set is not smaller than before
    transcript = next(v for v in full.variants if v.name == "detailed-dual-transcript")
    assert "data.transcript_in_prompt=true" in transcript.overrides()
    assert not any("transcript" in o for v in full.variants if v.name != transcript.name for o in v.overrides())


def test_full_plan_trains_sixty_steps_and_the_frames_only_single_encoder_five_passes(tmp_path):
    """The full plan shortens the dual-encoder variants' alternating schedule (speech, emotion,
    speech, emotion, all, stopped at 60 steps) and stops the single-encoder variant with the pooled
    label token at 60 joint steps; the paper's frame-tokens-only single encoder keeps its config's
    joint passes; user overrides still come last."""
    from emoreason.config import load_config
    from emoreason.demo.pipeline import Demo

    plan = make_plan("full", extra_overrides=["train.lr=1e-4"],
                     variants=["label-dual", "detailed-dual", "detailed-single", "detailed-single-frames"])
    demo = Demo(plan, tmp_path / "out", say=lambda _: None)
    seen = set()
    for variant in plan.variants:
        overrides = demo._train_overrides(variant)
        assert overrides[-1] == "train.lr=1e-4"
        cfg = load_config(demo.config, overrides[1:])  # without the (not yet written) manifest
        t = cfg.train
        if variant.fusion == "none":
            steps = 60 if variant.pooled else 0
            assert (t.schedule, t.epochs, t.max_steps, cfg.model.single_encoder_pooled) == ("joint", 5, steps, variant.pooled)
        else:
            assert (t.schedule, t.alternation_epochs, t.epochs, t.max_steps) == ("alternating", 2, 3, 60)
            assert not cfg.model.single_encoder_pooled
        seen.add((variant.fusion, variant.pooled))
    assert seen == {("sequence", True), ("none", True), ("none", False)}
    assert "detailed-single" in {v.name for v in make_plan("full").variants}
    assert make_plan("quick").alternating_overrides == () and make_plan("quick").joint_overrides == ()


def _scores(directory: Path, hits: list[int]) -> Path:
    """An evaluation directory whose scores.jsonl has one emotion row per hit (1: right label)."""
    directory.mkdir(parents=True)
    rows = [{"id": f"c{i}", "task": "emotion", "gold": "sad", "pred_label": "sad" if h else "angry"}
            for i, h in enumerate(hits)]
    (directory / "scores.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return directory


def test_findings_test_differences_on_the_same_clips(tmp_path):
    from emoreason.demo.report import findings, paired_difference

    a = _scores(tmp_path / "a", [1] * 30 + [0] * 10)  # 75 %
    b = _scores(tmp_path / "b", [0] * 30 + [1] * 2 + [0] * 8)  # 5 %, wrong where a is right
    c = _scores(tmp_path / "c", [1] * 29 + [0] + [0] * 10)  # 72.5 %, almost a's clips
    big = paired_difference(a, b)
    assert big["mean"] == pytest.approx(70) and big["n"] == 40 and big["low"] > 0
    small = paired_difference(a, c)
    assert small["mean"] == pytest.approx(2.5) and small["low"] <= 0 <= small["high"]
    assert paired_difference(a, tmp_path / "missing") is None

    plan = make_plan("full", variants=["detailed-dual", "detailed-dual-transcript", "label-dual"])
    entry = lambda acc: {"score": acc, "classification": {"weighted_accuracy": acc, "ci": {"weighted_accuracy":  # noqa: E731
                         {"low": acc - 10, "high": acc + 10}}}, "forced_choice_accuracy": acc, "n": 40, "quotes": {}}
    table = {"label-dual": entry(75.0), "detailed-dual": entry(5.0), "detailed-dual-transcript": entry(72.5)}
    dirs = {"label-dual": a, "detailed-dual": b, "detailed-dual-transcript": c}
    lines = findings(plan, table, "label-dual", ("sad", 25.0), dirs)
    assert any(l.startswith("Best variant: label-dual, emotion accuracy 75.0% [65.0, 85.0]") for l in lines)
    vs_label = next(l for l in lines if l.startswith("Reasoning (detailed) vs label-only"))
    assert "detailed-dual minus label-dual: -70.0 points" in vs_label and "which excludes 0" in vs_label
    transcript = next(l for l in lines if l.startswith("Transcript in the prompt vs end to end"))
    assert "detailed-dual-transcript minus detailed-dual: +67.5 points" in transcript and "over the same 40 clips" in transcript
    assert "meets the 2x-majority target (50.0%)" in lines[0]
    # without evaluation directories: the old rule of thumb
    assert any("within noise" in l for l in findings(plan, table, "label-dual", ("sad", 25.0)))
    # a real corpus is read against the probe row, not the synthetic demo's 2x-majority goal
    real = replace(plan, corpora=("emodb:/data/emodb",))
    assert findings(real, table, "label-dual", ("sad", 25.0), dirs)[0].endswith("the majority class (sad) is 25.0%.")


def test_wording_section_splits_neutral_and_emotional_words(tmp_path):
    """Accuracy on neutral-worded held-out clips (the voice alone) beside emotion-worded ones, for the
    extracted label and the forced choice; no section for a real corpus (no wording in its rows)."""
    from emoreason.demo.report import wording_section, wordings

    d = _scores(tmp_path / "eval" / "label-dual", [1, 1, 0, 1, 1, 1])
    rows = [json.loads(line) for line in (d / "scores.jsonl").read_text().splitlines()]
    for r, forced in zip(rows, ["sad", "angry", "angry", "sad", "sad", "sad"]):
        r["model_label"] = forced
    (d / "scores.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    words = ["neutral", "neutral", "neutral", "sad", "angry", "sad"]  # c0-c2 neutral sentences
    test = tmp_path / "test.jsonl"
    test.write_text("".join(json.dumps({"id": f"c{i}", "task": "emotion", "meta": {"wording": w}}) + "\n"
                            for i, w in enumerate(words)) + json.dumps({"id": "q", "task": "asr", "meta": {"wording": "sad"}}) + "\n")
    wording = wordings(test)
    assert wording == {"c0": "neutral", "c1": "neutral", "c2": "neutral", "c3": "emotional", "c4": "emotional",
                       "c5": "emotional"}
    plan = make_plan("quick", variants=["label-dual"])
    section = wording_section(plan, {"label-dual": d}, wording)
    table, _, note = section.blocks
    [row] = table.rows
    assert row[0] == "label-dual" and row[1].startswith("66.7 [") and row[1].endswith("(n=3)")
    assert row[2].startswith("100.0 [100.0, 100.0]") and row[3].startswith("33.3 [") and row[4].startswith("100.0")
    # 66.7 vs 100.0: a gap of 33 points is named
    assert "label-dual scores 66.7% on neutral words against 100.0% on emotional words" in note.parts[0]
    level = {"c0": "neutral", "c1": "neutral", "c3": "emotional", "c4": "emotional"}  # all four right: no gap
    assert len(wording_section(plan, {"label-dual": d}, level).blocks) == 2
    # a real corpus: no wording, no section; nor when only one kind was evaluated
    assert wordings(tmp_path / "missing.jsonl") == {} and wording_section(plan, {"label-dual": d}, {}) is None
    assert wording_section(plan, {"label-dual": d}, {"c0": "neutral", "c1": "neutral"}) is None


def test_quotes_section_constrained_vs_free_on_the_same_clips(tmp_path):
    """The report's quote rows: every reasoning variant (constrained), and the free-quotes pass
    beside the constrained scores of the same clips when it covered fewer."""
    from emoreason.demo.report import quotes_section
    from emoreason.eval.render import Table

    d = tmp_path / "eval" / "detailed-dual"
    d.mkdir(parents=True)
    rows = [{"id": f"c{i}", "task": "emotion", "quotes": ["x"], "groundedness": g, "relevance": 1.0,
             "groundedness_engine": 2.0} for i, g in enumerate([2.0, 2.0, 0.0, 0.0])]
    (d / "scores.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    quotes = {"quotation": 100.0, "n_judged": 4, "groundedness": 50.0, "relevance": 50.0, "groundedness_engine": 100.0,
              "mode": "constrained", "ci": {"groundedness": {"low": 0.0, "high": 100.0}}}
    table = {"label-dual": {"n": 4, "quotes": {}, "tasks": {"asr": {"score": 80.0, "n": 2, "ci": {"low": 50.0, "high": 99.0}}}},
             "detailed-dual": {"n": 4, "quotes": quotes, "agreement": {"emotion": {"n": 4, "disagree": 1, "undecided": 2,
                               "rate": 25.0, "ci": {"rate": {"low": 0.0, "high": 75.0}}}}}}
    free = {"variant": "detailed-dual", "n": 2, "ids": ["c0", "c1"], "seconds": 3.5,
            "quotes": {"quotation": 50.0, "n_judged": 1, "groundedness": 0.0, "relevance": 0.0, "mode": "free"}}
    plan = make_plan("quick", variants=["label-dual", "detailed-dual"])
    section = quotes_section(plan, table, {"detailed-dual": d}, free)
    quote_rows, engine_rows = [b.rows for b in section.blocks if isinstance(b, Table)]
    assert [r[:3] for r in quote_rows] == [["detailed-dual", "constrained", "4"],
                                            ["detailed-dual", "constrained (same clips)", "2"], ["detailed-dual", "free", "2"]]
    assert quote_rows[0][4] == "50.0 [0.0, 100.0]" and quote_rows[1][4].startswith("100.0")  # c0, c1 were grounded
    assert quote_rows[2][4] == "0.0" and quote_rows[0][5] == "100.0"
    assert engine_rows[1][:4] == ["detailed-dual", "4", "25.0 [0.0, 75.0]", "2"]
    assert engine_rows[0][2] == "-" and engine_rows[0][6] == "80.0 [50.0, 99.0] (n=2)"


def test_time_budget_measures_steps_and_shortens_the_schedule(tiny_demo):
    from emoreason.demo.budget import fit_variant, schedule_steps, shorter_schedules

    out, _, _ = tiny_demo
    manifest = (out / "targets" / "train_label.jsonl").resolve()
    base = ["train.epochs=3", "train.alternation_epochs=2", f"data.train_manifest={manifest}"]
    from emoreason.configs import find_config

    config = find_config("tiny.yaml")
    assert shorter_schedules(config, base) == [["train.alternation_epochs=2", "train.epochs=3"]]
    planned = schedule_steps(config, base)
    assert fit_variant(config, base, planned) == {"overrides": [], "steps": planned, "planned_steps": planned}
    capped = fit_variant(config, base, 2)
    assert capped["steps"] == 2 and "train.max_steps=2" in capped["overrides"]
    # a joint schedule is capped inside its next longer pass count rather than dropping a whole pass
    joint = [f"data.train_manifest={manifest}", "train.schedule=joint", "train.epochs=3"]
    per_pass = schedule_steps(config, [*joint[:2], "train.epochs=1"])
    between = fit_variant(config, joint, per_pass + 1)
    assert between == {"overrides": ["train.epochs=2", f"train.max_steps={per_pass + 1}"], "steps": per_pass + 1,
                       "planned_steps": schedule_steps(config, joint)}
    assert fit_variant(config, joint, per_pass)["overrides"] == ["train.epochs=1"]  # whole passes when they fit exactly

    lines: list[str] = []
    # a budget of 0.06 s: on any machine (a fast CI runner steps the tiny model in ~0.1 s) the
    # variant gets fewer steps than planned (a 3 s budget still fitted all 8 steps there)
    result = run_demo(make_plan("tiny", variants=["label-dual"], time_budget_min=0.001), out, say=lines.append)
    text = "\n".join(lines)
    budget = json.loads((out / "budget" / DONE).read_text())["result"]
    assert budget["step_s"] > 0 and budget["budget_min"] == 0.001
    # the warm-up's fixed seconds and the training clips' encoding (tiny's emotion encoder is
    # trained, so only its speech encoder's frames are cached) were measured and planned for
    assert budget["train_fixed_s"] > 0 and budget["encode_s"] >= 0 and budget["eval_fixed_s"] > 0
    # after training the rows were checked again (already at the floors: nothing more to cut)
    assert json.loads((out / "budget" / "refit.json").read_text())["test_rows"] is None
    fit = budget["variants"]["label-dual"]
    assert fit["steps"] < fit["planned_steps"]
    assert "time budget 0.001 min" in text and "runs/label-dual: parameters changed" in text
    assert "too slow now for the full comparison" in text  # under 60 % of its steps: the demo says so
    steps = max(r["step"] for r in _read(out / "runs/label-dual/metrics.jsonl"))
    assert steps == fit["steps"]
    assert "Time budget 0.001 min" in result.report_md.read_text()
    # the evaluation was measured with the warm-up model, and the held-out rows cut to what fits
    # (tiny's floors: every emotion and sentiment / asr row stays, one sqa question of the two)
    assert budget["row_s"] > 0 and budget["token_s"] >= 0 and budget["eval_s_estimate"] > 0
    assert set(budget["answer_tokens"]) == {"label-dual"} and budget["answer_tokens"]["label-dual"]["emotion"] >= 1
    assert budget["planned_test_rows"] == {"emotion": 4, "sentiment": 2, "asr": 2, "sqa": 2}
    assert budget["test_rows"] == {"emotion": 4, "sentiment": 2, "asr": 2, "sqa": 1}
    assert sum(r["task"] == "sqa" for r in _read(out / "budget" / "test.jsonl")) == 1
    assert sum(r["task"] == "sqa" for r in _read(out / "eval/label-dual/predictions.jsonl")) == 1
    assert "held-out rows were cut to" in result.report_md.read_text() and "held-out rows cut to" in text
    with pytest.raises(UserError, match="time-budget"):
        make_plan("tiny", time_budget_min=0)


def test_auto_budget_fits_the_full_plan_to_the_cpu(monkeypatch, tmp_path):
    import argparse

    import torch

    import emoreason.hardware
    from emoreason.demo import _time_budget
    from emoreason.demo.plan import AUTO_BUDGET_BF16_MIN, AUTO_BUDGET_MIN, auto_time_budget

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(emoreason.hardware, "cpu_has_native_bf16", lambda: False)
    minutes, why = auto_time_budget("full")
    assert minutes == AUTO_BUDGET_MIN == 15 and "no native bf16" in why and "--time-budget none" in why
    for mode in ("quick", "tiny"):
        assert auto_time_budget(mode)[0] is None
    assert auto_time_budget("full", ["ravdess:/data/ravdess"])[0] is None  # a fold is scored whole
    # a rerun in a folder whose training began without a budget keeps it (a budget would empty its stages)
    out = tmp_path / "demo"
    assert auto_time_budget("full", out=out)[0] == AUTO_BUDGET_MIN  # nothing there yet
    (out / "runs" / "label-dual").mkdir(parents=True)
    (out / "runs" / "label-dual" / "PARAMS.json").write_text("{}")
    minutes, why = auto_time_budget("full", out=out)
    assert minutes is None and "started without a time budget" in why
    (out / "budget").mkdir()  # begun with one: resumed with it
    assert auto_time_budget("full", out=out)[0] == AUTO_BUDGET_MIN
    monkeypatch.setattr(emoreason.hardware, "cpu_has_native_bf16", lambda: True)
    minutes, why = auto_time_budget("full")
    assert minutes == AUTO_BUDGET_BF16_MIN == 10 and "fitted to 10 minutes" in why
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert auto_time_budget("full")[0] is None
    assert [_time_budget(t) for t in ("auto", "none", "12.5")] == ["auto", None, 12.5]
    for bad in ("0", "-3", "soon"):
        with pytest.raises(argparse.ArgumentTypeError):
            _time_budget(bad)


def test_budget_scales_each_variants_step_by_its_rows_and_gives_all_the_same_steps(tiny_demo):
    """One step time is measured (on the longest targets); label-only rows are shorter, so their
    steps are cheaper, and the training seconds buy every variant more steps than one step time
    for all would (the AVX2 run of the thirteenth session left a quarter of its share unused)."""
    from emoreason.configs import find_config
    from emoreason.demo.budget import plan_budget, relative_step_costs, row_tokens
    from emoreason.model.processing import AudioProcessor

    out, _, _ = tiny_demo
    config = find_config("tiny.yaml")
    variants = {style: (config, [f"data.train_manifest={(out / 'targets' / f'train_{style}.jsonl').resolve()}"])
                for style in ("label", "detailed")}
    base = AudioProcessor.from_pretrained(out / "runs/label-dual/final")
    assert row_tokens(*variants["label"], base) < row_tokens(*variants["detailed"], base)
    # a clip whose header is junk is left out of the mean (training reports it by manifest line)
    rows = (out / "targets" / "train_label.jsonl").read_text().splitlines()
    junk = out / "junk.wav"
    junk.write_bytes(b"not audio at all")
    broken = out / "train_label_broken.jsonl"
    row = {**json.loads(rows[0]), "id": "junk/emotion", "audio": str(junk)}
    broken.write_text("\n".join([*[json.dumps({**json.loads(r), "audio": str((out / "targets" / json.loads(r)["audio"]).resolve())})
                                    for r in rows], json.dumps(row)]) + "\n")
    assert row_tokens(config, [f"data.train_manifest={broken}"], base) == pytest.approx(row_tokens(*variants["label"], base))
    scale = relative_step_costs(variants, "detailed", base)
    assert scale["detailed"] == 1.0 and 0 < scale["label"] < 1
    uniform = plan_budget(1.0, 0.0, 0.5, variants)
    scaled = plan_budget(1.0, 0.0, 0.5, variants, step_scale=scale)
    assert scaled["step_s_by_variant"]["label"] == pytest.approx(0.5 * scale["label"], abs=1e-3)
    # 36 s of training (60 % of a minute): 36 // (0.5 * 2) = 36 steps each with one step time
    assert uniform["max_steps_per_variant"] == 36
    assert scaled["max_steps_per_variant"] == int(36 // (0.5 * (1 + scale["label"]))) > 36
    assert scaled["train_s_per_variant"] == uniform["train_s_per_variant"] == 18.0


def test_eval_cost_counts_whisper_once_per_clip_and_cuts_rows_to_fit():
    from emoreason.demo.budget import MIN_EMOTION_ROWS, EvalCost

    rows = {"emotion": 160, "sentiment": 20, "asr": 20, "sqa": 12}
    tokens = {"label-dual": {"emotion": 6, "sentiment": 6, "asr": 12, "sqa": 10},
              "detailed-dual": {"emotion": 48, "sentiment": 40, "asr": 12, "sqa": 20}}
    cost = EvalCost(whisper_s=1.0, row_s=0.5, token_s=0.02, tokens=tokens, rows=rows, free="detailed-dual")
    label = 180 * (0.5 + 6 * 0.02) + 20 * (0.5 + 12 * 0.02) + 12 * (0.5 + 10 * 0.02)
    detailed = 160 * (0.5 + 48 * 0.02) + 20 * (0.5 + 40 * 0.02) + 20 * (0.5 + 12 * 0.02) + 12 * (0.5 + 20 * 0.02)
    free = 160 * (0.5 + 48 * 0.02)
    # Whisper once per emotion clip; each variant's answers as long as its targets
    assert cost.seconds() == pytest.approx(160 * 1.0 + label + detailed + free)
    no_free = EvalCost(1.0, 0.5, 0.02, tokens, rows, free=None)
    assert no_free.seconds() == pytest.approx(cost.seconds() - free)
    capped = EvalCost(1.0, 0.5, 0.02, tokens, rows, free="detailed-dual", free_cap=8)
    assert capped.seconds() == pytest.approx(cost.seconds() - free + 8 * (0.5 + 48 * 0.02))
    half = cost.cut(cost.seconds() / 2)
    assert 75 <= half["emotion"] <= 80 and half["sentiment"] <= 10 and half["sqa"] <= 6
    assert cost.seconds(half) <= cost.seconds() / 2 + 1e-9
    # a batch smaller than the measured one (8 rows) is charged as 8: its decode steps cost as much
    assert cost.task_seconds("detailed-dual", "sqa", 2) == pytest.approx(8 * (0.5 + 20 * 0.02))
    assert cost.task_seconds("detailed-dual", "emotion", 40) == pytest.approx(40 * (0.5 + 48 * 0.02))
    assert cost.task_seconds("detailed-dual", "emotion", 33) == pytest.approx((32 + 8) * (0.5 + 48 * 0.02))
    assert cost.cut(0.0) == {"emotion": MIN_EMOTION_ROWS, "sentiment": 2, "asr": 2, "sqa": 1}
    assert cost.cut(10 * cost.seconds()) == rows


def test_eval_cost_pays_each_pass_its_fixed_seconds_whatever_the_rows():
    from emoreason.demo.budget import EvalCost

    rows = {"emotion": 160, "sentiment": 20, "asr": 20, "sqa": 12}
    tokens = {"label-dual": {"emotion": 6}, "detailed-dual": {"emotion": 48}}
    bare = EvalCost(1.0, 0.5, 0.02, tokens, rows, free="detailed-dual")
    fixed = EvalCost(1.0, 0.5, 0.02, tokens, rows, free="detailed-dual", fixed_s=7.0, once_s=3.0)
    # two variants' passes and the free-quotes pass load an engine and score; Whisper loads once
    assert fixed.seconds() == pytest.approx(bare.seconds() + 3 * 7.0 + 3.0)
    # a cut scales only what rows cost: half of that part, the fixed seconds whole
    half = fixed.cut(bare.seconds() / 2 + 3 * 7.0 + 3.0)
    assert half == bare.cut(bare.seconds() / 2) and 75 <= half["emotion"] <= 80
    assert fixed.cut(0.0, emotion_floor=80)["emotion"] == 80


def test_refit_cuts_the_rows_when_training_ran_long():
    """After training, the planned rows are kept when they still fit; when training ran long (the
    machine slowed), they are cut to what fits in the minutes left, scaled by the overrun."""
    from emoreason.demo.budget import MIN_EMOTION_ROWS, EvalCost, eval_cost_of, refit_rows

    rows = {"emotion": 160, "sentiment": 20, "asr": 20, "sqa": 12}
    tokens = {"label-dual": {"emotion": 6.0}, "detailed-dual": {"emotion": 48.0}}
    cost = EvalCost(0.5, 0.3, 0.01, tokens, rows, "detailed-dual", 80, fixed_s=4.0, once_s=2.0)
    plan = {"whisper_s_per_clip": 0.5, "row_s": 0.3, "token_s": 0.01, "answer_tokens": tokens,
            "planned_test_rows": rows, "test_rows": None, "eval_fixed_s": 4.0, "eval_once_s": 2.0,
            "reserve_s": 20.0, "train_s_estimate": 300.0}
    assert eval_cost_of(plan, "detailed-dual", 80) == cost
    need = cost.seconds()
    assert refit_rows(plan, cost, need + 20.0, trained_s=300.0) is None  # on time: the plan's rows
    cut = refit_rows(plan, cost, need / 2 + 20.0, trained_s=300.0)  # half the time left
    assert MIN_EMOTION_ROWS < cut["emotion"] < 160 and cost.seconds(cut) <= need / 2 + 1e-6
    # the same minutes left after a training that took 1.5x its plan: the estimate is scaled too
    slower = refit_rows(plan, cost, need / 2 + 20.0, trained_s=450.0)
    assert slower["emotion"] < cut["emotion"]
    assert refit_rows(plan, cost, 0.0, trained_s=300.0)["emotion"] == MIN_EMOTION_ROWS
    # never more rows than the plan's own cut
    assert refit_rows({**plan, "test_rows": {**rows, "emotion": 50}}, cost, need / 2, 300.0)["emotion"] <= 50


def test_budget_cuts_rows_to_80_before_steps_and_counts_fixed_costs(tiny_demo):
    """A budget that cannot hold the planned schedules and all held-out rows cuts the rows first,
    down to ROWS_BEFORE_STEPS emotion rows, keeping every planned step; tighter, the steps go
    (rows stay at 80); tighter still, rows go to MIN_EMOTION_ROWS. Each variant's fixed seconds
    and the clips' encoding come off the training seconds."""
    from emoreason.configs import find_config
    from emoreason.demo.budget import (MIN_EMOTION_ROWS, RESERVE_SHARE, ROWS_BEFORE_STEPS, EvalCost, plan_budget,
                                       schedule_steps, shortest_steps)

    out, _, _ = tiny_demo
    config = find_config("tiny.yaml")
    variants = {style: (config, [f"data.train_manifest={(out / 'targets' / f'train_{style}.jsonl').resolve()}",
                                 "train.epochs=5", "train.alternation_epochs=4"])
                for style in ("label", "detailed")}
    planned = {n: schedule_steps(c, o) for n, (c, o) in variants.items()}
    shortest = {n: shortest_steps(c, o) for n, (c, o) in variants.items()}
    assert all(shortest[n] < planned[n] for n in variants)
    rows = {"emotion": 160, "sentiment": 20, "asr": 20, "sqa": 12}
    cost = EvalCost(1.0, 0.5, 0.0, {n: {"emotion": 1} for n in variants}, rows, fixed_s=2.0)
    step_s, fixed_s, encode_s = 20.0, 5.0, 10.0
    overhead = 2 * fixed_s + encode_s

    def plan(spare: float) -> dict:
        return plan_budget(spare / (1 - RESERVE_SHARE) / 60, 0.0, step_s, variants, cost,
                           fixed_s=fixed_s, encode_s=encode_s)

    # room for every planned step and 120 of 160 emotion rows' worth of evaluation
    roomy = plan(overhead + sum(planned.values()) * step_s + cost.seconds({**rows, "emotion": 120}))
    assert ROWS_BEFORE_STEPS < roomy["test_rows"]["emotion"] < 160
    assert all(f["steps"] == f["planned_steps"] for f in roomy["variants"].values())
    assert roomy["train_fixed_s"] == fixed_s and roomy["encode_s"] == encode_s
    # less room: rows stop at 80 and the schedules are shortened
    half = {"emotion": 80, "sentiment": 10, "asr": 10, "sqa": 8}
    tight = plan(overhead + sum(shortest.values()) * step_s + cost.seconds(half))
    assert tight["test_rows"]["emotion"] == ROWS_BEFORE_STEPS
    assert all(f["steps"] < f["planned_steps"] for f in tight["variants"].values())
    # no room: rows at the floor
    assert plan(1.0)["test_rows"]["emotion"] == MIN_EMOTION_ROWS
    # the fixed costs come off the training seconds: 36 s (60 % of a minute) less 2 x 5 + 10 s
    assert plan_budget(1.0, 0.0, 0.5, variants)["max_steps_per_variant"] == 36
    assert plan_budget(1.0, 0.0, 0.5, variants, fixed_s=5.0, encode_s=10.0)["max_steps_per_variant"] == 16


def test_targets_measure_each_clips_cues_once_for_all_styles(tmp_path, monkeypatch):
    """The summary and detailed targets both describe measured cues: the stage measures a clip once
    (one teacher cache for the styles), and both styles' targets carry the cue phrases."""
    import emoreason.cues
    from emoreason.demo.pipeline import Demo

    measured: list[float] = []
    real = emoreason.cues.measure_cues

    def counting(wave, *args, **kwargs):  # noqa: ANN001, ANN202
        measured.append(len(wave))
        return real(wave, *args, **kwargs)

    monkeypatch.setattr(emoreason.cues, "measure_cues", counting)
    demo = Demo(replace(make_plan("tiny"), teacher_cues=True), tmp_path / "out", say=lambda line: None)
    demo.corpus()
    demo.targets()
    manifest = _read(tmp_path / "out/corpus/manifest.jsonl")
    cued = [r for r in manifest if r["task"] in ("emotion", "sentiment")]
    assert len(measured) == len({r["audio"] for r in cued})  # once per clip, not once per style (twice before)
    for style in ("summary", "detailed"):
        rows = _read(tmp_path / f"out/targets/teach_{style}.jsonl")
        assert any(r["meta"].get("cues") for r in rows)


def test_speaker_norm_stage_and_report_section(tiny_demo, tmp_path):
    """`demo --speaker-norm` on a finished demo: one more stage per variant (forced choice with each
    held-out speaker's emotion frames normalised; every row records the mode) and a report
    section pairing it with the plain forced choice on the same clips."""
    out, _, _ = tiny_demo
    copy = tmp_path / "demo"
    shutil.copytree(out, copy)
    lines: list[str] = []
    run_demo(replace(make_plan("tiny", variants=["label-dual"]), speaker_norm=True), copy, say=lines.append)
    assert any("forced choice with speaker normalisation" in line for line in lines)
    d = copy / "eval-speaker-norm" / "label-dual"
    preds = _read(d / "predictions.jsonl")
    plain = [r for r in _read(copy / "eval" / "label-dual" / "scores.jsonl") if r["task"] == "emotion"]
    assert len(preds) == len(plain) and all(r["speaker_norm"] is True for r in preds)
    assert {r["id"] for r in _read(d / "scores.jsonl")} == {r["id"] for r in plain}
    md = (copy / "report.md").read_text()
    assert "## Speaker normalisation (forced choice)" in md and "| label-dual | " in md.split("## Speaker normalisation")[1]
    assert "## Speaker normalisation" not in (out / "report.md").read_text()  # off by default


def test_speaker_norm_section_pairs_forced_choices_and_skips_variants_without_it(tmp_path):
    from emoreason.demo.report import speaker_norm_section

    def forced(directory: Path, labels: list[str]) -> Path:
        directory.mkdir(parents=True)
        (directory / "scores.jsonl").write_text("".join(
            json.dumps({"id": f"c{i}", "task": "emotion", "gold": "sad", "model_label": label}) + "\n"
            for i, label in enumerate(labels)))
        return directory

    plan = make_plan("quick", variants=["label-dual", "detailed-dual"])
    raw = {"label-dual": forced(tmp_path / "raw-l", ["angry"] * 8 + ["sad"] * 2),
           "detailed-dual": forced(tmp_path / "raw-d", ["sad"] * 10)}
    normed = {"label-dual": forced(tmp_path / "sn-l", ["angry"] * 2 + ["sad"] * 8)}  # detailed-dual: not normalised
    table, note = speaker_norm_section(plan, raw, normed).blocks
    [row] = table.rows
    assert row[:3] == ["label-dual", "10", row[2]] and row[2].startswith("20.0 [") and row[3].startswith("80.0 [")
    assert row[4].startswith("+60.0 [") and row[5] == "angry 8, sad 2" and row[6] == "angry 2, sad 8"
    assert speaker_norm_section(plan, raw, {}) is None
