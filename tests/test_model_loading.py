"""Builder paths: pretrained Whisper / HuBERT / auto encoders from local directories, presets,
embedding growth for new audio tokens, and config errors."""
from __future__ import annotations

import pytest
import torch

from emoreason.config import ConfigError, EncoderConfig
from emoreason.model.builder import _fit_embeddings, build_encoder
from emoreason.model.presets import ENCODER_PRESETS, encoder_preset


def _tiny_whisper_model():
    from transformers import WhisperConfig, WhisperModel

    cfg = WhisperConfig(d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=80,
                        vocab_size=100, max_target_positions=32, pad_token_id=0,
                        bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)
    torch.manual_seed(0)
    return WhisperModel(cfg)


def test_whisper_pretrained_from_local_dir(tmp_path):
    ref = _tiny_whisper_model()
    ref.save_pretrained(tmp_path)  # safetensors, keys "encoder.*" / "decoder.*"
    enc, spec = build_encoder(EncoderConfig(type="whisper", path=str(tmp_path)), "speech_encoder")
    assert spec.kind == "mel" and spec.num_mel_bins == 80 and enc.hidden_size == 32
    for name, value in ref.encoder.state_dict().items():
        assert torch.equal(enc.encoder.state_dict()[name], value), name


def test_whisper_dir_without_encoder_weights(tmp_path):
    from safetensors.torch import save_file

    _tiny_whisper_model().config.save_pretrained(tmp_path)
    save_file({"decoder.layer_norm.weight": torch.ones(32)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ConfigError, match="lacks encoder weights"):
        build_encoder(EncoderConfig(type="whisper", path=str(tmp_path)), "speech_encoder")


def _tiny_hubert():
    from transformers import HubertConfig, HubertModel

    kwargs = encoder_preset("hubert-test", "hubert")
    torch.manual_seed(0)
    return HubertModel(HubertConfig(**kwargs))


def test_hubert_pretrained_and_normalisation_flag(tmp_path):
    from transformers import Wav2Vec2FeatureExtractor

    ref = _tiny_hubert()
    ref.save_pretrained(tmp_path)
    enc, spec = build_encoder(EncoderConfig(type="hubert", path=str(tmp_path), num_tokens=10), "emotion_encoder")
    assert spec.kind == "wave" and spec.normalize  # no feature extractor config: normalise
    assert torch.equal(enc.model.state_dict()["feature_projection.projection.weight"],
                       ref.state_dict()["feature_projection.projection.weight"])
    Wav2Vec2FeatureExtractor(do_normalize=False).save_pretrained(tmp_path)
    _, spec = build_encoder(EncoderConfig(type="hubert", path=str(tmp_path), num_tokens=10), "emotion_encoder")
    assert not spec.normalize


def test_auto_encoder_random_from_config_dir(tmp_path):
    from transformers import Wav2Vec2Config

    Wav2Vec2Config(hidden_size=24, num_hidden_layers=1, num_attention_heads=2, intermediate_size=48,
                   conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4).save_pretrained(tmp_path)
    enc, spec = build_encoder(EncoderConfig(type="auto", path=str(tmp_path), init="random", num_tokens=10), "emotion_encoder")
    frames, mask = enc(torch.zeros(1, 16_000))
    assert frames.shape == (1, 49, 24) and mask is None and spec.kind == "wave"


def test_presets_give_paper_shapes_without_memory():
    """whisper-large-v3 encoder = 637M params (FACTS), speech adapter 49M at Gemma-2-9B width."""
    from emoreason.model.adapter import FrameAdapter

    with torch.device("meta"):
        enc, spec = build_encoder(EncoderConfig(type="whisper", path="preset:whisper-large-v3", init="random"), "speech_encoder")
        adapter = FrameAdapter(enc.hidden_size, 3584, spec.group, "speech")
    assert spec.num_mel_bins == 128 and spec.group == 15
    assert round(sum(p.numel() for p in enc.parameters()) / 1e6) == 637
    assert round(sum(p.numel() for p in adapter.parameters()) / 1e6) == 49


def test_preset_errors():
    with pytest.raises(Exception, match="unknown encoder preset"):
        build_encoder(EncoderConfig(type="whisper", path="preset:nope", init="random"), "speech_encoder")
    with pytest.raises(Exception, match="is a hubert encoder"):
        build_encoder(EncoderConfig(type="whisper", path="preset:hubert-xlarge", init="random"), "speech_encoder")
    with pytest.raises(ConfigError, match="Whisper-only"):
        build_encoder(EncoderConfig(type="hubert", path="preset:hubert-test", init="random", dynamic_length=True), "e")
    with pytest.raises(ConfigError, match="only apply with init: random"):
        build_encoder(EncoderConfig(type="whisper", path="x", hidden_size=8), "speech_encoder")
    assert all(fam in {"whisper", "hubert", "emotion2vec"} for fam, _ in ENCODER_PRESETS.values())


def test_fit_embeddings_grows_with_mean_rows():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    llm = LlamaForCausalLM(LlamaConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                       num_key_value_heads=1, intermediate_size=32, vocab_size=50))
    old_in = llm.get_input_embeddings().weight.detach().clone()
    old_out = llm.get_output_embeddings().weight.detach().clone()
    _fit_embeddings(llm, 53)
    new_in, new_out = llm.get_input_embeddings().weight, llm.get_output_embeddings().weight
    assert new_in.shape == (53, 16) and new_out.shape == (53, 16)
    assert torch.equal(new_in[:50], old_in)
    assert torch.allclose(new_in[50:], old_in.mean(0).expand(3, -1))
    assert torch.allclose(new_out[50:], old_out.mean(0).expand(3, -1))
    _fit_embeddings(llm, 40)  # never shrinks
    assert llm.get_input_embeddings().weight.shape[0] == 53


def test_emotion2vec_missing_checkpoint_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="neither a local directory nor fetchable"):
        build_encoder(EncoderConfig(type="emotion2vec", path=str(tmp_path / "absent"), num_tokens=10), "emotion_encoder")
