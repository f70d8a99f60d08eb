"""AudioLLM + processor on tiny random configs: token counts, splicing, loss mask, LoRA placement,
parameter groups, save/load, generation and candidate scoring."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from emoreason.model.builder import build_model, load_pretrained, save_pretrained
from emoreason.testing.tiny import tiny_encoder_config, tiny_model_config

SR = 16_000


def _waves(*seconds: float, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(int(s * SR))).astype(np.float32) for s in seconds]


@pytest.fixture(scope="module")
def seq_model():
    torch.manual_seed(0)
    model, processor = build_model(tiny_model_config("sequence"))
    # LoRA B starts at zero; make LoRA matter so save/load really tests it.
    with torch.no_grad():
        for name, p in model.llm.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return model, processor


@pytest.mark.parametrize(
    "fusion,dynamic,seconds,expected",
    [
        ("sequence", False, (1.0, 3.0), [110, 110]),
        ("feature", False, (1.0, 3.0), [100, 100]),
        ("none", False, (1.0, 3.0), [100, 100]),
        # 1 s: 100 mel -> 50 frames -> ceil(50/15)=4 speech, ceil(50/150)=1 emotion token.
        ("sequence", True, (1.0, 3.0), [5, 11]),
        ("feature", True, (1.0, 3.0), [4, 10]),
        ("none", True, (1.0, 31.0), [4, 100]),  # over 30 s is cut to one window
    ],
)
def test_token_counts_per_fusion(fusion, dynamic, seconds, expected):
    torch.manual_seed(0)
    model, processor = build_model(tiny_model_config(fusion, dynamic_length=dynamic))
    batch = processor(_waves(*seconds), ["Which emotion?", "Why?"], ["happy", "sad"])
    assert (batch["input_ids"] == model.audio_token_id).sum(1).tolist() == expected
    assert ("emotion_features" in batch) == (fusion != "none")
    assert ("speech_attention_mask" in batch) == dynamic
    tokens, mask = model.audio_tokens(batch["speech_features"], batch.get("emotion_features"),
                                      batch.get("speech_attention_mask"), batch.get("emotion_attention_mask"))
    assert mask.sum(1).tolist() == expected
    assert tokens.shape[-1] == model.llm.get_input_embeddings().embedding_dim
    out = model(**batch)
    assert out.logits.shape == (*batch["input_ids"].shape, len(processor.tokenizer))
    assert torch.isfinite(out.loss)


def test_full_window_shapes(seq_model):
    model, processor = seq_model
    batch = processor(_waves(2.0), ["Which emotion?"])
    assert batch["speech_features"].shape == (1, 80, 3000)
    assert batch["emotion_features"].shape == (1, 80, 3000)


def test_placeholder_mismatch_raises(seq_model):
    model, processor = seq_model
    batch = processor(_waves(1.0), ["Which emotion?"], ["happy"])
    ids = batch["input_ids"].clone()
    first = (ids[0] == model.audio_token_id).nonzero()[0, 0]
    ids[0, first] = processor.tokenizer.convert_tokens_to_ids("a")
    batch["input_ids"] = ids
    with pytest.raises(ValueError, match="audio token count mismatch"):
        model(**batch)


def test_loss_mask_covers_only_response(seq_model):
    model, processor = seq_model
    batch = processor(_waves(1.0, 2.0), ["Which emotion?", "Say more"], ["happy", "very sad indeed"])
    tok = processor.tokenizer
    for row, target in enumerate(["happy", "very sad indeed"]):
        labels = batch["labels"][row]
        kept = labels[labels != -100].tolist()
        assert tok.decode(kept) == target + "<|end|>"
        # The kept tokens are the last real tokens of the row (right padding for training).
        n_real = int(batch["attention_mask"][row].sum())
        assert batch["input_ids"][row, n_real - len(kept): n_real].tolist() == kept
        assert batch["attention_mask"][row, 0] == 1
    # Without targets: no labels, left padding.
    gen = processor(_waves(1.0, 2.0), ["Which emotion?", "Say more about it"])
    assert "labels" not in gen
    assert gen["attention_mask"][:, -1].tolist() == [1, 1]
    assert gen["attention_mask"][0, 0] == 0


def test_no_lora_inside_encoders(seq_model):
    model, _ = seq_model
    lora_names = [n for n, _ in model.named_parameters() if "lora_" in n]
    assert lora_names and all(n.startswith("llm.") for n in lora_names)
    # The encoders do have modules named like the LoRA targets: the test would catch a leak.
    enc_names = [n for n, _ in model.speech_encoder.named_modules()]
    assert any(n.endswith("q_proj") for n in enc_names)
    for enc in (model.speech_encoder, model.emotion_encoder):
        assert not any("lora_" in n for n, _ in enc.named_parameters())


def test_parameter_groups_disjoint_and_complete():
    cfg = tiny_model_config("feature")
    cfg.speech_encoder.trainable = True
    model, _ = build_model(cfg)
    groups = model.parameter_groups()
    assert set(groups) == {"fusion_adapter", "speech_encoder", "lora"}
    ids = [id(p) for ps in groups.values() for p in ps]
    assert len(ids) == len(set(ids))
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable == set(ids)
    seq, _ = build_model(tiny_model_config("sequence"))
    assert set(seq.parameter_groups()) == {"speech_adapter", "emotion_adapter", "lora"}


def test_frozen_encoders_stay_in_eval_mode(seq_model):
    model, _ = seq_model
    model.train()
    try:
        assert model.speech_adapter.training and model.llm.training
        assert not model.speech_encoder.training and not model.emotion_encoder.training
    finally:
        model.eval()


def test_fusion_is_which_adapters(seq_model):
    """The builder wires fusion as adapters in order; AudioLLM takes parts and fills placeholders
    with each adapter's tokens in that order."""
    from emoreason.model.audiollm import AudioLLM

    model, processor = seq_model
    assert list(model.encoders) == ["speech", "emotion"] and list(model.adapters) == ["speech", "emotion"]
    assert model.speech_adapter.sources == ("speech",) and model.emotion_adapter.sources == ("emotion",)
    feature, _ = build_model(tiny_model_config("feature"))
    assert list(feature.adapters) == ["fusion"] and feature.fusion_adapter.sources == ("speech", "emotion")
    batch = processor(_waves(1.0), ["q"])
    tokens, mask = model.audio_tokens(batch["speech_features"], batch["emotion_features"])
    assert tokens.shape[:2] == (1, 110) and bool(mask.all())
    swapped = AudioLLM(model.encoders, {"emotion": model.emotion_adapter, "speech": model.speech_adapter},
                       model.llm, model.tokenizer, model.audio_token_id)
    t2, _ = swapped.audio_tokens(batch["speech_features"], batch["emotion_features"])
    assert torch.equal(t2, torch.cat([tokens[:, 100:], tokens[:, :100]], dim=1))
    speech_only = AudioLLM({"speech": model.speech_encoder}, {"speech": model.speech_adapter},
                           model.llm, model.tokenizer, model.audio_token_id)
    assert torch.equal(speech_only.audio_tokens(batch["speech_features"])[0], tokens[:, :100])
    assert set(speech_only.parameter_groups()) == {"speech_adapter", "lora"}
    with pytest.raises(ValueError, match="reads encoders"):
        AudioLLM({"speech": model.speech_encoder}, {"emotion": model.emotion_adapter}, model.llm, model.tokenizer, 0)
    with pytest.raises(ValueError, match="unknown part names"):
        AudioLLM({"speech": model.speech_encoder}, {"mixer": model.speech_adapter}, model.llm, model.tokenizer, 0)


