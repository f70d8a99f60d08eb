"""Grouped eager attention (emoreason.model.grouped_attention): the same logits and the same greedy
tokens as transformers' eager attention on a grouped-query model, padded batches and the KV cache
included; switched on only where it computes the same thing."""
from __future__ import annotations

import pytest
import torch

from emoreason.model.grouped_attention import GROUPED_EAGER, use_grouped_attention


def tiny_llm(attn: str, kv_heads: int = 2, model_type: str = "llama") -> torch.nn.Module:
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    config = AutoConfig.for_model(model_type, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                  num_key_value_heads=kv_heads, intermediate_size=96, vocab_size=101,
                                  max_position_embeddings=256)
    return AutoModelForCausalLM.from_config(config, attn_implementation=attn).eval()


def test_grouped_attention_gives_eager_logits_and_tokens():
    eager = tiny_llm("eager")
    grouped = tiny_llm("eager")
    grouped.load_state_dict(eager.state_dict())
    assert use_grouped_attention(grouped) and grouped.config._attn_implementation == GROUPED_EAGER
    ids = torch.randint(3, 100, (3, 12))
    mask = torch.ones_like(ids)
    mask[0, :5] = 0  # left padding
    mask[1, :2] = 0
    with torch.no_grad():
        a = eager(input_ids=ids, attention_mask=mask).logits
        b = grouped(input_ids=ids, attention_mask=mask).logits
        assert torch.allclose(a, b, atol=1e-5)
        kwargs = dict(attention_mask=mask, max_new_tokens=10, min_new_tokens=10, do_sample=False, pad_token_id=0)
        assert torch.equal(eager.generate(ids, **kwargs), grouped.generate(ids, **kwargs))  # decode steps: q_len 1


@pytest.mark.parametrize("attn, kv_heads, model_type", [("sdpa", 2, "llama"), ("eager", 4, "llama"), ("eager", 2, "gemma2")])
def test_grouped_attention_is_left_off_where_it_would_change_nothing_or_something(attn, kv_heads, model_type):
    """sdpa stays sdpa; no grouped heads: nothing to save; gemma2's eager attention soft-caps,
    which the generic form does not."""
    llm = tiny_llm(attn, kv_heads, model_type)
    assert not use_grouped_attention(llm)
    assert llm.config._attn_implementation == attn
