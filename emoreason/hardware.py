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

Threads of the token-by-token decode loops (:func:`decode_threads`, :func:`decoding`): on a CPU
the engine measures them (:data:`TUNED`, :class:`DecodeThreadTuner`). A decode step multiplies a
few rows (one per clip of the batch) by every weight matrix; torch splits such a small GEMM over
its threads and waits for all of them at the end of every op, so when the cores are shared
(another process on one of them) each op waits for a thread that is not running: measured on
this 2-core machine under load, a (8, 576) x (576, 1536) fp32 matmul takes 16 ms on 2 threads and
1.4 ms on 1 (docs/inference.md, "Where a request's time goes"). On idle cores the same loops are
15-25 % faster on two threads. Which case holds changes from minute to minute, so each loop
times its first steps on both counts and keeps the faster.
"""
from __future__ import annotations

import functools
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

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


def inference_dtype(name: str, device: str | torch.device) -> torch.dtype | None:
    """The dtype an inference engine casts a loaded model to, or None to keep it as built.

    ``name``: ``float32`` | ``bfloat16`` | ``float16`` force that dtype; ``auto`` -> :func:`auto_dtype`
    of ``device`` when that is not float32. Weights are built for training: on a GPU the LLM in its
    configured dtype beside fp32 encoders and adapters (fp32 master weights), on a CPU all fp32, so
    without the cast a GPU runs both encoders as fp32 GEMMs (the paper-scale check on an H200:
    ~0.5 s of a 6-clip analyze's 1.5 s GPU time, benchmarks/paper_scale.py --profile)."""
    if name != "auto":
        return resolve_dtype(name)
    dtype = auto_dtype(device)
    return None if dtype == torch.float32 else dtype


def auto_mixed_precision() -> str:
    """accelerate's ``mixed_precision`` for ``auto``: ``bf16`` when :func:`auto_dtype` of the training
    device (GPU if any, else CPU) is bf16 (a ``mini`` config step is ~1.8x faster on a CPU with
    native bf16), else ``no`` (fp32). Very short CPU runs may prefer ``no``: see docs/training.md."""
    return "bf16" if auto_dtype(default_device()) == torch.bfloat16 else "no"


TUNED = "tuned"
"""A :func:`decode_threads` value: each decode loop measures its steps on torch's threads and on
one (:class:`DecodeThreadTuner`) and runs the rest of the loop on the faster."""

_DECODE_THREADS: ContextVar[int | str | None] = ContextVar("emoreason_decode_threads", default=None)


def auto_decode_threads(device: str | torch.device, serving: bool = False) -> int | str | None:
    """The ``auto`` decode threads of ``device``: on a CPU :data:`TUNED` (see the module
    docstring), or 1 for a server (``serving``): its request threads read uploads and decode
    audio while a batch decodes, and with both cores decoding they fall behind, so the next batch
    starts smaller (measured: docs/inference.md, "Decode threads and grouped attention"); None
    (torch's own setting, untouched) elsewhere."""
    if torch.device(device).type != "cpu":
        return None
    return 1 if serving else TUNED


@contextmanager
def decode_threads(threads: int | str | None) -> Iterator[None]:
    """Until the block ends, :func:`decoding` blocks in this thread (and context) run torch on
    ``threads`` intra-op threads, or on the faster of torch's and one with :data:`TUNED`; None:
    torch's setting as it is."""
    if threads != TUNED and threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"decode threads must be >= 1, {TUNED!r} or None, got {threads!r}")
    token = _DECODE_THREADS.set(threads)
    try:
        yield
    finally:
        _DECODE_THREADS.reset(token)


class DecodeThreadTuner:
    """A ``generate`` stopping criterion that stops nothing: it times the decode steps of its loop
    on two thread counts and keeps the faster for the rest of the loop.

    The loop starts on the count the last tuned loop of this process chose (at first torch's
    ``threads``); after the first step (the prompt's forward) each count runs ``settle`` untimed
    steps and then ``probe`` timed ones, the median decides, and the choice is remembered for
    the next loop. Loops shorter than the probe keep the starting count. Both counts are
    measured again in every loop because the load changes: on an idle 2-core machine two threads
    decode the demo's batches ~15-25 % faster than one, while another busy process makes them
    ~40-60 % slower (docs/inference.md, "Decode threads and grouped attention").
    """

    _chosen: dict[int, int] = {}
    """Per torch thread setting, the count the last finished probe chose (process-wide)."""

    def __init__(self, threads: int, probe: int = 3, settle: int = 1, clock: Any = None):
        self.threads, self.probe, self.settle = threads, probe, settle
        self.clock = clock or time.perf_counter
        start = self._chosen.get(threads, threads)
        self.order = (start, 1 if start != 1 else threads)
        self.times: dict[int, list[float]] = {n: [] for n in self.order}
        self.seen = {n: 0 for n in self.order}
        self.choice: int | None = None
        self.last: float | None = None
        torch.set_num_threads(start)

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        if self.choice is None:
            self._measure()
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    def _measure(self) -> None:
        now = self.clock()
        current = torch.get_num_threads()
        if self.last is not None and current in self.seen:  # the step that just ended ran on ``current``
            self.seen[current] += 1
            if self.seen[current] > self.settle:
                self.times[current].append(now - self.last)
        first, second = self.order
        if len(self.times[second]) >= self.probe:
            self.choice = min(self.order, key=lambda n: sorted(self.times[n])[len(self.times[n]) // 2])
            self._chosen[self.threads] = self.choice
            torch.set_num_threads(self.choice)
        elif len(self.times[first]) >= self.probe and current != second:
            torch.set_num_threads(second)
        self.last = self.clock()


@contextmanager
def decoding() -> Iterator[list[Any]]:
    """Around a token-by-token ``generate`` call: torch's intra-op threads set to the current
    :func:`decode_threads` (restored afterwards); nothing changes outside such a block. Yields the
    stopping criteria the call must pass to ``generate`` (:func:`with_stopping_criteria`): a
    :class:`DecodeThreadTuner` with :data:`TUNED` on a machine with more than one thread, else none.

    ``torch.set_num_threads`` is process-wide: callers hold the engine's model lock, so no other
    forward runs meanwhile."""
    threads = _DECODE_THREADS.get()
    before = torch.get_num_threads()
    if threads is None or threads == before or (threads == TUNED and before < 2):
        yield []
        return
    try:
        if threads == TUNED:
            yield [DecodeThreadTuner(before)]
        else:
            torch.set_num_threads(threads)
            yield []
    finally:
        torch.set_num_threads(before)


def with_stopping_criteria(kwargs: dict[str, Any], criteria: list[Any]) -> dict[str, Any]:
    """``generate`` keyword arguments ``kwargs`` with ``criteria`` added to its stopping criteria
    (those already there kept first)."""
    if not criteria:
        return kwargs
    from transformers import StoppingCriteriaList

    return {**kwargs, "stopping_criteria": StoppingCriteriaList([*kwargs.get("stopping_criteria", []), *criteria])}
