"""The AudioLLM on real packaged weights (Whisper tiny.en + SmolLM2-135M-Instruct GGUF): the real
tokenizer path (audio tokens added, embeddings grown, the model's own chat template, loss mask)
and save -> load with base weights re-read from the package, not from the save directory."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from emoreason.config import EncoderConfig, LLMConfig, LoRAConfig, ModelConfig
from emoreason.errors import UserError


def _real_config() -> ModelConfig:
    return ModelConfig(
        speech_encoder=EncoderConfig(type="whisper", path="packaged:whisper-tiny.en", dynamic_length=True),
        emotion_encoder=None,
        fusion="none",
        llm=LLMConfig(path="packaged:smollm2-135m-instruct"),
        lora=LoRAConfig(r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"]),
    )


@pytest.fixture(scope="module")
def real_model():
    from emoreason.model.builder import build_model

    try:
        torch.manual_seed(0)
        return build_model(_real_config())
    except UserError as e:  # package not installed: the message carries the pip command
        pytest.skip(str(e))


@pytest.mark.slow
def test_real_tokenizer_and_chat_template(real_model):
    model, processor = real_model
    tok = processor.tokenizer
    assert len(tok) == model.llm.get_input_embeddings().num_embeddings == 49152 + 3
    wave = (0.1 * np.random.default_rng(0).standard_normal(16_000 * 2)).astype(np.float32)
    batch = processor([wave], ["Which emotion?"], ["sad, quietly."])
    ids, labels = batch["input_ids"][0], batch["labels"][0]
    assert (ids == model.audio_token_id).sum() == 7  # 2 s -> 100 frames -> ceil(100 / 15)
    assert tok.decode(labels[labels != -100]).startswith("sad, quietly.<|im_end|>")
    assert "<|im_start|>assistant\n" in tok.decode(ids[labels == -100])
    out = model(**batch)
    assert torch.isfinite(out.loss)


@pytest.mark.slow
def test_real_save_load_identical_logits(real_model, tmp_path):
    model, processor = real_model
    with torch.no_grad():
        for name, p in model.llm.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    wave = (0.1 * np.random.default_rng(1).standard_normal(16_000)).astype(np.float32)
    from emoreason.model.builder import load_pretrained, save_pretrained

    save_pretrained(model, _real_config(), tmp_path)
    processor.save_pretrained(tmp_path)
    assert not (tmp_path / "random_base.safetensors").exists()  # base weights stay in the package

    loaded, proc2 = load_pretrained(tmp_path)
    b1, b2 = processor([wave], ["Which emotion?"]), proc2([wave], ["Which emotion?"])
    assert torch.equal(b1["input_ids"], b2["input_ids"])
    with torch.no_grad():
        assert torch.allclose(model(**b1).logits, loaded(**b2).logits, atol=1e-5)
    scores = loaded.score_candidates(b2, ["happy", "sad"])
    assert scores.shape == (1, 2)


@pytest.mark.slow
def test_loading_skips_the_random_draw_under_grown_rows():
    """``draw_new_rows=False`` (model loading) gives the same grown embedding matrix, tied to the
    output layer, without transformers' random fill (every value is overwritten anyway)."""
    from emoreason.model.builder import build_llm

    cfg = _real_config().llm
    try:
        drawn, _ = build_llm(cfg)
        skipped, tok = build_llm(cfg, draw_new_rows=False)
    except UserError as e:
        pytest.skip(str(e))
    a, b = drawn.get_input_embeddings().weight, skipped.get_input_embeddings().weight
    assert b.shape == (len(tok), 576) and torch.equal(a, b)
    assert skipped.get_output_embeddings().weight is b
