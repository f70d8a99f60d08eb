"""emoreason.weights.whisper_convert: CT2 Whisper -> transformers, exact on a tiny fake and equivalent to
ctranslate2 itself on the real packaged models (those are skipped where the packages are not installed)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from emoreason.errors import UserError
from emoreason.testing.weights import FAKE_SPECIAL, ct2_bytes, fake_whisper_weights, tiny_whisper_ct2
from emoreason.weights import REGISTRY, ct2_model_dir, is_installed, resolve_packaged
from emoreason.weights.whisper_convert import write_whisper_dir

needs = {n: pytest.mark.skipif(not is_installed(w), reason=f"{w.pip_command} not installed") for n, w in REGISTRY.items()}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One conversion per real Whisper model for this module, into a temporary EMOREASON_CACHE."""
    root = tmp_path_factory.mktemp("emocache")
    mp = pytest.MonkeyPatch()
    mp.setenv("EMOREASON_CACHE", str(root))
    yield root
    mp.undo()


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """A real espeak-ng utterance, 16 kHz mono float32 (T,)."""
    from emoreason.audio import load_audio

    wav = tmp_path_factory.mktemp("clip") / "clip.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "The weather report says it will rain tomorrow afternoon."], check=True)
    return load_audio(wav)


# ---------------------------------------------------------------------------------------------- tiny fake


def _convert_fake(tmp_path: Path, data: bytes) -> Path:
    w = fake_whisper_weights(tmp_path / "site")
    extras = [tmp_path / "site" / s.relpath for s in w.extra_files]
    out = tmp_path / "out"
    out.mkdir()
    write_whisper_dir("fake-whisper", data, extras[0], extras[1], extras[1:], out)
    return out


def test_tiny_conversion_loads_exactly_into_whisper_for_conditional_generation(tmp_path):
    import torch
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

    v = tiny_whisper_ct2(d=8, heads=2, ffn=16, layers=1)
    out = _convert_fake(tmp_path, ct2_bytes(v, {}))
    model, info = WhisperForConditionalGeneration.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    sd = {k: t.numpy() for k, t in model.state_dict().items()}
    assert all(t.dtype == np.float32 for t in sd.values())

    def ct2(name: str) -> np.ndarray:
        return v[name].astype(np.float32)

    qkv = ct2("encoder/layer_0/self_attention/linear_0/weight")  # (3d, d): q, k, v stacked
    np.testing.assert_array_equal(sd["model.encoder.layers.0.self_attn.q_proj.weight"], qkv[:8])
    np.testing.assert_array_equal(sd["model.encoder.layers.0.self_attn.k_proj.weight"], qkv[8:16])
    np.testing.assert_array_equal(sd["model.encoder.layers.0.self_attn.v_proj.bias"],
                                  ct2("encoder/layer_0/self_attention/linear_0/bias")[16:])
    kv = ct2("decoder/layer_0/attention/linear_1/weight")  # (2d, d): k, v stacked
    np.testing.assert_array_equal(sd["model.decoder.layers.0.encoder_attn.v_proj.weight"], kv[8:])
    np.testing.assert_array_equal(sd["model.decoder.layers.0.final_layer_norm.weight"], ct2("decoder/layer_0/ffn/layer_norm/gamma"))
    np.testing.assert_array_equal(sd["model.encoder.conv1.weight"], ct2("encoder/conv1/weight"))
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()  # tied

    cfg = model.config
    assert (cfg.d_model, cfg.encoder_layers, cfg.decoder_layers, cfg.encoder_attention_heads) == (8, 1, 1, 2)
    assert (cfg.encoder_ffn_dim, cfg.vocab_size, cfg.max_source_positions, cfg.max_target_positions) == (16, 10, 1500, 12)
    assert cfg.decoder_start_token_id == FAKE_SPECIAL["<|startoftranscript|>"]
    assert cfg.eos_token_id == cfg.pad_token_id == FAKE_SPECIAL["<|endoftext|>"]
    assert WhisperFeatureExtractor.from_pretrained(out).feature_size == 80
    assert json.loads((out / "ct2_config.json").read_text())["suppress_ids"] == [1, 2]
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "ct2_config.json", "model.safetensors",
                                                    "preprocessor_config.json", "tokenizer.json", "vocabulary.txt"]
    with torch.no_grad():  # the converted model runs end to end
        logits = model(input_features=torch.zeros(1, 80, 3000), decoder_input_ids=torch.tensor([[8]])).logits
    assert logits.shape == (1, 1, 10) and torch.isfinite(logits).all()


