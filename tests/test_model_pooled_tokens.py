"""model.emotion_pooled_tokens: clip-level emotion tokens (mean + std of the emotion encoder's frames)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from emoreason.config import Config, ConfigError, DataConfig, ModelConfig, validate
from emoreason.model.adapter import FrameAdapter, masked_mean_std
from emoreason.model.builder import build_model, load_pretrained, save_pretrained
from emoreason.model.frame_cache import FrameCache
from emoreason.testing.tiny import tiny_model_config

SR = 16_000


def _waves(*seconds: float) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [(0.1 * rng.standard_normal(int(s * SR))).astype(np.float32) for s in seconds]


def test_masked_mean_std_ignores_padding_frames():
    frames = torch.randn(2, 6, 4)
    mask = torch.tensor([[True] * 6, [True, True, True, False, False, False]])
    padded = frames.clone()
    padded[1, 3:] = 1e3  # what sits in the padding must not matter
    stats = masked_mean_std(padded, mask)
    assert stats.shape == (2, 8)
    short = frames[1, :3]
    assert torch.allclose(stats[1, :4], short.mean(0), atol=1e-5)
    assert torch.allclose(stats[1, 4:], short.std(0, unbiased=False), atol=1e-3)
    assert torch.allclose(stats[0], masked_mean_std(frames[:1], None)[0], atol=1e-6)


def test_adapter_appends_pooled_tokens_and_keeps_the_plain_init():
    torch.manual_seed(0)
    plain = FrameAdapter(8, 16, 3, "emotion")
    torch.manual_seed(0)
    pooled = FrameAdapter(8, 16, 3, "emotion", pooled=2)
    # Built last: the frame part draws the same weights as an adapter without the option.
    for key, value in plain.state_dict().items():
        assert torch.equal(value, pooled.state_dict()[key])
    frames = torch.randn(2, 6, 8)
    out = pooled(frames, torch.ones(2, 6, dtype=torch.bool))
    assert out.shape == (2, 2 + 2, 16)
    assert torch.equal(out[:, :2], plain(frames))
    assert plain.extra_tokens == 0 and pooled.extra_tokens == 2


def test_option_defaults_off_and_is_ignored_without_sequence_fusion():
    from emoreason.config import Config, DataConfig, validate

    assert ModelConfig().emotion_pooled_tokens == 0
    validate(Config(model=dataclasses.replace(tiny_model_config("sequence"), emotion_pooled_tokens=1), data=DataConfig(train_manifest="dummy:4")))
    with pytest.raises(ConfigError, match="emotion_pooled_tokens"):
        validate(Config(model=dataclasses.replace(tiny_model_config("sequence"), emotion_pooled_tokens=-1),
                        data=DataConfig(train_manifest="dummy:4")))
    # feature fusion has no emotion adapter of its own: the option is ignored (mini.yaml + model.fusion=feature works)
    cfg = dataclasses.replace(tiny_model_config("feature"), emotion_pooled_tokens=1)
    validate(Config(model=cfg, data=DataConfig(train_manifest="dummy:4")))
    model, processor = build_model(cfg)
    assert processor.emotion_pooled_tokens == 0 and "emotion" not in model.adapters


@pytest.mark.parametrize("dynamic_length", [True, False])
def test_model_tokens_placeholders_round_trip_and_frame_cache(dynamic_length, tmp_path):
    cfg = dataclasses.replace(tiny_model_config("sequence", dynamic_length=dynamic_length), emotion_pooled_tokens=2)
    torch.manual_seed(0)
    model, processor = build_model(cfg)
    plain_cfg = dataclasses.replace(cfg, emotion_pooled_tokens=0)
    _, plain_processor = build_model(plain_cfg)
    waves = _waves(1.0, 2.5)
    # Two more placeholders per clip than without the option, whatever the clip's length.
    for w in waves:
        assert processor.num_audio_tokens(w.size) == plain_processor.num_audio_tokens(w.size) + 2
    batch = processor(waves, ["Which emotion?", "Why?"], ["happy", "sad"])
    with torch.no_grad():
        tokens, mask = model.audio_tokens(batch["speech_features"], batch["emotion_features"],
                                          batch.get("speech_attention_mask"), batch.get("emotion_attention_mask"))
        assert torch.equal(mask.sum(1), (batch["input_ids"] == model.audio_token_id).sum(1))
        assert bool(mask[:, -2:].all())  # the pooled tokens are last and always valid
        # The pooled tokens read the clip, not its batch: the short clip alone gives the same ones.
        alone = processor(waves[:1], ["Which emotion?"], ["happy"])
        t1, m1 = model.audio_tokens(alone["speech_features"], alone["emotion_features"],
                                    alone.get("speech_attention_mask"), alone.get("emotion_attention_mask"))
        assert torch.allclose(t1[0, -2:], tokens[0, -2:], atol=1e-5)
        logits = model(**batch).logits
    # A gradient reaches the pooled head (it is part of the emotion adapter's parameter group).
    model.train()
    model(**batch).loss.backward()
    assert model.emotion_adapter.pooled.mlp[-1].weight.grad.abs().sum() > 0
    assert any(p is model.emotion_adapter.pooled.mlp[-1].weight for p in model.parameter_groups()["emotion_adapter"])
    model.zero_grad()
    model.eval()

    save_pretrained(model, cfg, tmp_path)
    processor.save_pretrained(tmp_path)
    loaded, proc2 = load_pretrained(tmp_path)
    assert loaded.emotion_adapter.extra_tokens == 2 and proc2.emotion_pooled_tokens == 2
    b2 = proc2(waves, ["Which emotion?", "Why?"], ["happy", "sad"])
    cache = FrameCache(tmp_path / "frames")
    loaded.use_frame_cache(cache)
    with torch.no_grad():
        assert torch.allclose(logits, loaded(**b2).logits, atol=1e-5)
        again = loaded(**b2).logits  # second pass: the frozen encoders' frames come from the cache
    assert torch.allclose(logits, again, atol=1e-5)
    assert cache.hits > 0


def test_label_anchored_pooled_tokens_start_uniform_learn_and_round_trip(tmp_path):
    """``emotion_pooled_kind: labels``: the utterance token is a softmax mix of the LLM's own label
    embeddings; at init (zero head) it is their plain mean, a gradient reaches the head, and the
    embeddings are re-read from the LLM on load (a non-persistent buffer, not a weight)."""
    from emoreason.model.adapter import LabelMixtureTokens
    from emoreason.model.builder import label_embeddings

    cfg = dataclasses.replace(tiny_model_config("sequence"), emotion_pooled_tokens=1, emotion_pooled_kind="labels")
    torch.manual_seed(0)
    model, processor = build_model(cfg)
    pooled = model.emotion_adapter.pooled
    assert isinstance(pooled, LabelMixtureTokens) and pooled.num_labels == len(cfg.labels)
    anchors = label_embeddings(model.llm, model.tokenizer, list(cfg.labels))
    assert torch.allclose(pooled.label_embeddings, anchors)
    waves = _waves(1.0, 2.5)
    batch = processor(waves, ["Which emotion?", "Why?"], ["happy", "sad"])
    with torch.no_grad():
        tokens, _ = model.audio_tokens(batch["speech_features"], batch["emotion_features"],
                                       batch.get("speech_attention_mask"), batch.get("emotion_attention_mask"))
    assert torch.allclose(tokens[:, -1], anchors.mean(0).expand(2, -1), atol=1e-5)
    model.train()
    model(**batch).loss.backward()
    assert pooled.head.weight.grad.abs().sum() > 0
    model.zero_grad()
    with torch.no_grad():  # a trained head: the token leans to one label's embedding
        pooled.head.bias.copy_(torch.arange(len(cfg.labels), dtype=torch.float32) * 5.0)
    model.eval()
    assert "emotion_adapter.pooled.label_embeddings" not in {k for k, _ in model.named_parameters()}
    save_pretrained(model, cfg, tmp_path)
    processor.save_pretrained(tmp_path)
    loaded, proc2 = load_pretrained(tmp_path)
    b2 = proc2(waves, ["Which emotion?", "Why?"], ["happy", "sad"])
    with torch.no_grad():
        assert torch.allclose(model(**batch).logits, loaded(**b2).logits, atol=1e-5)
        assert torch.allclose(loaded.emotion_adapter.pooled.label_embeddings, anchors)
    bad = dataclasses.replace(cfg, emotion_pooled_kind="words")
    with pytest.raises(ConfigError, match="emotion_pooled_kind"):
        validate(Config(model=bad, data=DataConfig(train_manifest="dummy:4")))


def test_label_anchored_model_runs_cast_to_bf16():
    """Inference on a CPU with native bf16 casts the whole model (``Engine.load(dtype="auto")``):
    the label head's float32 softmax must mix the then-bf16 label embeddings (it raised a dtype
    error before), and the bf16 answer stays close to the fp32 one."""
    cfg = dataclasses.replace(tiny_model_config("sequence"), emotion_pooled_tokens=1, emotion_pooled_kind="labels")
    torch.manual_seed(0)
    model, processor = build_model(cfg)
    with torch.no_grad():
        model.emotion_adapter.pooled.head.bias.copy_(torch.arange(len(cfg.labels), dtype=torch.float32))
    model.eval()
    batch = processor(_waves(1.0, 2.5), ["Which emotion?", "Why?"], ["happy", "sad"])
    with torch.no_grad():
        want = model(**batch).logits
        model.to(torch.bfloat16)
        got = model(**batch).logits
    assert got.dtype == torch.bfloat16 and torch.isfinite(got.float()).all()
    assert (got.float() - want).abs().mean() < 0.1 * want.abs().mean()
