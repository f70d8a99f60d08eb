"""CTranslate2 Whisper -> a transformers ``WhisperForConditionalGeneration`` directory.

The mapping is pure (arrays in, arrays out); :func:`write_whisper_dir` adds the config, the
feature extractor and the tokenizer files. Equivalence with ctranslate2 itself is tested on the
real packaged models (``tests/test_weights_whisper_convert.py``).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from emoreason.errors import UserError
from emoreason.weights.ct2 import read_ct2

WHISPER_SPEC = "WhisperSpec"
"""The CT2 spec name of a Whisper model."""


def _split_qkv(prefix: str, w: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """CT2 fuses q, k, v along the output dim: (3d, d) -> three (d, d). transformers' k_proj has
    no bias; CT2 stores zeros there (and a key bias would cancel in the softmax anyway)."""
    d = w.shape[0] // 3
    return {
        f"{prefix}.q_proj.weight": w[:d], f"{prefix}.q_proj.bias": b[:d],
        f"{prefix}.k_proj.weight": w[d : 2 * d],
        f"{prefix}.v_proj.weight": w[2 * d :], f"{prefix}.v_proj.bias": b[2 * d :],
    }


def _split_kv(prefix: str, w: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """Cross-attention fuses k, v: (2d, d) -> two (d, d)."""
    d = w.shape[0] // 2
    return {f"{prefix}.k_proj.weight": w[:d], f"{prefix}.v_proj.weight": w[d:], f"{prefix}.v_proj.bias": b[d:]}


def _lin(dst: str, v: dict[str, np.ndarray], src: str) -> dict[str, np.ndarray]:
    return {f"{dst}.weight": v[f"{src}/weight"], f"{dst}.bias": v[f"{src}/bias"]}


def _norm(dst: str, v: dict[str, np.ndarray], src: str) -> dict[str, np.ndarray]:
    return {f"{dst}.weight": v[f"{src}/gamma"], f"{dst}.bias": v[f"{src}/beta"]}


def _num_layers(v: dict[str, np.ndarray], side: str) -> int:
    n = 0
    while f"{side}/layer_{n}/ffn/linear_0/weight" in v:
        n += 1
    return n


def _whisper_sizes(v: dict[str, np.ndarray], n_enc: int, n_dec: int) -> dict[str, Any]:
    """WhisperConfig size kwargs, read off the tensors (CT2 stores no config for them)."""
    return {
        "vocab_size": int(v["decoder/embeddings/weight"].shape[0]),
        "num_mel_bins": int(v["encoder/conv1/weight"].shape[1]),
        "d_model": int(v["encoder/conv1/weight"].shape[0]),
        "encoder_layers": n_enc,
        "decoder_layers": n_dec,
        "encoder_attention_heads": int(v["encoder/num_heads"]),
        "decoder_attention_heads": int(v["decoder/num_heads"]),
        "encoder_ffn_dim": int(v["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "decoder_ffn_dim": int(v["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "max_source_positions": int(v["encoder/position_encodings/encodings"].shape[0]),
        "max_target_positions": int(v["decoder/position_encodings/encodings"].shape[0]),
    }


def ct2_whisper_to_hf(v: dict[str, np.ndarray]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Map CT2 Whisper variables -> (WhisperConfig kwargs for the sizes, HF state dict).

    State dict keys follow ``WhisperForConditionalGeneration`` (``model.encoder.*``,
    ``model.decoder.*``; ``proj_out`` is tied to the token embedding, as in CT2's alias).
    """
    sd: dict[str, np.ndarray] = {}
    enc, dec = "model.encoder", "model.decoder"
    for i in (1, 2):
        sd |= _lin(f"{enc}.conv{i}", v, f"encoder/conv{i}")
    sd[f"{enc}.embed_positions.weight"] = v["encoder/position_encodings/encodings"]
    sd |= _norm(f"{enc}.layer_norm", v, "encoder/layer_norm")
    n_enc, n_dec = _num_layers(v, "encoder"), _num_layers(v, "decoder")
    for i in range(n_enc):
        s, d = f"encoder/layer_{i}", f"{enc}.layers.{i}"
        sa = f"{s}/self_attention"
        sd |= _split_qkv(f"{d}.self_attn", v[f"{sa}/linear_0/weight"], v[f"{sa}/linear_0/bias"])
        sd |= _lin(f"{d}.self_attn.out_proj", v, f"{sa}/linear_1")
        sd |= _norm(f"{d}.self_attn_layer_norm", v, f"{sa}/layer_norm")
        sd |= _lin(f"{d}.fc1", v, f"{s}/ffn/linear_0") | _lin(f"{d}.fc2", v, f"{s}/ffn/linear_1")
        sd |= _norm(f"{d}.final_layer_norm", v, f"{s}/ffn/layer_norm")
    sd[f"{dec}.embed_tokens.weight"] = v["decoder/embeddings/weight"]
    sd[f"{dec}.embed_positions.weight"] = v["decoder/position_encodings/encodings"]
    sd |= _norm(f"{dec}.layer_norm", v, "decoder/layer_norm")
    for i in range(n_dec):
        s, d = f"decoder/layer_{i}", f"{dec}.layers.{i}"
        sa, ca = f"{s}/self_attention", f"{s}/attention"
        sd |= _split_qkv(f"{d}.self_attn", v[f"{sa}/linear_0/weight"], v[f"{sa}/linear_0/bias"])
        sd |= _lin(f"{d}.self_attn.out_proj", v, f"{sa}/linear_1")
        sd |= _norm(f"{d}.self_attn_layer_norm", v, f"{sa}/layer_norm")
        sd |= _lin(f"{d}.encoder_attn.q_proj", v, f"{ca}/linear_0")
        sd |= _split_kv(f"{d}.encoder_attn", v[f"{ca}/linear_1/weight"], v[f"{ca}/linear_1/bias"])
        sd |= _lin(f"{d}.encoder_attn.out_proj", v, f"{ca}/linear_2")
        sd |= _norm(f"{d}.encoder_attn_layer_norm", v, f"{ca}/layer_norm")
        sd |= _lin(f"{d}.fc1", v, f"{s}/ffn/linear_0") | _lin(f"{d}.fc2", v, f"{s}/ffn/linear_1")
        sd |= _norm(f"{d}.final_layer_norm", v, f"{s}/ffn/layer_norm")
    return _whisper_sizes(v, n_enc, n_dec), sd


