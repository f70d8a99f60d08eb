"""``train.pooled_label_loss_weight``: an auxiliary cross entropy on the label-anchored pooled
tokens' head (``model.emotion_pooled_kind: labels``), docs/training.md "Label accuracy"."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from emoreason.config import ConfigError, load_config
from emoreason.configs import config_path
from emoreason.data.dataset import Collator
from emoreason.train import train

TINY = config_path("tiny")
BASE = ["data.train_manifest=dummy:20", "train.schedule=joint", "train.epochs=1", "train.max_steps=3",
        "train.save_every_steps=0", "model.emotion_pooled_tokens=1", "model.emotion_pooled_kind=labels"]
HEAD = "emotion_adapter.pooled.head.weight"


def _head(run) -> torch.Tensor:
    state = load_file(str(run / "final" / "trainable.safetensors"))
    return next(v for k, v in state.items() if k.endswith("pooled.head.weight"))


def test_collator_gives_each_emotion_row_its_label_index():
    def processor(**kw):
        n = len(kw["prompts"])
        return {"labels": torch.zeros((n, 3), dtype=torch.long)}

    rows = [{"wave": np.zeros(10), "prompt": "p", "target": "t", "task": t, "id": str(i), "label": lab}
            for i, (t, lab) in enumerate([("emotion", "sad"), ("sentiment", "negative"), ("emotion", "unknown"), ("asr", None)])]
    batch = Collator(processor, emotion_labels=["neutral", "happy", "sad", "angry"])(rows)
    assert batch["emotion_label_ids"].tolist() == [2, -100, -100, -100]
    assert "emotion_label_ids" not in Collator(processor)(rows)


def test_auxiliary_loss_trains_the_head_and_needs_label_tokens(tmp_path):
    off = train(load_config(TINY, BASE), tmp_path / "off", cache_dir=tmp_path / "cache")
    on = train(load_config(TINY, BASE + ["train.pooled_label_loss_weight=1"]), tmp_path / "on", cache_dir=tmp_path / "cache")
    assert off.steps == on.steps == 3
    # same seed, same batches: only the auxiliary loss can make the heads differ
    assert not torch.allclose(_head(tmp_path / "off"), _head(tmp_path / "on"))
    with pytest.raises(ConfigError, match="pooled_label_loss_weight"):
        load_config(TINY, ["train.pooled_label_loss_weight=1"])


def test_probe_init_copies_a_fitted_probe_into_the_head(tmp_path):
    """``train.pooled_head_init=probe``: before the first step the head is a logistic regression on
    the training clips' pooled frames, so on those clips it already predicts like the probe."""
    from emoreason.data.dataset import ManifestDataset
    from emoreason.model.builder import build_model
    from emoreason.train.head_init import _emotion_clips, init_head_from_probe, pooled_features, pooled_head
    from emoreason.train.recipe import TrainingRecipe

    cfg = load_config(TINY, BASE + ["train.pooled_head_init=probe"])
    recipe = TrainingRecipe(cfg, tmp_path / "run", cache_dir=tmp_path / "cache")
    data = recipe.setup_data()
    model, processor = build_model(cfg.model)
    labels = list(cfg.model.labels)
    assert pooled_head(model).head.weight.abs().sum() == 0
    summary = init_head_from_probe(model, processor, data.train, labels)
    assert summary is not None and summary["clips"] >= 4 and len(summary["classes"]) >= 2
    clips = _emotion_clips(data.train, labels)
    x = torch.from_numpy(pooled_features(model, processor, data.train, [i for i, _ in clips]))
    with torch.no_grad():
        predicted = pooled_head(model).head(x).argmax(-1)
    agree = float((predicted == torch.tensor([y for _, y in clips])).float().mean())
    assert agree == pytest.approx(summary["train_accuracy"], abs=1e-6)
    assert agree > 1.0 / len(labels)


def test_pooled_head_lr_zero_keeps_the_probe_and_trains_the_rest(tmp_path):
    """``train.pooled_head_lr=0``: the probe-initialised head ends the run exactly as fitted, while
    the default (the adapter group's lr) moves it; the frame adapter trains either way."""
    from emoreason.model.builder import build_model
    from emoreason.train.head_init import init_head_from_probe, pooled_head
    from emoreason.train.recipe import TrainingRecipe

    probe = BASE + ["train.pooled_head_init=probe"]
    kept = train(load_config(TINY, probe + ["train.pooled_head_lr=0"]), tmp_path / "kept", cache_dir=tmp_path / "cache")
    moved = train(load_config(TINY, probe), tmp_path / "moved", cache_dir=tmp_path / "cache")
    assert kept.steps == moved.steps == 3

    cfg = load_config(TINY, probe)
    data = TrainingRecipe(cfg, tmp_path / "fit", cache_dir=tmp_path / "cache").setup_data()
    model, processor = build_model(cfg.model)
    init_head_from_probe(model, processor, data.train, list(cfg.model.labels))
    fitted = pooled_head(model).head.weight.detach()
    assert torch.equal(_head(tmp_path / "kept"), fitted)
    assert not torch.allclose(_head(tmp_path / "moved"), fitted)
    trained = load_file(str(tmp_path / "kept" / "final" / "trainable.safetensors"))
    mlp = next(k for k in trained if k.startswith("emotion_adapter.mlp") and k.endswith("weight"))
    assert not torch.equal(trained[mlp], model.state_dict()[mlp]), "the rest of the emotion adapter must still train"
    with pytest.raises(ConfigError, match="pooled_head_lr"):
        load_config(TINY, BASE + ["train.pooled_head_lr=-1"])
