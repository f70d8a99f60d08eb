"""LoRA on the LLM only.

Whisper's attention projections are also called ``q_proj`` / ``k_proj`` / ``v_proj``, so name-based
targets applied to the whole AudioLLM would silently put LoRA into the encoders. We therefore wrap
only the LLM submodule with peft; the encoders never see peft at all.
"""
from __future__ import annotations

from torch import nn


def apply_lora(llm: nn.Module, r: int, alpha: int, dropout: float, target_modules: list[str]) -> nn.Module:
    """Wrap ``llm`` (a transformers causal LM) with peft LoRA; base weights become frozen.

    Returns the ``PeftModelForCausalLM``; LoRA parameter names contain ``lora_``.
    """
    import warnings

    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules),
                        task_type="CAUSAL_LM", bias="none")
    with warnings.catch_warnings():
        # peft 0.21's PeftModel.__init__ reads ``model.is_gradient_checkpointing``, an alias that
        # transformers 5.x deprecates (FutureWarning on every model build). The read is peft's, not
        # ours, so only this one message is silenced, only around this call.
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        return get_peft_model(llm, config)
