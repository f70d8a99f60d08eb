"""What the machine can do fast: the inference engine's ``auto`` dtype, training's ``auto`` precision."""
from __future__ import annotations

import functools
import os
from pathlib import Path

import torch

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


def auto_mixed_precision() -> str:
    """accelerate's ``mixed_precision`` for ``auto``: ``bf16`` on a bf16-capable GPU, or on a CPU-only
    machine whose CPU has native bf16 (a ``mini`` config step is ~1.8x faster there); else
    ``no`` (fp32). Very short CPU runs may prefer ``no``: see docs/training.md for the runs."""
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return "bf16" if cpu_has_native_bf16() else "no"
