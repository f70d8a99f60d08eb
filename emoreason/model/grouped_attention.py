"""Eager attention without copying keys and values per query head (grouped-query models, inference).

transformers' eager attention expands every key / value head to the query heads that share it
(``repeat_kv``: a copy of the whole KV cache, every layer, every decode step) before two matmuls.
Here the query heads of a group are stacked as extra rows of one matmul against their shared key
head instead: the same products and the same softmax, with no copy. For SmolLM2-135M (9 query
heads, 3 KV heads) decoding 32 held-out clips on 2 CPU cores: 11.0 -> 10.4 s on one thread and
9.7 -> 8.2 s on two (docs/inference.md, "Decode threads and grouped attention").

Used by the inference engine only (``Engine.load``): training keeps the configured attention (no
measurable gain there, and its backward sums the groups in another order, so bf16 losses would
drift from the configured path's).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

GROUPED_EAGER = "emoreason_grouped_eager"
"""The name this attention is registered under in transformers' attention and mask interfaces."""

GROUPED_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3", "phi3"})
"""Model types whose eager attention is exactly transformers' generic one (no soft-capping, no
sinks, no per-model extras), so the grouped form computes the same thing."""


def grouped_eager_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                            attention_mask: torch.Tensor | None, scaling: float, dropout: float = 0.0,
                            **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Eager attention for query (B, H, q, D) and key / value (B, KV, L, D), H a multiple of KV.

    Query head ``h`` attends with key head ``h // (H // KV)``, as ``repeat_kv`` arranges it. The
    additive mask is (B, 1, q, L) (transformers' eager mask); a mask with a head axis goes through
    the generic path. Returns the output (B, q, H, D) and the attention weights (B, H, q, L)."""
    b, heads, q, d = query.shape
    kv = key.shape[1]
    if attention_mask is not None and attention_mask.shape[1] != 1:
        from transformers.models.llama.modeling_llama import eager_attention_forward

        return eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout, **kwargs)
    group = heads // kv
    scores = torch.matmul(query.reshape(b, kv, group * q, d), key.transpose(2, 3)) * scaling  # (B, KV, G*q, L)
    length = scores.shape[-1]
    if attention_mask is not None:
        scores = (scores.view(b, kv, group, q, length) + attention_mask[:, :, None, :, :length]).view(b, kv, group * q, length)
    weights = nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    out = torch.matmul(weights, value).view(b, heads, q, d)
    return out.transpose(1, 2).contiguous(), weights.view(b, heads, q, length)


def _register() -> None:
    """Make :data:`GROUPED_EAGER` known to transformers (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(GROUPED_EAGER, grouped_eager_attention)
    AttentionMaskInterface.register(GROUPED_EAGER, eager_mask)


def use_grouped_attention(llm: Any) -> bool:
    """Switch a loaded causal LM from eager attention to :func:`grouped_eager_attention` when that
    computes the same thing (eager now, a :data:`GROUPED_MODEL_TYPES` model, fewer key / value
    heads than query heads). Returns whether it switched; anything else is left as it is."""
    config = getattr(llm, "config", None)
    if config is None or getattr(config, "_attn_implementation", None) != "eager":
        return False
    heads = getattr(config, "num_attention_heads", None)
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    if config.model_type not in GROUPED_MODEL_TYPES or not heads or kv_heads >= heads:
        return False
    _register()
    llm.set_attn_implementation(GROUPED_EAGER)
    return True
