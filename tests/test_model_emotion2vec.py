"""Native emotion2vec: FunASR state-dict compatibility, config round trip, checkpoint loading,
and its use as the AudioLLM's emotion encoder."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from emoreason.model.emotion2vec import (
    Emotion2vecConfig,
    Emotion2vecEncoder,
    config_from_funasr,
    encoder_state,
    funasr_model_conf,
    load_emotion2vec,
    parse_conv_spec,
)
from emoreason.model.presets import encoder_preset

TINY = Emotion2vecConfig(**encoder_preset("emotion2vec-test", "emotion2vec"))


def _randomise(model: torch.nn.Module) -> None:
    """Make every parameter non-trivial (LayerNorm weights 1, ALiBi scales 1 would hide bugs)."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("alibi_scale"):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            elif p.dim() == 1:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("extra_tokens"):
                p.copy_(torch.randn(p.shape, generator=g))


def test_parse_conv_spec():
    assert parse_conv_spec("[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] + [(512,2,2)]") == (
        [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2)


def test_config_round_trip():
    assert config_from_funasr(funasr_model_conf(TINY)) == TINY
    default = Emotion2vecConfig()
    assert config_from_funasr(funasr_model_conf(default)) == default


def test_frames_for_30_seconds():
    model = Emotion2vecEncoder(TINY).eval()
    with torch.no_grad():
        frames, mask = model(torch.zeros(1, 480_000))
    assert frames.shape == (1, 1499, 32) and mask is None


@pytest.mark.parametrize("per_layer", [False, True])
def test_matches_funasr(per_layer):
    pytest.importorskip("omegaconf")
    try:
        from funasr.models.emotion2vec.model import Emotion2vec
    except Exception:  # funasr not installed (it is an optional extra)
        pytest.skip("funasr is not importable")
    cfg = dataclasses.replace(TINY, alibi_scale_per_layer=per_layer)
    torch.manual_seed(0)
    ref = Emotion2vec(model_conf=funasr_model_conf(cfg)).eval()
    _randomise(ref)
    ours = Emotion2vecEncoder(cfg).eval()
    ours.load_state_dict(encoder_state(ref.state_dict()))  # strict: every name matches
    wave = torch.randn(2, 16_000 * 2)
    wave = torch.nn.functional.layer_norm(wave, wave.shape[-1:])
    with torch.no_grad():
        expected = ref.extract_features(wave, padding_mask=None)["x"]
        got, _ = ours(wave)
    assert got.shape == expected.shape == (2, 99, 32)
    assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()


def test_load_checkpoint_directory(tmp_path):
    import yaml
    from safetensors.torch import save_file

    torch.manual_seed(1)
    src = Emotion2vecEncoder(TINY).eval()
    _randomise(src)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"model": "Emotion2vec", "model_conf": funasr_model_conf(TINY)}))
    state = {k: v.clone() for k, v in src.state_dict().items()}
    state["proj.weight"] = torch.zeros(9, 32)  # classifier head of emotion2vec+: skipped
    torch.save({"model": state}, tmp_path / "model.pt")
    loaded = load_emotion2vec(tmp_path).eval()
    wave = torch.randn(1, 8000)
    with torch.no_grad():
        assert torch.equal(loaded(wave)[0], src(wave)[0])
    (tmp_path / "model.pt").unlink()
    save_file({k: v for k, v in state.items() if k != "proj.weight"}, str(tmp_path / "model.safetensors"))
    assert torch.equal(load_emotion2vec(tmp_path).state_dict()["blocks.0.attn.qkv.weight"], state["blocks.0.attn.qkv.weight"])


def test_as_emotion_encoder():
    from emoreason.model.builder import build_model
    from emoreason.testing.tiny import tiny_model_config

    torch.manual_seed(0)
    model, processor = build_model(tiny_model_config("sequence", emotion_type="emotion2vec"))
    wave = (0.1 * np.random.default_rng(0).standard_normal(16_000)).astype(np.float32)
    batch = processor([wave], ["Which emotion?"], ["happy"])
    assert batch["emotion_features"].shape == (1, 480_000)
    assert (batch["input_ids"] == model.audio_token_id).sum() == 110
    out = model(**batch)
    assert torch.isfinite(out.loss)