def test_save_load_identical_logits(seq_model, tmp_path):
    model, processor = seq_model
    waves, prompts = _waves(1.0, 2.5), ["Which emotion?", "Why?"]
    save_pretrained(model, tiny_model_config("sequence"), tmp_path)
    processor.save_pretrained(tmp_path)
    assert {"config.yaml", "trainable.safetensors", "random_base.safetensors", "processor_config.json"} <= {
        p.name for p in tmp_path.iterdir()}
    loaded, proc2 = load_pretrained(tmp_path)
    b1, b2 = processor(waves, prompts, ["happy", "sad"]), proc2(waves, prompts, ["happy", "sad"])
    assert torch.equal(b1["input_ids"], b2["input_ids"])
    with torch.no_grad():
        assert torch.equal(model(**b1).logits, loaded(**b2).logits)


def test_save_only_selected_groups(seq_model, tmp_path):
    from safetensors.torch import load_file

    model, _ = seq_model
    save_pretrained(model, tiny_model_config("sequence"), tmp_path, groups=["emotion_adapter"])
    keys = load_file(str(tmp_path / "trainable.safetensors")).keys()
    assert keys and all(k.startswith("emotion_adapter.") for k in keys)
    with pytest.raises(ValueError, match="unknown parameter groups"):
        save_pretrained(model, tiny_model_config("sequence"), tmp_path, groups=["nope"])