def special_ids(tokenizer_json: Path) -> dict[str, int]:
    """Special token ids from a Whisper ``tokenizer.json`` (they differ between .en and multilingual)."""
    added = json.loads(tokenizer_json.read_text())["added_tokens"]
    ids = {t["content"]: t["id"] for t in added}
    return {"eot": ids["<|endoftext|>"], "sot": ids["<|startoftranscript|>"], "no_timestamps": ids.get("<|notimestamps|>", -1)}


def packaged_generation_config(model_dir: Path, config: Any) -> Any:
    """A Whisper ``GenerationConfig`` for a converted directory (which has none).

    Carries what transformers' Whisper ``generate`` reads: start / end ids, suppressed tokens,
    the no-timestamps id, for multilingual models the language and task ids, and the
    cross-attention ``alignment_heads`` (word timings) when the CT2 config lists them.
    """
    from transformers import GenerationConfig

    added = json.loads((model_dir / "tokenizer.json").read_text())["added_tokens"]
    ids = {t["content"]: t["id"] for t in added}
    langs = {tok: i for tok, i in ids.items()
             if tok.startswith("<|") and tok.endswith("|>") and 2 <= len(tok) - 4 <= 3 and tok[2:-2].isalpha()
             and tok[2:-2].islower()}
    # Whisper's own rule (whisper/tokenizer.py): English-only vocabularies have 51864 entries. The
    # .en tokenizers still list the language tokens, so their presence proves nothing.
    multilingual = config.vocab_size >= 51865
    gen = GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id, eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id, bos_token_id=config.bos_token_id,
        suppress_tokens=config.suppress_tokens, begin_suppress_tokens=config.begin_suppress_tokens,
        no_timestamps_token_id=ids["<|notimestamps|>"],
        is_multilingual=multilingual,
    )
    if multilingual:
        gen.lang_to_id = langs
        gen.task_to_id = {"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]}
    ct2 = model_dir / "ct2_config.json"
    heads = json.loads(ct2.read_text()).get("alignment_heads") if ct2.is_file() else None
    if heads:  # [[layer, head], ...]: the heads whose cross-attention follows the audio (OpenAI's choice)
        gen.alignment_heads = [list(map(int, h)) for h in heads]
    return gen


def write_whisper_dir(name: str, data: bytes, ct2_config: Path, tokenizer: Path, companions: list[Path],
                      out: Path) -> None:
    """Convert the CT2 ``model.bin`` bytes into a transformers Whisper directory at ``out`` (which exists).

    ``name`` labels errors; ``ct2_config`` and ``tokenizer`` are the model's CT2 ``config.json`` and
    ``tokenizer.json``; ``companions`` (the tokenizer among them) are copied beside the model as they are.
    """
    from safetensors.numpy import save_file
    from transformers import WhisperConfig, WhisperFeatureExtractor

    spec, variables = read_ct2(data)
    if spec != WHISPER_SPEC:
        raise UserError(f"packaged:{name}: expected a WhisperSpec model, got {spec}")
    sizes, sd = ct2_whisper_to_hf(variables)
    ct2_cfg = json.loads(ct2_config.read_text())
    ids = special_ids(tokenizer)
    config = WhisperConfig(
        **sizes,
        decoder_start_token_id=ids["sot"],
        pad_token_id=ids["eot"],
        bos_token_id=ids["eot"],
        eos_token_id=ids["eot"],
        suppress_tokens=ct2_cfg.get("suppress_ids"),
        begin_suppress_tokens=ct2_cfg.get("suppress_ids_begin"),
        architectures=["WhisperForConditionalGeneration"],
        dtype="float32",
    )
    config.save_pretrained(out)
    # float32 on disk: CPU float16 kernels are slow or missing, and loading would otherwise upcast
    # every run. proj_out is tied to embed_tokens (tie_word_embeddings), so it is not stored.
    tensors = {k: np.ascontiguousarray(a, dtype=np.float32) for k, a in sd.items()}
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    os.chmod(out / "model.safetensors", 0o644)  # safetensors writes 0600; the cache may be shared
    WhisperFeatureExtractor(feature_size=sizes["num_mel_bins"]).save_pretrained(out)
    # The tokenizer comes as-is (tokenizers' own JSON); ASR through transformers can load it with
    # PreTrainedTokenizerFast(tokenizer_file=...). The CT2 files also stay usable by ctranslate2.
    for path in companions:
        shutil.copyfile(path, out / path.name)
    (out / "ct2_config.json").write_text(json.dumps(ct2_cfg))
