"""Static-cache decoding (emoreason.model.static_decode): the modes resolve per device, the static
cache (eager, or compiled by dynamo) gives the dynamic cache's answers, and a static-cache engine
runs its prompts again instead of reusing a (dynamic) prompt cache."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from emoreason.errors import UserError
from emoreason.inference.engine import Engine
from emoreason.model import static_decode
from emoreason.model.static_decode import reserved_length, resolve_decode_compile, static_generate_kwargs
from emoreason.testing.tiny import save_tiny_run, tone_clips


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_run(tmp_path_factory.mktemp("run"))


def clips() -> list[tuple[str, np.ndarray]]:
    """Three tones of different lengths: a left-padded batch."""
    return tone_clips(base_hz=170.0, step_hz=50.0, seconds=1.2, step_seconds=0.8)


def test_modes_resolve_per_device():
    assert resolve_decode_compile("auto", torch.device("cpu")) == "off"
    assert resolve_decode_compile("auto", "cuda:0") == static_decode.AUTO_ON_GPU
    assert resolve_decode_compile("static", "cpu") == "static"
    assert resolve_decode_compile("cudagraphs", "cuda") == "cudagraphs"
    with pytest.raises(ValueError, match="needs a CUDA device"):
        resolve_decode_compile("inductor", "cpu")
    with pytest.raises(ValueError, match="unknown decode compile mode"):
        resolve_decode_compile("graphs", "cuda")


def test_generate_keywords_per_mode():
    assert static_generate_kwargs("off", 100, 32) == {}
    static = static_generate_kwargs("static", 100, 32)  # no config: transformers' own static cache
    assert static == {"cache_implementation": "static", "max_cache_len": 256, "disable_compile": True}
    compiled = static_generate_kwargs("cudagraphs", 300, 32)
    assert compiled["max_cache_len"] == 512 and compiled["compile_config"].backend == "cudagraphs"
    assert static_generate_kwargs("inductor", 1, 1)["compile_config"].mode == "reduce-overhead"
    assert [reserved_length(p, 32) for p in (1, 224, 225, 480)] == [256, 256, 512, 512]


def test_load_refuses_a_compiled_mode_without_cuda(run_dir):
    with pytest.raises(UserError, match="needs a CUDA device"):
        Engine.load(run_dir, device="cpu", decode_compile="cudagraphs")
    with pytest.raises(UserError, match="unknown decode compile mode"):
        Engine.load(run_dir, device="cpu", decode_compile="fast")


def _static(kwargs: dict) -> bool:
    """Whether ``generate`` got a fresh static cache (its own, or transformers' by name), no prompt cache."""
    if "cache" not in kwargs:
        return kwargs.get("cache_implementation") == "static"
    layers = kwargs["cache"].layers
    return all(type(layer).__name__ == "StaticLayer" and not layer.is_initialized for layer in layers)


def _answers(engine: Engine) -> list[tuple]:
    out = engine.analyze(clips(), batch_size=3, max_new_tokens=10, transcript="model")
    assert all(r.ok for r in out)
    return [(r.label, r.explanation, r.transcript.text, tuple(sorted(r.scores.items()))) for r in out]


def test_static_cache_gives_the_dynamic_caches_answers(run_dir, monkeypatch):
    dynamic = Engine.load(run_dir, device="cpu", decode_threads=None)
    assert dynamic.model.decode_compile == "off"
    static = Engine.load(run_dir, device="cpu", decode_threads=None, decode_compile="static")
    seen: list[bool] = []
    llm_generate = type(static.model.llm).generate

    def spy(self, *args, **kwargs):  # noqa: ANN001, ANN202
        seen.append(_static(kwargs))  # now: generate fills the cache
        return llm_generate(self, *args, **kwargs)

    monkeypatch.setattr(type(static.model.llm), "generate", spy)
    want = _answers(dynamic)
    seen.clear()
    got = _answers(static)
    assert got == want
    # Transcripts, then explanations: every generate got a static cache and no prompt cache.
    assert len(seen) >= 2
    assert all(seen)


def test_dynamo_compiled_steps_give_the_same_answers(run_dir, monkeypatch):
    """The compiled path as on a GPU (generate compiles its one-token steps), through dynamo with
    the eager backend, since CUDA graphs need CUDA: same answers as the dynamic cache."""
    from transformers import CompileConfig

    dynamic = Engine.load(run_dir, device="cpu", decode_threads=None)
    want = _answers(dynamic)
    compiled = Engine.load(run_dir, device="cpu", decode_threads=None, decode_compile="static")
    compiled.model.decode_compile = "cudagraphs"  # as Engine.load sets it on a CUDA device

    class EagerEverywhere(CompileConfig):
        _compile_all_devices = True  # transformers compiles on CPU too (its own testing switch)

    monkeypatch.setitem(static_decode.COMPILE_SETTINGS, "cudagraphs",
                        {"backend": "eager", "mode": None, "fullgraph": False, "dynamic": False})
    monkeypatch.setattr("transformers.CompileConfig", EagerEverywhere)
    torch._dynamo.reset()
    compiles_before = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    try:
        got = _answers(compiled)
    finally:
        torch._dynamo.reset()
    assert got == want
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > compiles_before  # the steps were compiled


def test_warm_up_runs_each_batch_size_once(run_dir, monkeypatch):
    engine = Engine.load(run_dir, device="cpu", decode_threads=None, decode_compile="static")
    sizes: list[int] = []
    llm_generate = type(engine.model.llm).generate

    def spy(self, *args, **kwargs):  # noqa: ANN001, ANN202
        sizes.append(kwargs["inputs_embeds"].shape[0])
        assert kwargs["max_new_tokens"] == 2 and _static(kwargs)
        return llm_generate(self, *args, **kwargs)

    monkeypatch.setattr(type(engine.model.llm), "generate", spy)
    seconds = engine.warm_up((1, 3))
    assert sizes == [1, 3] and seconds > 0  # one explanation batch per size, no transcript pass


def test_serve_warms_up_compiled_decoding_by_default():
    import argparse

    from emoreason.inference.server import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["serve", "--model", "x"])
    assert args.warm_up == "auto" and args.decode_compile == "auto"
    assert parser.parse_args(["serve", "--model", "x", "--warm-up", "on"]).warm_up == "on"