def test_a_model_that_is_not_whisper_is_refused(tmp_path):
    data = ct2_bytes({"x": np.ones(2, dtype=np.float32)}, {}, spec="TransformerSpec")
    with pytest.raises(UserError, match="packaged:fake-whisper: expected a WhisperSpec model, got TransformerSpec"):
        _convert_fake(tmp_path, data)


# ---------------------------------------------------------------------------------------------- real weights


def _encoders(name: str, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(HF encoder output, ctranslate2 encoder output), each (1500, d) float32."""
    import ctranslate2
    import torch
    from transformers import WhisperFeatureExtractor, WhisperModel

    hf_dir = resolve_packaged(name)
    fe = WhisperFeatureExtractor.from_pretrained(hf_dir)
    feats = fe(wave, sampling_rate=16000, return_tensors="np").input_features  # (1, 80, 3000)
    assert feats.shape == (1, 80, 3000)
    model = WhisperModel.from_pretrained(hf_dir).eval()
    with torch.no_grad():
        ours = model.encoder(torch.from_numpy(feats)).last_hidden_state[0].numpy()
    ct2 = ctranslate2.models.Whisper(str(ct2_model_dir(name)), device="cpu", compute_type="float32")
    theirs = np.array(ct2.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats)))).astype(np.float32)[0]
    return ours, theirs


@pytest.mark.slow
@pytest.mark.parametrize("name,d_model", [pytest.param("whisper-tiny.en", 384, marks=needs["whisper-tiny.en"]),
                                          pytest.param("whisper-base", 512, marks=needs["whisper-base"])])
def test_converted_encoder_matches_ctranslate2(cache, speech, name, d_model):
    pytest.importorskip("ctranslate2")
    ours, theirs = _encoders(name, speech)
    assert ours.shape == theirs.shape == (1500, d_model)
    per_frame = (ours * theirs).sum(-1) / np.linalg.norm(ours, axis=-1) / np.linalg.norm(theirs, axis=-1)
    assert per_frame.min() > 0.999
    cfg = json.loads((resolve_packaged(name) / "config.json").read_text())
    assert cfg["num_mel_bins"] == 80 and cfg["d_model"] == d_model
    assert json.loads((resolve_packaged(name) / "preprocessor_config.json").read_text())["feature_size"] == 80


@pytest.mark.slow
@needs["whisper-tiny.en"]
def test_converted_decoder_transcribes_like_ctranslate2(cache, speech):
    """Greedy decoding with the converted decoder gives ctranslate2's own token ids."""
    ctranslate2 = pytest.importorskip("ctranslate2")
    import torch
    from transformers import PreTrainedTokenizerFast, WhisperFeatureExtractor, WhisperForConditionalGeneration

    hf_dir = resolve_packaged("whisper-tiny.en")
    model = WhisperForConditionalGeneration.from_pretrained(hf_dir).eval()
    feats = WhisperFeatureExtractor.from_pretrained(hf_dir)(speech, sampling_rate=16000, return_tensors="pt").input_features
    prompt = [model.config.decoder_start_token_id, 50362]  # <|startoftranscript|><|notimestamps|> (tiny.en ids)
    ct2 = ctranslate2.models.Whisper(str(ct2_model_dir("whisper-tiny.en")), device="cpu", compute_type="float32")
    want = ct2.generate(ctranslate2.StorageView.from_array(feats.numpy()), [prompt], beam_size=1)[0].sequences_ids[0]
    ids = torch.tensor([prompt])
    with torch.no_grad():
        enc = model.model.encoder(feats)
        for _ in range(len(want) + 1):
            logits = model(encoder_outputs=enc, decoder_input_ids=ids).logits[0, -1]
            ids = torch.cat([ids, logits.argmax().view(1, 1)], dim=1)
    got = ids[0, len(prompt):].tolist()
    assert got[:-1] == want and got[-1] == model.config.eos_token_id
    text = PreTrainedTokenizerFast(tokenizer_file=str(hf_dir / "tokenizer.json")).decode(want).lower()
    assert "tomorrow afternoon" in text  # espeak is robotic; these words survive it
