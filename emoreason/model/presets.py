"""Named architecture sizes, so paper-scale shapes can be built with random weights, no download.

Use them as ``path: preset:NAME`` together with ``init: random``; explicit size fields of the
config (``hidden_size``, ``num_layers`` ...) override the preset. Example (paper-scale shapes)::

    model:
      speech_encoder: {type: whisper, path: preset:whisper-large-v3, init: random}
      emotion_encoder: {type: emotion2vec, path: preset:emotion2vec-plus-large, init: random, num_tokens: 10}
      llm: {path: preset:gemma-2-9b, init: random, dtype: bfloat16}

An LLM built from a preset uses the built-in byte tokenizer (its ids are a subset of the preset's
vocabulary), which is all a shape/throughput measurement needs.

Each preset is ``(family, kwargs)``: kwargs go to the family's config class (transformers
``WhisperConfig`` / ``HubertConfig`` / LLM config, or our ``Emotion2vecConfig``).
"""
from __future__ import annotations

from typing import Any

from emoreason.errors import UserError

PRESET_PREFIX = "preset:"

ENCODER_PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    # Whisper encoders (FACTS: large-v3 d 1280, 32 layers, 20 heads, ffn 5120, 128 mels).
    "whisper-large-v3": ("whisper", dict(d_model=1280, encoder_layers=32, encoder_attention_heads=20, encoder_ffn_dim=5120, num_mel_bins=128)),
    "whisper-medium": ("whisper", dict(d_model=1024, encoder_layers=24, encoder_attention_heads=16, encoder_ffn_dim=4096, num_mel_bins=80)),
    "whisper-small": ("whisper", dict(d_model=768, encoder_layers=12, encoder_attention_heads=12, encoder_ffn_dim=3072, num_mel_bins=80)),
    "whisper-base": ("whisper", dict(d_model=512, encoder_layers=6, encoder_attention_heads=8, encoder_ffn_dim=2048, num_mel_bins=80)),
    "whisper-tiny": ("whisper", dict(d_model=384, encoder_layers=4, encoder_attention_heads=6, encoder_ffn_dim=1536, num_mel_bins=80)),
    "whisper-test": ("whisper", dict(d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64, num_mel_bins=80)),
    # HuBERT (FACTS: XL hidden 1280, 48 layers, 16 heads, ffn 5120).
    "hubert-xlarge": ("hubert", dict(hidden_size=1280, num_hidden_layers=48, num_attention_heads=16, intermediate_size=5120, do_stable_layer_norm=True, feat_extract_norm="layer", conv_bias=True)),
    "hubert-large": ("hubert", dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096, do_stable_layer_norm=True, feat_extract_norm="layer", conv_bias=True)),
    "hubert-base": ("hubert", dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)),
    # Narrow conv front end: a 30 s clip through 512 channels costs ~200 MB per sample on CPU.
    "hubert-test": ("hubert", dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)),
    # emotion2vec (FACTS: base D 768, plus-large D 1024; data2vec 2.0 front end).
    # Base layout (8 main + 4 prenet blocks, 12 heads) from the released config; the large layout
    # (data2vec 2.0 large: 16 main + 8 prenet, 16 heads) is our best reading; a real checkpoint's
    # config.yaml always wins when loading weights.
    "emotion2vec-plus-large": ("emotion2vec", dict(embed_dim=1024, depth=16, prenet_depth=8, num_heads=16, ffn_dim=4096)),
    "emotion2vec-plus-base": ("emotion2vec", dict(embed_dim=768, depth=8, prenet_depth=4, num_heads=12, ffn_dim=3072)),
    "emotion2vec-base": ("emotion2vec", dict(embed_dim=768, depth=8, prenet_depth=4, num_heads=12, ffn_dim=3072)),
    "emotion2vec-test": ("emotion2vec", dict(embed_dim=32, depth=2, num_heads=2, ffn_dim=64, conv_dim=16, prenet_depth=2, num_extra_tokens=10, conv_pos_layers=2, conv_pos_width=15, conv_pos_groups=4)),
}

LLM_PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    # FACTS: hidden 3584, 42 layers, 16 heads (8 KV), head_dim 256, ffn 14336, vocab 256000, soft-caps 50/30.
    "gemma-2-9b": ("gemma2", dict(hidden_size=3584, num_hidden_layers=42, num_attention_heads=16, num_key_value_heads=8, head_dim=256, intermediate_size=14336, vocab_size=256000, attn_logit_softcapping=50.0, final_logit_softcapping=30.0, sliding_window=4096)),
    "gemma-2-2b": ("gemma2", dict(hidden_size=2304, num_hidden_layers=26, num_attention_heads=8, num_key_value_heads=4, head_dim=256, intermediate_size=9216, vocab_size=256000, attn_logit_softcapping=50.0, final_logit_softcapping=30.0, sliding_window=4096)),
    "smollm2-135m": ("llama", dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, intermediate_size=1536, vocab_size=49152, tie_word_embeddings=True)),
    # The builtin:tiny LLM.
    "llama-test": ("llama", dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128, vocab_size=265, max_position_embeddings=4096, tie_word_embeddings=False)),
}


def preset_name(path: str) -> str | None:
    """``"preset:whisper-tiny"`` -> ``"whisper-tiny"``; None for any other path."""
    return path[len(PRESET_PREFIX):] if path.startswith(PRESET_PREFIX) else None


def encoder_preset(name: str, family: str) -> dict[str, Any]:
    """Config kwargs of an encoder preset; UserError on an unknown name or a family mismatch."""
    if name not in ENCODER_PRESETS:
        raise UserError(f"unknown encoder preset {name!r} (known: {', '.join(sorted(ENCODER_PRESETS))})")
    fam, kwargs = ENCODER_PRESETS[name]
    if fam != family:
        raise UserError(f"encoder preset {name!r} is a {fam} encoder, but the config says type {family}")
    return dict(kwargs)


def llm_preset(name: str) -> tuple[str, dict[str, Any]]:
    """(transformers model_type, config kwargs) of an LLM preset."""
    if name not in LLM_PRESETS:
        raise UserError(f"unknown LLM preset {name!r} (known: {', '.join(sorted(LLM_PRESETS))})")
    fam, kwargs = LLM_PRESETS[name]
    return fam, dict(kwargs)


SIZE_FIELDS: dict[str, dict[str, str]] = {
    "whisper": {"hidden_size": "d_model", "num_layers": "encoder_layers", "num_heads": "encoder_attention_heads",
                "ffn_size": "encoder_ffn_dim", "num_mel_bins": "num_mel_bins"},
    "hubert": {"hidden_size": "hidden_size", "num_layers": "num_hidden_layers", "num_heads": "num_attention_heads",
               "ffn_size": "intermediate_size"},
    "emotion2vec": {"hidden_size": "embed_dim", "num_layers": "depth", "num_heads": "num_heads", "ffn_size": "ffn_dim"},
    "llm": {"hidden_size": "hidden_size", "num_layers": "num_hidden_layers", "num_heads": "num_attention_heads",
            "num_kv_heads": "num_key_value_heads", "ffn_size": "intermediate_size", "vocab_size": "vocab_size"},
}
"""Config size field -> the family's config-class kwarg (``hubert`` also serves ``auto``)."""


def size_overrides(cfg: Any, family: str) -> dict[str, Any]:
    """The size fields set (not None) in an encoder / LLM config section, under ``family``'s names."""
    return {dst: getattr(cfg, src) for src, dst in SIZE_FIELDS[family].items() if getattr(cfg, src) is not None}

