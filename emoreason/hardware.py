"""What the machine can do fast, and the one meaning of ``auto`` for dtypes and precision.

``auto`` always means :func:`auto_dtype`: bfloat16 on a device that multiplies bf16 matrices in
hardware (a CUDA GPU with bf16 support; a CPU with native bf16 instructions), float32 elsewhere.
The callers differ only in which device they ask about and what they do with the answer:

- ``train.precision: auto`` (autocast): the training device (:func:`auto_mixed_precision`).
- ``model.llm.dtype: auto`` (the dtype the builder creates LLM and frozen-encoder weights in,
  :func:`resolve_dtype` with no device): the GPU when there is one; on a CPU-only machine float32
  whatever the CPU, because training there keeps fp32 master weights under autocast.
- ``Engine.load(dtype="auto")``: the inference device. On a GPU the builder has applied the rule
  already; on a CPU the engine casts the (fp32-built) weights to bf16 when the rule says so.

The test suite pins ``EMOREASON_CPU_BF16=0`` so that every answer is the same on every CPU.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import torch

from emoreason.config import ConfigError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
"""dtype names accepted wherever a dtype is configured (besides ``auto``)."""

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""x86 CPU flags of hardware bf16 matrix instructions (AMD Zen 4+, Intel Cooper Lake / Sapphire
Rapids+). Without them oneDNN emulates bf16 and autocast is slower than fp32."""


@functools.lru_cache(maxsize=None)
def cpu_has_native_bf16() -> bool:
    """True when the CPU multiplies bf16 matrices in hardware.

    ``EMOREASON_CPU_BF16=0|1`` overrides the detection (e.g. to compare fp32 and bf16 runs).
    Reads ``/proc/cpuinfo``; elsewhere (macOS, Windows) it answers False: fp32 is the safe default.
    """
    forced = os.environ.get("EMOREASON_CPU_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return any(f in flags for f in NATIVE_BF16_FLAGS)
    return False


def default_device() -> torch.device:
    """cuda when a GPU is visible, else cpu."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def auto_dtype(device: str | torch.device) -> torch.dtype:
    """The rule behind every ``auto``: bfloat16 where ``device`` multiplies bf16 in hardware (a
    CUDA GPU that supports it, or a CPU per :func:`cpu_has_native_bf16`), else float32."""
    kind = torch.device(device).type
    if kind == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if kind == "cpu":
        return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    return torch.float32  # mps and others: no measured reason to prefer bf16


def resolve_dtype(name: str, device: str | torch.device | None = None) -> torch.dtype:
    """``float32`` | ``bfloat16`` | ``float16`` -> that dtype; ``auto`` -> :func:`auto_dtype` of
    ``device``. ``device=None`` asks for weights built before their device is known (the
    builder): the GPU's answer when there is one, else float32 (see the module docstring)."""
    if name == "auto":
        if device is None:
            return auto_dtype("cuda") if torch.cuda.is_available() else torch.float32
        return auto_dtype(device)
    try:
        return DTYPES[name]
    except KeyError:
        raise ConfigError(f"unknown dtype {name!r} (expected auto or one of {', '.join(DTYPES)})") from None


def auto_mixed_precision() -> str:
    """accelerate's ``mixed_precision`` for ``auto``: ``bf16`` when :func:`auto_dtype` of the training
    device (GPU if any, else CPU) is bf16 (a ``mini`` config step is ~1.8x faster on a CPU with
    native bf16), else ``no`` (fp32). Very short CPU runs may prefer ``no``: see docs/training.md."""
    return "bf16" if auto_dtype(default_device()) == torch.bfloat16 else "no"