def test_score_candidates_matches_forward(seq_model):
    model, processor = seq_model
    waves, prompts = _waves(1.0, 2.0), ["Which emotion?", "Say which emotion you hear"]
    candidates = ["happy", "sad", "angry"]
    scores = model.score_candidates(processor(waves, prompts), candidates)
    assert scores.shape == (2, 3) and torch.isfinite(scores).all() and (scores < 0).all()
    # Reference: teacher-forced log-likelihood of the candidate from a training-style batch (one
    # clip at a time, right padding) must equal the batched, left-padded scoring.
    tok = processor.tokenizer
    for i in range(2):
        for j, cand in enumerate(candidates):
            batch = processor([waves[i]], [prompts[i]], [cand])
            with torch.no_grad():
                logits = model(**batch).logits[0]
            labels = batch["labels"][0]
            pos = (labels != -100).nonzero()[:, 0][: len(tok(cand, add_special_tokens=False)["input_ids"])]
            logp = torch.log_softmax(logits[pos - 1], -1).gather(-1, labels[pos][:, None]).sum()
            assert torch.allclose(scores[i, j], logp, atol=1e-4)


def test_generate_left_padding_matches_single(seq_model):
    model, processor = seq_model
    waves, prompts = _waves(1.0, 2.0), ["Which emotion?", "Tell me which emotion this speaker shows"]
    both = model.generate(processor(waves, prompts), max_new_tokens=4)
    alone = [model.generate(processor([w], [p]), max_new_tokens=4)[0] for w, p in zip(waves, prompts)]
    assert both == alone and len(both) == 2


def test_dynamic_length_independent_of_batch_padding():
    torch.manual_seed(0)
    model, processor = build_model(tiny_model_config("none", dynamic_length=True))
    short, long = _waves(1.0, 4.0)
    alone = processor([short], ["q"])
    with_neighbour = processor([short, long], ["q", "q"])
    t1, m1 = model.audio_tokens(alone["speech_features"], speech_attention_mask=alone["speech_attention_mask"])
    t2, m2 = model.audio_tokens(with_neighbour["speech_features"], speech_attention_mask=with_neighbour["speech_attention_mask"])
    assert torch.allclose(t1[0][m1[0]], t2[0][m2[0]], atol=1e-5)


def test_whisper_wrapper_equals_hf_encoder(seq_model):
    model, processor = seq_model
    mel = processor(_waves(2.0), ["q"])["speech_features"]
    enc = model.speech_encoder
    with torch.no_grad():
        ours, mask = enc(mel)
        ref = enc.encoder(mel).last_hidden_state
    assert mask is None and ours.shape == (1, 1500, 32)
    assert torch.allclose(ours, ref, atol=1e-5)


def test_hubert_emotion_encoder():
    torch.manual_seed(0)
    model, processor = build_model(tiny_model_config("sequence", emotion_type="hubert"))
    batch = processor(_waves(1.5), ["Which emotion?"], ["happy"])
    assert batch["emotion_features"].shape == (1, 480_000)
    # Normalised over the clip's own samples, zeros after it.
    assert abs(float(batch["emotion_features"][0, :24_000].std()) - 1.0) < 1e-3
    assert float(batch["emotion_features"][0, 24_000:].abs().max()) == 0.0
    frames, _ = model.emotion_encoder(batch["emotion_features"])
    assert frames.shape[1] == 1499  # conv front end; the model pads to 1500
    out = model(**batch)
    assert torch.isfinite(out.loss)


