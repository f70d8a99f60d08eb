"""Classifier baseline (paper Table 6): a tiny random emotion2vec with a `proj` head saved in
FunASR's layout, its head mapped onto the manifest's labels, `eval run --classifier` end to end
(per-class accuracy, WA, UA), and the headless checkpoint's one-line error."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from emoreason.cli import main
from emoreason.errors import UserError
from emoreason.eval.classifier import answer_sentence, head_classes, label_vocabulary, load_classifier, map_scores
from emoreason.model.emotion2vec import Emotion2vecConfig, Emotion2vecEncoder, funasr_model_conf
from emoreason.model.presets import encoder_preset
from emoreason.testing.fixtures import tone
from emoreason.audio import save_audio

TINY = Emotion2vecConfig(**encoder_preset("emotion2vec-test", "emotion2vec"))
TOKENS = ["生气/angry", "厌恶/disgusted", "恐惧/fearful", "开心/happy", "中立/neutral", "其他/other", "难过/sad",
          "吃惊/surprised", "<unk>"]


def save_checkpoint(path: Path, head_bias: list[float] | None = None, with_head: bool = True) -> Path:
    """A random tiny emotion2vec(+) in FunASR's layout: config.yaml, model.pt ({"model": state}), tokens.txt."""
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    state = dict(Emotion2vecEncoder(TINY).state_dict())
    if with_head:
        state["proj.weight"] = 0.5 * torch.randn(9, TINY.embed_dim)
        state["proj.bias"] = torch.tensor(head_bias) if head_bias else torch.zeros(9)
        (path / "tokens.txt").write_text("\n".join(TOKENS) + "\n", encoding="utf-8")
    (path / "config.yaml").write_text(yaml.safe_dump({"model": "Emotion2vec", "model_conf": funasr_model_conf(TINY)},
                                                     allow_unicode=True))
    torch.save({"model": state}, path / "model.pt")
    return path


def test_head_classes_from_tokens_txt_config_or_default(tmp_path):
    save_checkpoint(tmp_path / "a")
    assert head_classes(tmp_path / "a", {}, 9) == ["angry", "disgusted", "fearful", "happy", "neutral", "other", "sad",
                                                   "surprised", "unknown"]
    assert head_classes(tmp_path, {"tokenizer_conf": {"token_list": ["开心/happy", "难过/sad"]}}, 2) == ["happy", "sad"]
    assert head_classes(tmp_path, {}, 9)[-1] == "unknown"  # no tokens.txt: the emotion2vec+ order
    with pytest.raises(UserError, match="the head has 4 classes and no tokens.txt"):
        head_classes(tmp_path, {}, 4)
    with pytest.raises(UserError, match="lists 9 classes but the head has 7"):
        head_classes(tmp_path / "a", {}, 7)


def test_map_scores_renormalises_onto_the_vocabulary():
    classes = ["angry", "disgusted", "fearful", "happy", "neutral", "other", "sad", "surprised", "unknown"]
    probs = np.array([0.2, 0.1, 0.05, 0.3, 0.1, 0.1, 0.1, 0.0, 0.05])
    got = map_scores(probs, classes, ["angry", "happy", "neutral", "sad"], "emotion")
    assert got == pytest.approx({"angry": 0.2 / 0.7, "happy": 0.3 / 0.7, "neutral": 0.1 / 0.7, "sad": 0.1 / 0.7})
    # a label the head cannot say gets 0; sentiment sums by polarity and drops other / unknown
    assert map_scores(probs, classes, ["angry", "frustrated"], "emotion") == pytest.approx({"angry": 1.0, "frustrated": 0.0})
    pol = map_scores(probs, classes, ["positive", "negative", "neutral"], "sentiment")
    assert pol == pytest.approx({"positive": 0.3 / 0.85, "negative": 0.45 / 0.85, "neutral": 0.1 / 0.85})


def test_label_vocabulary_uses_corpus_order():
    assert label_vocabulary("emotion", ["sad", "neutral", "angry", "happy", "sad"]) == ["angry", "happy", "neutral", "sad"]
    assert label_vocabulary("sentiment", ["negative"]) == ["positive", "negative", "neutral"]
    assert answer_sentence("emotion", "sad") == "The speaker's emotion is sad."