def _tiny_gemma2(sliding_window: int):
    from transformers import Gemma2Config, Gemma2ForCausalLM

    config = Gemma2Config(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
                          num_key_value_heads=2, head_dim=8, sliding_window=sliding_window, query_pre_attn_scalar=8,
                          attn_logit_softcapping=50.0, final_logit_softcapping=30.0)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    return Gemma2ForCausalLM(config).eval()


def test_sliding_window_layers_become_plain_static_layers_when_no_window_is_exceeded():
    from transformers.cache_utils import StaticLayer

    model = _tiny_gemma2(sliding_window=4096)
    cache = static_decode.full_static_cache(model.config, 512)
    assert cache is not None and len(cache.layers) == 4
    assert all(type(layer) is StaticLayer for layer in cache.layers) and not any(cache.is_sliding)
    assert static_decode.full_static_cache(_tiny_gemma2(sliding_window=128).config, 512) is None  # it would slide
    kwargs = static_generate_kwargs("cudagraphs", 300, 32, model.config)
    assert "cache_implementation" not in kwargs and kwargs["cache"].layers[0].max_cache_len == 512


def test_compiled_steps_over_plain_static_layers_are_one_graph_and_the_dynamic_caches_tokens(monkeypatch):
    """Gemma-2's sliding layers in transformers' static cache keep a Python int that a compiled step
    is specialised on (a new graph per step); over :func:`full_static_cache` every step is the same
    graph. Dynamo with the eager backend on CPU, same greedy tokens as the dynamic cache."""
    from torch._dynamo.utils import counters
    from transformers import CompileConfig

    class EagerEverywhere(CompileConfig):
        _compile_all_devices = True

    monkeypatch.setitem(static_decode.COMPILE_SETTINGS, "cudagraphs",
                        {"backend": "eager", "mode": None, "fullgraph": False, "dynamic": None})
    monkeypatch.setattr("transformers.CompileConfig", EagerEverywhere)
    model = _tiny_gemma2(sliding_window=4096)
    embeds = torch.randn(3, 20, 32)
    mask = torch.ones(3, 20, dtype=torch.long)
    mask[0, :6] = 0  # left padding
    common = dict(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=12, min_new_tokens=12, do_sample=False)
    with torch.no_grad():
        want = model.generate(**common)
        torch._dynamo.reset()
        counters.clear()
        try:
            got = model.generate(**common, **static_generate_kwargs("cudagraphs", 20, 12, model.config))
            graphs = counters["stats"]["unique_graphs"]
        finally:
            torch._dynamo.reset()
    assert torch.equal(got, want)
    assert graphs == 1, f"{graphs} graphs compiled for 11 decode steps"