def test_size_fields_and_bad_token_count():
    from emoreason.config import ConfigError
    from emoreason.model.builder import build_encoder

    cfg = tiny_encoder_config("whisper")
    cfg.hidden_size, cfg.num_mel_bins = 48, 128
    enc, spec = build_encoder(cfg, "speech_encoder")
    assert enc.hidden_size == 48 and spec.num_mel_bins == 128
    cfg.num_tokens = 7
    with pytest.raises(ConfigError, match="must divide 1500"):
        build_encoder(cfg, "speech_encoder")


def test_overfit_label_is_ranked_first():
    """A few optimizer steps on one (clip, 'sad') pair make score_candidates prefer 'sad'."""
    torch.manual_seed(0)
    model, processor = build_model(tiny_model_config("sequence", dynamic_length=True))
    waves, prompt = _waves(1.0), ["Which emotion?"]
    candidates = ["happy", "sad", "angry"]
    params = [p for group in model.parameter_groups().values() for p in group]
    optim = torch.optim.AdamW(params, lr=2e-2)
    batch = processor(waves, prompt, ["sad"])
    model.train()
    for _ in range(40):
        loss = model(**batch).loss
        optim.zero_grad()
        loss.backward()
        optim.step()
    model.eval()
    scores = model.score_candidates(processor(waves, prompt), candidates)
    assert scores.argmax(-1).item() == 1, scores
    assert model.generate(processor(waves, prompt), max_new_tokens=5) == ["sad"]


def test_gradient_checkpointing_keeps_loss_and_grads():
    cfg = tiny_model_config("none", dynamic_length=True)
    cfg.speech_encoder.trainable = True
    torch.manual_seed(0)
    model, processor = build_model(cfg)
    batch = processor(_waves(1.0), ["q"], ["happy"])
    model.train()
    ref = model(**batch).loss
    ref.backward()
    ref_grad = model.speech_adapter.mlp[0].weight.grad.clone()
    model.zero_grad()
    model.gradient_checkpointing_enable()
    loss = model(**batch).loss
    loss.backward()
    assert torch.allclose(loss, ref) and torch.allclose(model.speech_adapter.mlp[0].weight.grad, ref_grad, atol=1e-6)
    assert model.speech_encoder.encoder.layers[0].gradient_checkpointing


def test_generation_needs_prompt_batch(seq_model):
    model, processor = seq_model
    train_batch = processor(_waves(1.0, 2.0), ["q", "a longer question"], ["happy", "sad"])
    with pytest.raises(ValueError, match="prompt batch"):
        model.score_candidates(train_batch, ["happy"])
    with pytest.raises(ValueError, match="prompt batch"):
        model.generate(train_batch, max_new_tokens=2)


def test_gemma2_llm_preset_with_size_overrides():
    """The paper's LLM family (soft-capping, sliding window, eager attention) through the same
    splice / left-padding / scoring path, at toy width via size overrides on preset:gemma-2-9b."""
    from emoreason.config import LLMConfig

    cfg = tiny_model_config("sequence", dynamic_length=True)
    cfg.llm = LLMConfig(path="preset:gemma-2-9b", init="random", hidden_size=64, num_layers=2, num_heads=2,
                        num_kv_heads=1, ffn_size=128, vocab_size=300)
    torch.manual_seed(0)
    model, processor = build_model(cfg)
    assert type(model.llm.get_base_model()).__name__ == "Gemma2ForCausalLM"
    assert model.llm.config.final_logit_softcapping == 30.0
    waves, prompts = _waves(1.0, 2.0), ["q", "a longer question"]
    assert torch.isfinite(model(**processor(waves, prompts, ["happy", "sad"])).loss)
    batch = processor(waves, prompts)
    scores = model.score_candidates(batch, ["happy", "sad"])
    alone = torch.cat([model.score_candidates(processor([w], [p]), ["happy", "sad"]) for w, p in zip(waves, prompts)])
    assert torch.allclose(scores, alone, atol=1e-4)
