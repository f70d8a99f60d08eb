"""GGUF LLMs: de-quantise once into a plain transformers directory that loads in about a second."""
from __future__ import annotations

import os
from pathlib import Path


def write_llm_dir(gguf: Path, out: Path) -> None:
    """De-quantise ``gguf`` with transformers and save model (fp32 safetensors) + tokenizer to ``out``.

    transformers de-quantises GGUF on every ``from_pretrained`` (about 15-40 s for SmolLM2-135M on
    2 busy cores); the saved directory holds exactly the de-quantised weights and the same
    tokenizer and chat template.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model carries a quantizer transformers refuses to serialise: copy the
    # de-quantised weights into a plain model of the same config and save that.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.save_pretrained(str(out))
    os.chmod(out / "model.safetensors", 0o644)  # safetensors writes 0600; the cache may be shared
    tokenizer.save_pretrained(str(out))