def test_probabilities_follow_funasr_inference(tmp_path):
    """Layer-normalised wave -> frames -> mean over frames -> proj -> softmax (FunASR utterance path)."""
    model = load_classifier(save_checkpoint(tmp_path / "ckpt"), device="cpu")
    wave = tone(0.7).astype(np.float32)
    x = torch.nn.functional.layer_norm(torch.from_numpy(wave)[None], (len(wave),))
    with torch.no_grad():
        frames, _ = model.encoder(x)
        want = torch.softmax(model.head(frames.mean(1)), -1)[0].numpy()
    got = model.probabilities(wave)
    assert got.shape == (9,) and got.sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    state = torch.load(tmp_path / "ckpt" / "model.pt", weights_only=True)["model"]
    assert torch.equal(model.head.weight, state["proj.weight"])


@pytest.fixture()
def manifest(tmp_path) -> Path:
    """Six short tones; gold labels cover angry / happy / sad / frustrated (the last is not a head class)."""
    labels = ["angry", "sad", "sad", "happy", "frustrated", "sad"]
    rows = []
    for i, label in enumerate(labels):
        save_audio(tmp_path / f"u{i}.wav", tone(0.4 + 0.1 * i, f0=120 + 20 * i))
        rows.append({"id": f"u{i}", "audio": f"u{i}.wav", "task": "emotion", "label": label, "split": "test"})
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path / "manifest.jsonl"


def test_eval_run_classifier_end_to_end(manifest, tmp_path, capsys):
    bias = [0.0] * 9
    bias[6] = 50.0  # "sad" wins every clip whatever the random features say
    ckpt = save_checkpoint(tmp_path / "e2v_plus", head_bias=bias)
    out = tmp_path / "eval"
    argv = ["eval", "run", "--classifier", str(ckpt), "--manifest", str(manifest), "--out", str(out), "--bootstrap", "20"]
    assert main(argv) == 0
    assert "['frustrated'] are not among the head's classes" in capsys.readouterr().err
    preds = [json.loads(l) for l in (out / "predictions.jsonl").read_text().splitlines()]
    assert [p["id"] for p in preds] == [f"u{i}" for i in range(6)]
    assert {p["prediction"] for p in preds} == {"The speaker's emotion is sad."}
    assert all(p["model_label"] == "sad" for p in preds)
    assert all(list(p["model_scores"]) == ["angry", "happy", "sad", "frustrated"] for p in preds)
    assert all(p["model_scores"]["frustrated"] == 0.0 and sum(p["model_scores"].values()) == pytest.approx(1.0)
               for p in preds)
    assert all(len(p["head_scores"]) == 9 and "unknown" in p["head_scores"] for p in preds)
    cls = json.loads((out / "metrics.json").read_text())["tasks"]["emotion"]["classification"]
    assert cls["per_class"]["sad"]["accuracy"] == 100.0 and cls["per_class"]["angry"]["accuracy"] == 0.0
    assert cls["weighted_accuracy"] == pytest.approx(50.0)  # 3 of 6 clips are sad
    assert cls["unweighted_accuracy"] == pytest.approx(25.0)  # mean of 0, 100, 0, 0 over the 4 gold classes
    assert main(argv) == 0  # rerun resumes: nothing reclassified
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 6

    capsys.readouterr()
    assert main(["eval", "compare", str(out), "--names", "emotion2vec+", "--per-class"]) == 0
    head, row = [[c.strip() for c in line.strip("|").split("|")] for line in capsys.readouterr().out.splitlines()
                 if line.startswith("| run") or line.startswith("| emotion2vec+")]
    assert dict(zip(head, row)) == {"run": "emotion2vec+", "angry": "0.0", "happy": "0.0", "sad": "100.0",
                                    "frustrated": "0.0", "Wt Avg": "50.0", "Unwt Avg": "25.0"}


def test_headless_checkpoint_is_a_one_line_error(manifest, tmp_path, capsys):
    ckpt = save_checkpoint(tmp_path / "e2v_base", with_head=False)
    with pytest.raises(UserError, match=r"no classification head \(proj.weight\).*linear probe"):
        load_classifier(ckpt, device="cpu")
    assert main(["eval", "run", "--classifier", str(ckpt), "--manifest", str(manifest), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("emoreason: error: --classifier") and "\n" not in err
