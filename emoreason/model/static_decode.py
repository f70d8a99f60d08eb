"""Decoding with a static KV cache, compiled into CUDA graphs: the fix for a launch-bound decode loop.

On a GPU, one decode step of a 9B LLM at batch 6 is ~4.5 ms of weight reads, but transformers'
eager ``generate`` issues every layer's small kernels from Python, one at a time: 54 ms a step for
the paper-scale model as served (docs/training.md, "Measured on one H200"). A static KV cache
gives every step the same shapes, so the step can be captured once as a CUDA graph and replayed
(one launch instead of thousands). transformers does this itself when ``generate`` gets
``cache_implementation="static"`` and a ``CompileConfig``: the prefill runs eagerly, the one-token
steps through ``torch.compile``; the 4-D attention masks are built outside the compiled step.

Modes (``Engine.load(decode_compile=...)``, ``--decode-compile``):

- ``off``: transformers' default dynamic cache, eager (what every CPU run uses).
- ``static``: the static cache without compiling (the reference the compiled modes must match; on
  a CPU it is slower than ``off``: every step attends over the whole reserved length, and the
  prompt runs again: 4.7-4.8 s against 4.2-4.3 s for 16 clips of the demo's detailed-dual).
- ``cudagraphs``: ``torch.compile(backend="cudagraphs")``: the step traced by dynamo and replayed as
  CUDA graphs, no kernel generation. Measured on one H200 (docs/training.md, paper-scale model as
  served, batch 6): 27.9 ms a step against 43.8 for ``off`` in the same process, the same
  explanations; its first call compiles for 30 s, and a new batch size once more (38 s). That run
  used transformers' static cache, whose sliding-window layers made every step a new CUDA graph;
  :func:`full_static_cache` fixes that (one graph for every step on CPU; not yet timed on a GPU).
- ``inductor``: ``torch.compile(mode="reduce-overhead")``, transformers' default: fused kernels and
  CUDA graphs (FACTS.md: 11 ms a step for the paper-scale LLM from plain ids, first call 109 s; not
  yet measured through this path).
- ``auto``: :data:`AUTO_ON_GPU` on a CUDA device, ``off`` elsewhere: a compile of half a minute per
  shape only pays off in a long-running server, so it is asked for (``--decode-compile``).

The reserved cache length is rounded up to :data:`CACHE_LENGTH_STEP` tokens, so calls whose
prompt and answer budget fit the same bucket (and batch size) reuse one compiled step.
"""
from __future__ import annotations

from typing import Any

DECODE_COMPILE_MODES = ("auto", "off", "static", "cudagraphs", "inductor")
"""What ``Engine.load(decode_compile=...)`` accepts."""

AUTO_ON_GPU = "off"
"""What ``auto`` means on a CUDA device (see the module docstring; docs/training.md has the runs)."""

CACHE_LENGTH_STEP = 256
"""Reserved static-cache lengths are multiples of this (fewer shapes, fewer compiles)."""

COMPILE_SETTINGS: dict[str, dict[str, Any]] = {
    "cudagraphs": {"backend": "cudagraphs", "mode": None, "fullgraph": False, "dynamic": None},
    "inductor": {"backend": "inductor", "mode": "reduce-overhead", "fullgraph": False, "dynamic": None},
}
"""``transformers.CompileConfig`` fields of each compiled mode. ``dynamic=None`` (dynamo's
automatic dynamic shapes), not ``False``: the static cache's sliding-window layers (Gemma-2) keep
the filled length as a Python int, and with ``dynamic=False`` every step was a new graph until
dynamo's recompile limit (8) sent the rest of the steps back to eager (seen on the H200: 88 ms a
step). With ``None`` that int becomes symbolic after its first change."""


def resolve_decode_compile(mode: str, device: Any) -> str:
    """The concrete mode (``off`` | ``static`` | ``cudagraphs`` | ``inductor``) of ``mode`` on
    ``device`` (a ``torch.device`` or its name). ValueError for an unknown mode, or a compiled one
    on a device without CUDA graphs (they exist on CUDA devices only)."""
    if mode not in DECODE_COMPILE_MODES:
        raise ValueError(f"unknown decode compile mode {mode!r} (expected one of {', '.join(DECODE_COMPILE_MODES)})")
    device_type = getattr(device, "type", str(device).split(":")[0])
    if mode == "auto":
        return AUTO_ON_GPU if device_type == "cuda" else "off"
    if mode in COMPILE_SETTINGS and device_type != "cuda":
        raise ValueError(f"decode compile mode {mode!r} needs a CUDA device (CUDA graphs), not {device_type}: "
                         "use off or static")
    return mode


def reserved_length(prompt_length: int, max_new_tokens: int, step: int = CACHE_LENGTH_STEP) -> int:
    """The static cache's length for a prompt of ``prompt_length`` columns and up to
    ``max_new_tokens`` new tokens: their sum rounded up to a multiple of ``step``."""
    need = prompt_length + max_new_tokens
    return -(-need // step) * step


def full_static_cache(config: Any, max_cache_len: int) -> Any | None:
    """A static cache of ``max_cache_len`` columns whose every layer is a plain ``StaticLayer``
    (its filled length a tensor), for an LLM config whose layers are full or sliding-window
    attention with no window shorter than ``max_cache_len``: then no sliding layer can slide, and a
    sliding layer's mask over the whole reserved length equals the causal one. None otherwise
    (transformers' own static cache is used).

    Why: transformers' ``StaticSlidingWindowLayer`` keeps its filled length as a Python int; a
    compiled step is specialised on it, so each step recompiled (``dynamic=False``) or ran a
    dynamic-shape graph that CUDA graphs record once per value. With plain layers every step is
    the same graph."""
    try:
        from transformers.cache_utils import Cache, StaticLayer, get_layer_types_and_kwargs
    except ImportError:  # another transformers than the one this was written against
        return None
    layer_types, layer_kwargs = get_layer_types_and_kwargs(config.get_text_config(decoder=True))
    if any(kind not in ("full_attention", "sliding_attention") for kind in layer_types):
        return None
    if any(kwargs.get("sliding_window", max_cache_len) < max_cache_len for kwargs in layer_kwargs):
        return None
    return Cache(layers=[StaticLayer(max_cache_len=max_cache_len) for _ in layer_types])


def static_generate_kwargs(mode: str, prompt_length: int, max_new_tokens: int, config: Any = None) -> dict[str, Any]:
    """The ``generate`` keywords of a concrete ``mode`` (:func:`resolve_decode_compile`) for one
    call: {} for ``off``; a static cache of :func:`reserved_length` columns (:func:`full_static_cache`
    for the LLM's ``config`` where it applies, else transformers' ``cache_implementation="static"``),
    and for the compiled modes a ``CompileConfig`` (transformers compiles the one-token steps, not
    the prefill)."""
    if mode == "off":
        return {}
    length = reserved_length(prompt_length, max_new_tokens)
    cache = full_static_cache(config, length) if config is not None else None
    kwargs: dict[str, Any] = ({"cache": cache} if cache is not None
                              else {"cache_implementation": "static", "max_cache_len": length})
    if mode == "static":
        kwargs["disable_compile"] = True  # generate would otherwise compile a static cache's steps on a GPU
        return kwargs
    from transformers import CompileConfig

    # cudagraphs: the step writes the cache in place; AOT autograd (torch's default
    # cudagraph_backend_keep_input_mutation=False) returns the new cache tensors from the graph and
    # copies them back after it, so the graph itself mutates no input and can be captured.
    kwargs["compile_config"] = CompileConfig(**COMPILE_SETTINGS[mode])
    return kwargs
