"""Inference loading with LoRA folded into the base weights (load_pretrained(merge_lora=True)):
the same outputs as the peft-wrapped model, and a cold Engine.load that never imports peft."""
import os
import subprocess
import sys

import numpy as np
import torch

from emoreason.model.builder import build_model, load_pretrained, save_pretrained
from emoreason.testing.tiny import tiny_model_config


def _saved_run(tmp_path):
    torch.manual_seed(0)
    cfg = tiny_model_config()
    model, processor = build_model(cfg)
    with torch.no_grad():  # peft starts B at 0: make the LoRA update non-zero, as after training
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    final = tmp_path / "final"
    save_pretrained(model, cfg, final)
    processor.save_pretrained(final)
    return final


def test_merged_lora_gives_the_same_logits(tmp_path):
    final = _saved_run(tmp_path)
    wrapped, processor = load_pretrained(final)
    merged, _ = load_pretrained(final, merge_lora=True)
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    assert type(merged.llm).__module__.startswith("transformers.")
    rng = np.random.default_rng(0)
    batch = processor(waves=[(0.1 * rng.standard_normal(24000)).astype(np.float32)], prompts=["Which emotion?"])
    with torch.no_grad():
        want = wrapped(**batch).logits
        got = merged(**batch).logits
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    # the merge changed the weights (a no-op merge would also pass the comparison above if B were 0)
    q = "model.layers.0.self_attn.q_proj"
    before = dict(wrapped.named_parameters())[f"llm.base_model.model.{q}.base_layer.weight"]
    assert not torch.allclose(dict(merged.named_parameters())[f"llm.{q}.weight"], before)


def test_cold_engine_load_imports_no_peft(tmp_path):
    final = _saved_run(tmp_path)
    code = ("import sys; from emoreason.inference.engine import Engine; Engine.load(sys.argv[1]); "
            "print('peft' in sys.modules, 'accelerate.accelerator' in sys.modules)")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code, str(final)], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[0] == "False"
