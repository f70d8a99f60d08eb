"""model.adapter_output_norm: adapter tokens held at the LLM's token-embedding scale."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from emoreason.config import ModelConfig
from emoreason.model.adapter import FrameAdapter, OutputRMS
from emoreason.model.builder import build_model, embedding_rms, load_pretrained, save_pretrained
from emoreason.testing.tiny import tiny_model_config

SR = 16_000


def _waves(*seconds: float) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [(0.1 * rng.standard_normal(int(s * SR))).astype(np.float32) for s in seconds]


def _token_rms(x: torch.Tensor) -> torch.Tensor:
    """(..., H) -> (...) RMS of each token."""
    return x.pow(2).mean(-1).sqrt()


def test_output_rms_sets_every_token_to_the_scale_whatever_the_input_size():
    x = torch.randn(2, 5, 16) * torch.tensor([1e-3, 1.0, 300.0, 7.0, 0.2]).view(1, 5, 1)
    y = OutputRMS(0.136)(x)
    assert y.shape == x.shape
    assert torch.allclose(_token_rms(y), torch.full((2, 5), 0.136), rtol=1e-4)
    # Direction kept: only the length of each token changes.
    assert torch.allclose(torch.nn.functional.cosine_similarity(x, y, dim=-1), torch.ones(2, 5), atol=1e-5)
    assert not list(OutputRMS(1.0).parameters())


def test_adapter_without_the_option_is_unchanged():
    torch.manual_seed(0)
    plain = FrameAdapter(8, 16, 3, "emotion")
    torch.manual_seed(0)
    normed = FrameAdapter(8, 16, 3, "emotion", out_rms=0.5)
    # Same random draws and the same saved weights: the option adds no parameter.
    assert plain.state_dict().keys() == normed.state_dict().keys()
    frames = torch.randn(2, 6, 8) * 50
    a, b = plain(frames), normed(frames)
    assert a.shape == b.shape == (2, 2, 16)
    assert not torch.allclose(_token_rms(a), torch.full((2, 2), 0.5), rtol=1e-2)
    assert torch.allclose(_token_rms(b), torch.full((2, 2), 0.5), rtol=1e-4)


@pytest.mark.parametrize("fusion", ["sequence", "feature"])
def test_model_audio_tokens_at_embedding_rms_and_round_trip(fusion, tmp_path):
    cfg = dataclasses.replace(tiny_model_config(fusion), adapter_output_norm=True)
    torch.manual_seed(0)
    model, processor = build_model(cfg)
    target = embedding_rms(model.llm)
    emb = model.llm.get_input_embeddings().weight
    assert target == pytest.approx(float(emb.pow(2).mean().sqrt()), rel=1e-6)
    # Blow the adapters' last layers up (what training at a high lr did): tokens stay at the scale.
    with torch.no_grad():
        for adapter in model.adapters.values():
            adapter.mlp[-1].weight.mul_(500.0)
    batch = processor(_waves(1.0, 2.5), ["Which emotion?", "Why?"], ["happy", "sad"])
    with torch.no_grad():
        tokens, mask = model.audio_tokens(batch["speech_features"], batch["emotion_features"])
    assert torch.allclose(_token_rms(tokens), torch.full(tokens.shape[:2], target), rtol=1e-4)

    save_pretrained(model, cfg, tmp_path)
    processor.save_pretrained(tmp_path)
    loaded, proc2 = load_pretrained(tmp_path)
    assert all(isinstance(a.out, OutputRMS) and a.out.scale == pytest.approx(target) for a in loaded.adapters.values())
    b2 = proc2(_waves(1.0, 2.5), ["Which emotion?", "Why?"], ["happy", "sad"])
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, loaded(**b2).logits)


def test_option_defaults_off():
    assert ModelConfig().adapter_output_norm is False
    torch.manual_seed(0)
    model, _ = build_model(tiny_model_config("sequence"))
    assert all(isinstance(a.out, torch.nn.Identity) for a in model.adapters.values())
