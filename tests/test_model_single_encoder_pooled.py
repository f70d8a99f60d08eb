"""``model.single_encoder_pooled``: a speech-encoder-only model (``fusion: none``) gets the same
label-anchored pooled token as the dual encoder's emotion adapter, over the speech encoder's
frames, so that the demo's single- vs dual-encoder comparison differs in the encoders alone."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from emoreason.config import ConfigError, load_config
from emoreason.configs import config_path
from emoreason.train.head_init import pooled_head
from emoreason.train.recipe import TrainingRecipe

SINGLE = ["data.train_manifest=dummy:20", "train.schedule=joint", "train.epochs=1", "train.save_every_steps=0",
          "model.fusion=none", "model.emotion_encoder=null", "model.emotion_pooled_tokens=1",
          "model.emotion_pooled_kind=labels", "train.pooled_head_init=probe", "model.speech_encoder.trainable=false",
          "train.pooled_head_lr=0"]


def _batch(processor, n: int = 3):
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(16000 * (1 + i)).astype(np.float32) * 0.1 for i in range(n)]
    return processor(waves=waves, prompts=["How does the speaker sound?"] * n)


def test_single_encoder_model_carries_a_probe_initialised_pooled_token_that_survives_saving(tmp_path):
    from emoreason.model.builder import load_pretrained, save_pretrained

    cfg = load_config(config_path("tiny"), SINGLE + ["model.single_encoder_pooled=true"])
    recipe = TrainingRecipe(cfg, tmp_path / "run", cache_dir=tmp_path / "cache")
    data = recipe.setup_data()
    model, processor = recipe.setup_model()
    head = pooled_head(model)
    assert head is not None and list(model.adapters) == ["speech"] and model.adapters["speech"].pooled is head
    assert not head.head.weight.any()  # zero before the fit
    trainer = recipe.setup_trainer(model, processor, data)
    assert head.head.weight.abs().sum() > 0  # the probe, fitted on the speech encoder's pooled frames
    probe = {k: v.clone() for k, v in head.state_dict().items()}

    # one pooled token after the speech tokens, and the same count without the key is one fewer
    plain = load_config(config_path("tiny"), SINGLE)
    assert not plain.model.single_encoder_pooled
    from emoreason.model.builder import build_model

    plain_model, plain_processor = build_model(plain.model)
    assert pooled_head(plain_model) is None
    for samples in (8000, 16000 * 3):
        assert processor.num_audio_tokens(samples) == plain_processor.num_audio_tokens(samples) + 1

    frames_mlp = [p.detach().clone() for p in model.adapters["speech"].mlp.parameters()]
    trainer.fit(resume=False)
    # train.pooled_head_lr 0 holds the head in the speech adapter's group, as in the emotion
    # adapter's; the rest of the adapter trains
    for k, v in head.state_dict().items():
        assert torch.equal(v, probe[k]), k
    assert any(not torch.equal(a, b) for a, b in zip(frames_mlp, model.adapters["speech"].mlp.parameters()))
    model.eval()
    batch = _batch(processor)
    with torch.no_grad():
        before = model(**{k: v for k, v in batch.items() if k != "ids"})
    assert before.label_logits is not None and tuple(before.label_logits.shape) == (3, 1, len(cfg.model.labels))
    save_pretrained(model, cfg.model, tmp_path / "saved")
    processor.save_pretrained(tmp_path / "saved")
    loaded, loaded_processor = load_pretrained(tmp_path / "saved")
    assert pooled_head(loaded) is not None and loaded_processor.emotion_pooled_tokens == 1
    with torch.no_grad():
        after = loaded(**{k: v for k, v in _batch(loaded_processor).items() if k != "ids"})
    torch.testing.assert_close(after.label_logits, before.label_logits)
    torch.testing.assert_close(after.logits, before.logits)


def test_single_encoder_pooled_is_refused_with_two_encoders():
    with pytest.raises(ConfigError, match="single_encoder_pooled is for model.fusion=none"):
        load_config(config_path("tiny"), ["model.single_encoder_pooled=true"])
