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


def test_auto_decodes_on_one_thread_only_while_other_processes_are_busy(monkeypatch):
    import emoreason.hardware as hardware

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for busy, expected in ((1.5, 1), (0.6, 1), (0.1, 2), (0.0, 2), (None, 1)):  # None: unreadable -> safe
            monkeypatch.setattr(hardware, "cores_busy_elsewhere", lambda busy=busy: busy)
            with decode_threads("auto"), decoding():
                assert torch.get_num_threads() == expected, busy
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="reads /proc/stat (Linux)")
def test_cores_busy_elsewhere_counts_other_processes_not_this_one():
    import subprocess
    import sys
    import time

    from emoreason.hardware import LOAD_WINDOW_S, cores_busy_elsewhere

    def reading_after(work) -> float:
        cores_busy_elsewhere()  # start a window
        time.sleep(LOAD_WINDOW_S + 0.05) if work is None else work()
        value = cores_busy_elsewhere()
        assert value is not None
        return value

    def spin_here() -> None:
        end = time.monotonic() + LOAD_WINDOW_S + 0.2
        while time.monotonic() < end:
            pass

    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)
        elsewhere = reading_after(None)
    finally:
        spinner.kill()
        spinner.wait()
    here = reading_after(spin_here)
    assert elsewhere >= 0.6, elsewhere  # a process spinning the whole window: about one core
    assert here < elsewhere - 0.4, (here, elsewhere)  # this process's own work is not "elsewhere"


def test_engine_generates_on_decode_threads_with_the_same_answers(run_dir):
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # a 1-thread machine would not tell the two settings apart
    try:
        one = Engine.load(run_dir, device="cpu", decode_threads=1)
        untouched = Engine.load(run_dir, device="cpu", decode_threads=None)
        assert Engine.load(run_dir, device="cpu").decode_threads == "auto"  # chosen per generation on a CPU
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
    assert "decode threads auto" in out  # chosen per generation on a CPU
    assert "the same one by one and batched: 2 / 2" in out
