"""`emoreason eval probe`: a logistic regression on a real frozen Whisper encoder's pooled frames,
end to end on a small synthetic corpus (espeak-ng), with the feature cache and the report row."""
import json
import shutil

import numpy as np
import pytest

from emoreason.cli import main
from emoreason.eval.probe import bootstrap_accuracies, gap_note

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("sox") is None,
                                reason="needs espeak-ng and sox")
# a real packaged encoder, the smallest one: Whisper tiny.en (d 384) as the emotion encoder
ENCODER = ["model.emotion_encoder.path=packaged:whisper-tiny.en"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from emoreason.data.synth import synth_corpus

    out = tmp_path_factory.mktemp("probe_corpus")
    synth_corpus(out, n=24, seed=0, n_speakers=4, test_fraction=0.25, dev_fraction=0.0, tasks="emotion", workers=2)
    return out / "manifest.jsonl"


def test_probe_cli_end_to_end(corpus, tmp_path, capsys):
    out, cache = tmp_path / "probe", tmp_path / "cache"

    def args(directory):
        return ["eval", "probe", "--train", str(corpus), "--train-split", "train", "--manifest", str(corpus),
                "--split", "test", "--out", str(directory), "--config", "mini", "--cache-dir", str(cache),
                "--bootstrap", "200", *ENCODER]

    assert main(args(out)) == 0
    printed = capsys.readouterr()
    m = json.loads((out / "probe.json").read_text())
    rows = [json.loads(l) for l in corpus.read_text().splitlines()]
    n_train, n_test = (sum(r["split"] == s for r in rows) for s in ("train", "test"))
    assert n_train + n_test == 24 and n_test > 0
    assert m["n_train"] == n_train and m["n_test"] == n_test and m["feature_dim"] == 2 * 384
    assert f"linear probe (emotion, {n_train} training clips, {n_test} test clips" in printed.out
    assert f"encoded {n_train}/{n_train}" in printed.err and f"encoded {n_test}/{n_test}" in printed.err
    assert m["train_accuracy"] == 100.0  # 768 features, ~20 clips: separable
    lo, hi = m["ci"]["unweighted_accuracy"]
    assert 0 <= lo <= m["unweighted_accuracy"] <= hi <= 100
    preds = [json.loads(l) for l in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == n_test and all(p["model_label"] in p["model_scores"] for p in preds)
    assert sum(p["model_label"] == p["label"] for p in preds) == round(m["weighted_accuracy"] * n_test / 100)
    # second probe: every clip's features come from the cache, the same answer
    assert main(args(tmp_path / "again")) == 0
    again = capsys.readouterr()
    assert "encoded" not in again.err
    assert json.loads((tmp_path / "again" / "probe.json").read_text())["confusion"] == m["confusion"]


def test_probe_errors(corpus, tmp_path, capsys):
    # one-line errors from the CLI (exit status 2 from main's UserError handler), nothing written
    assert main(["eval", "probe", "--train", str(corpus), "--train-split", "dev", "--manifest", str(corpus),
                 "--out", str(tmp_path / "a"), *ENCODER]) != 0
    assert "no labelled emotion rows in split dev" in capsys.readouterr().err
    assert main(["eval", "probe", "--train", str(corpus), "--manifest", str(corpus), "--out", str(tmp_path / "b"),
                 "--config", "mini", "model.fusion=none", "model.emotion_encoder=null"]) != 0
    assert "no emotion encoder" in capsys.readouterr().err
    assert not (tmp_path / "a" / "probe.json").exists() and not (tmp_path / "b" / "probe.json").exists()


def test_bootstrap_and_gap_note():
    gold = ["a"] * 10 + ["b"] * 10
    ci = bootstrap_accuracies(gold, gold, resamples=50)
    assert ci == {"accuracy": [100.0, 100.0], "unweighted_accuracy": [100.0, 100.0]}
    ci = bootstrap_accuracies(gold, ["a"] * 20, resamples=500)  # always "a": accuracy 50, UA 50
    assert ci["unweighted_accuracy"] == [50.0, 50.0] and ci["accuracy"][0] < 50 < ci["accuracy"][1]
    probe = {"unweighted_accuracy": 80.0}
    assert gap_note(76.0, probe) is None
    assert "14.0 points below the linear probe" in gap_note(66.0, probe)


def test_eval_report_shows_the_probe_and_the_gap(tmp_path):
    from emoreason.eval.metrics import classification_metrics
    from emoreason.eval.report import PROBE_DIR, write_report

    gold = ["sad", "happy"] * 10
    c = classification_metrics(gold, ["happy"] * 20)  # the model says happy every time: UA 50
    metrics = {"n": 20, "seed": 0, "bootstrap_resamples": 100, "predictions": "p.jsonl",
               "tasks": {"emotion": {"n": 20, "score": 50.0, "ci": {"low": 30.0, "high": 70.0}, "metric": "accuracy",
                                     "classification": c}}}
    probe = {"task": "emotion", "n_train": 40, "n_test": 20, "weighted_accuracy": 90.0, "unweighted_accuracy": 90.0,
             "ci": {"accuracy": [75.0, 100.0], "unweighted_accuracy": [76.0, 100.0]}}
    (tmp_path / PROBE_DIR).mkdir()
    (tmp_path / PROBE_DIR / "probe.json").write_text(json.dumps(probe))
    write_report(tmp_path, metrics)
    md = (tmp_path / "report.md").read_text()
    assert "Baseline: linear probe" in md and "90.0 [76.0, 100.0]" in md
    assert "This model is 40.0 points below the linear probe" in md


def test_probe_reuses_frames_a_training_cache_holds(corpus, tmp_path):
    """Frames written by training's path (the processor's batched, padded features of a frozen
    encoder through ``FrameCache.encode``) are the probe's for the same clips: hits for every
    training clip, features bit for bit those of a probe without the cache."""
    import torch

    from emoreason.audio import load_audio
    from emoreason.config import load_config
    from emoreason.configs import find_config
    from emoreason.eval.probe import labelled_clips, resolve_encoder, run_probe
    from emoreason.model.builder import build_model
    from emoreason.model.frame_cache import FrameCache

    model, processor = build_model(load_config(find_config("mini"), ENCODER).model)
    _, train_audio, _ = labelled_clips(corpus, "emotion", "train", "train")
    training = FrameCache(tmp_path / "frames")
    for start in range(0, len(train_audio), 4):  # batches of clips of different lengths, as training pads them
        inputs = processor.features(processor.emotion, [load_audio(p) for p in train_audio[start:start + 4]])
        training.encode(model.encoders["emotion"].eval(), torch.from_numpy(inputs["features"]), torch.from_numpy(inputs["mask"]))
    encoder = resolve_encoder(None, "mini", ENCODER)
    reused = FrameCache(tmp_path / "frames")
    kwargs = dict(train_split="train", test_split="test", resamples=50)
    with_cache = run_probe(corpus, corpus, tmp_path / "a", encoder, frame_cache=reused, **kwargs)
    plain = run_probe(corpus, corpus, tmp_path / "b", encoder, **kwargs)
    assert reused.hits == len(train_audio) and reused.misses == with_cache["n_test"]
    a, b = (sorted((tmp_path / d / "features").rglob("*.npy")) for d in ("a", "b"))
    assert len(a) == len(b) == len(train_audio) + with_cache["n_test"]
    assert all(np.array_equal(np.load(x), np.load(y)) for x, y in zip(a, b))
    assert with_cache["confusion"] == plain["confusion"]
