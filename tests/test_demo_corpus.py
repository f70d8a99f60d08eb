"""``emoreason demo --corpus KIND:PATH`` on tiny random models: a fixture EmoDB tree (its naming
scheme, synthesised waves) goes through import with speaker folds, teacher targets, training,
held-out evaluation and the report, in place of (or beside) the synthetic corpus."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emoreason.demo.pipeline import run_demo
from emoreason.demo.plan import make_plan
from emoreason.errors import UserError

needs_synth = pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("sox") is None,
                                 reason="needs espeak-ng and sox (scripts/setup.sh installs them)")


def make_emodb(root: Path) -> Path:
    """Six speakers x five emotions (boredom among them, which the demo's four leave out)."""
    sr = 16_000
    for i, spk in enumerate(("03", "08", "09", "10", "11", "12")):
        for j, (text, emo) in enumerate((("a01", "W"), ("a02", "L"), ("b10", "F"), ("a05", "N"), ("b01", "T"))):
            t = np.arange(int(0.6 * sr)) / sr
            f0 = 100 + 7 * i + 37 * j  # distinct per clip: the demo refuses test audio it trained on
            x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in (1, 2, 3)) * (0.2 + 0.1 * j)
            (root / "wav").mkdir(parents=True, exist_ok=True)
            sf.write(root / "wav" / f"{spk}{text}{emo}a.wav", (0.3 * x / np.abs(x).max()).astype(np.float32), sr)
    return root


def _rows(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def test_demo_on_a_real_corpus_layout(tmp_path):
    corpus = make_emodb(tmp_path / "emodb")
    plan = make_plan("tiny", variants=["label-dual"], corpora=[f"emodb:{corpus}"])
    lines: list[str] = []
    result = run_demo(plan, tmp_path / "out", say=lines.append)
    out = tmp_path / "out"
    rows = _rows(out / "corpus" / "manifest.jsonl")
    emo = [r for r in rows if r["task"] == "emotion"]
    assert {r["label"] for r in emo} == {"neutral", "happy", "sad", "angry"} and len(emo) == 24  # boredom left out
    assert all(r["source"] == "emodb" and (out / "corpus" / r["audio"]).is_file() for r in rows)
    # speaker-disjoint: fold 1 of EmoDB's 5 default folds holds out whole speakers
    test_spk = {r["speaker"] for r in emo if r["split"] == "test"}
    assert test_spk and not test_spk & {r["speaker"] for r in emo if r["split"] != "test"}
    test = _rows(out / "testset" / "test.jsonl")
    assert {r["task"] for r in test} == {"emotion", "sentiment", "asr"}  # no sqa rows in a real corpus
    assert {r["speaker"] for r in test} <= test_spk
    trained = _rows(out / "targets" / "train_label.jsonl")
    assert trained and not {r["speaker"] for r in trained} & test_spk
    # the teacher ran on the rows trained on only (a real corpus can be thousands of clips)
    for style in ("label", "detailed"):
        taught = _rows(out / "targets" / f"teach_{style}.jsonl")
        assert {r["id"] for r in taught} == {r["id"] for r in trained}
        assert all((out / "targets" / r["audio"]).is_file() for r in taught)
    metrics = json.loads((out / "eval/label-dual/metrics.json").read_text())
    assert metrics["tasks"]["emotion"]["n"] == 4 and "sqa" not in metrics["tasks"]
    # German speech: transcribed in German by the multilingual packaged Whisper, not tiny.en
    preds = [r for r in _rows(out / "eval/label-dual/predictions.jsonl") if r["task"] == "emotion"]
    assert {(r["transcript_language"], r["transcriber"]) for r in preds} == {("de", "packaged:whisper-base")}
    md = (out / "report.md").read_text()
    assert "24 utterances of emodb (real speech, fold 1 held out)" in md and "emodb" in md
    assert result.table["label-dual"]["n"] == 4
    assert any("corpora emodb:" in l for l in lines) and any("leave-" in l and "speakers-out fold 1 of 5" in l for l in lines)
    # a real corpus: the forced choice again with each held-out speaker normalised (on by default)
    assert plan.speaker_norm and not make_plan("tiny", variants=["label-dual"]).speaker_norm
    normed = _rows(out / "eval-speaker-norm/label-dual/predictions.jsonl")
    assert len(normed) == 4 and all(r["speaker_norm"] for r in normed)
    assert "## Speaker normalisation (forced choice)" in md


@needs_synth
def test_demo_corpus_besides_synthetic_and_bad_specs(tmp_path):
    corpus = make_emodb(tmp_path / "emodb")
    plan = make_plan("tiny", variants=["label-dual"], corpora=[f"emodb:{corpus}"], with_synthetic=True, corpus_fold=2)
    from emoreason.demo.pipeline import Demo

    demo = Demo(plan, tmp_path / "out", say=lambda _: None)
    result = demo.corpus()
    rows = _rows(tmp_path / "out" / "corpus" / "manifest.jsonl")
    assert {r["source"] for r in rows} == {"synth", "emodb"} and result["corpora"] == ["synth", "emodb"]
    assert all((tmp_path / "out" / "corpus" / r["audio"]).is_file() for r in rows)
    assert {"emodb", "synth"} == {s.split("/")[0] for s in result["speakers"]["test"]}
    with pytest.raises(UserError, match="expected KIND:PATH"):
        make_plan("tiny", corpora=["emodb"])
    with pytest.raises(UserError, match="unknown corpus"):
        make_plan("tiny", corpora=[f"berlin:{corpus}"])
    with pytest.raises(UserError, match="not found"):
        make_plan("tiny", corpora=[f"emodb:{tmp_path / 'nope'}"])
    with pytest.raises(UserError, match="only makes sense"):
        make_plan("tiny", with_synthetic=True)


def test_test_emotion_rows_sets_the_held_out_cap():
    assert make_plan("quick").test_rows["emotion"] == 16
    plan = make_plan("quick", test_emotion_rows=0)
    assert plan.test_rows["emotion"] == 0 and plan.test_rows["asr"] == make_plan("quick").test_rows["asr"]
    with pytest.raises(UserError, match="--test-emotion-rows must be >= 0"):
        make_plan("quick", test_emotion_rows=-1)


def test_demo_cli_corpus_flags_need_a_corpus(capsys):
    from emoreason.cli import main

    assert main(["demo", "--tiny", "--with-synthetic"]) == 1
    assert "need --corpus KIND:PATH" in capsys.readouterr().err
    assert main(["demo", "--tiny", "--corpus", "emodb"]) == 1
    assert "expected KIND:PATH" in capsys.readouterr().err
