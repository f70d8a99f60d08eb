"""Decode threads (emoreason.hardware.decode_threads): the engine's generations run on the set
number of torch threads, everything else and everything after keeps torch's setting, and the
answers are the same as with torch's own setting."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from emoreason.errors import UserError
from emoreason.hardware import decode_threads, decoding
from emoreason.inference.engine import Engine
from emoreason.inference.generation import generation_hooks

SR = 16_000


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from emoreason.testing.tiny import save_tiny_run

    return save_tiny_run(tmp_path_factory.mktemp("run"))


def clips() -> list[tuple[str, np.ndarray]]:
    """Three voiced-like clips of different lengths (so the batch is padded)."""
    t = np.arange(int(3.0 * SR)) / SR
    return [(f"c{k}.wav", (0.3 * np.sin(2 * np.pi * (180 + 40 * k) * t[: int((1.5 + 0.7 * k) * SR)])).astype(np.float32))
            for k in range(3)]


class _ThreadsSeen:
    """Generation hooks that record torch's thread count at every ``generate`` call."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def generate_kwargs(self, waves, rows, prefixes):  # noqa: ANN001, ANN201 (GenerationHooks)
        self.seen.append(torch.get_num_threads())
        return {}


def test_decoding_sets_and_restores_threads():
    before = torch.get_num_threads()
    with decoding():  # no decode_threads block: untouched
        assert torch.get_num_threads() == before
    with decode_threads(1):
        assert torch.get_num_threads() == before  # only decoding() blocks change it
        with decoding():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == before
        with pytest.raises(RuntimeError), decoding():
            raise RuntimeError("an error inside generate")
        assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match=">= 1"), decode_threads(0):
        pass


def test_engine_generates_on_decode_threads_with_the_same_answers(run_dir):
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # a 1-thread machine would not tell the two settings apart
    try:
        one = Engine.load(run_dir, device="cpu", decode_threads=1)
        untouched = Engine.load(run_dir, device="cpu", decode_threads=None)
        assert Engine.load(run_dir, device="cpu").decode_threads == 1  # auto on a CPU
        kwargs = dict(batch_size=3, max_new_tokens=8, transcript="model")
        hooks = _ThreadsSeen()
        with generation_hooks(hooks):
            new = one.analyze(clips(), **kwargs)
        assert hooks.seen and set(hooks.seen) == {1}  # transcripts, then the quote-constrained explanations
        assert torch.get_num_threads() == 2  # restored after the engine call
        hooks = _ThreadsSeen()
        with generation_hooks(hooks):
            old = untouched.analyze(clips(), **kwargs)
        assert set(hooks.seen) == {2}
        for a, b in zip(new, old):
            assert a.ok and b.ok
            assert (a.label, a.explanation, a.transcript.text) == (b.label, b.explanation, b.transcript.text)
            assert a.scores == pytest.approx(b.scores, abs=1e-6)
    finally:
        torch.set_num_threads(before)


def test_load_refuses_bad_decode_threads(run_dir):
    with pytest.raises(UserError, match="decode threads"):
        Engine.load(run_dir, device="cpu", decode_threads=0)


def test_serve_parts_benchmark_runs_on_the_tiny_model(run_dir, monkeypatch, capsys):
    from emoreason.testing.benchmarks import load_benchmark

    parts = load_benchmark("serve_parts")
    monkeypatch.setattr("sys.argv", ["serve_parts.py", "--model", str(run_dir), "--clips", "2", "--seconds", "1",
                                     "--max-new-tokens", "3"])
    parts.main()
    out = capsys.readouterr().out
    assert "| LLM decode step |" in out and "| forced choice (score_candidates) |" in out
    assert "decode threads 1" in out  # auto on a CPU
    assert "the same one by one and batched: 2 / 2" in out
