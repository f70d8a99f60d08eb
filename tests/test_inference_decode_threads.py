"""Decode threads (emoreason.hardware.decode_threads): the engine's generations run on the set
number of torch threads, everything else and everything after keeps torch's setting, and the
answers are the same as with torch's own setting."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from emoreason.errors import UserError
from emoreason.hardware import TUNED, DecodeThreadTuner, decode_threads, decoding
from emoreason.inference.engine import Engine
from emoreason.inference.generation import generation_hooks
from emoreason.testing.tiny import save_tiny_run, tone_clips


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_run(tmp_path_factory.mktemp("run"))


def clips() -> list[tuple[str, np.ndarray]]:
    """Three tones of different lengths: a left-padded batch."""
    return tone_clips()


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


def test_decoding_with_tuned_threads_yields_a_tuner_and_restores_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with decode_threads(TUNED):
            with decoding() as criteria:
                assert len(criteria) == 1 and isinstance(criteria[0], DecodeThreadTuner)
                torch.set_num_threads(1)  # as the tuner does mid-loop
            assert torch.get_num_threads() == 2
        torch.set_num_threads(1)
        with decode_threads(TUNED), decoding() as criteria:
            assert criteria == []  # one thread: nothing to choose between
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("faster", [1, 2])
def test_tuner_measures_both_thread_counts_and_keeps_the_faster(faster):
    """Steps on ``faster`` threads take 1 (fake) second, on the other 3: the loop probes both,
    then runs on ``faster`` to its end, never stops a row, and the next loop starts there."""
    before = torch.get_num_threads()
    DecodeThreadTuner._chosen.clear()
    now = [0.0]
    cost = {faster: 1.0, 3 - faster: 3.0}
    ids = torch.zeros(4, 1, dtype=torch.long)
    try:
        tuner = DecodeThreadTuner(2, clock=lambda: now[0])
        assert torch.get_num_threads() == 2  # the first loop starts on torch's threads
        ran = []
        for _ in range(20):  # one call per generated token, as generate makes them
            assert not tuner(ids, None).any()
            ran.append(torch.get_num_threads())
            now[0] += cost[ran[-1]]  # the next step runs on the count set now
        assert set(ran[:9]) == {1, 2} and ran[9:] == [faster] * 11
        assert tuner.choice == faster and DecodeThreadTuner._chosen == {2: faster}
        DecodeThreadTuner(2, clock=lambda: now[0])
        assert torch.get_num_threads() == faster  # remembered
        short = DecodeThreadTuner(2, clock=lambda: now[0])
        for _ in range(3):  # shorter than the probe: no choice, the starting count kept
            short(ids, None)
        assert short.choice is None and torch.get_num_threads() == faster
    finally:
        DecodeThreadTuner._chosen.clear()
        torch.set_num_threads(before)


def test_engine_generates_on_decode_threads_with_the_same_answers(run_dir):
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # a 1-thread machine would not tell the two settings apart
    try:
        one = Engine.load(run_dir, device="cpu", decode_threads=1)
        untouched = Engine.load(run_dir, device="cpu", decode_threads=None)
        tuned = Engine.load(run_dir, device="cpu")
        assert tuned.decode_threads == TUNED  # auto on a CPU
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
        measured = tuned.analyze(clips(), **kwargs)
        assert torch.get_num_threads() == 2
        for a, b, c in zip(new, old, measured):
            assert (c.label, c.explanation, c.transcript.text) == (b.label, b.explanation, b.transcript.text)
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
    assert "decode threads tuned" in out  # auto on a CPU
    assert "the same one by one and batched: 2 / 2" in out


def test_auto_decode_threads_tunes_on_a_cpu_and_serves_on_one():
    from emoreason.hardware import auto_decode_threads

    assert auto_decode_threads("cpu") == TUNED
    assert auto_decode_threads("cpu", serving=True) == 1  # emoreason serve: the request threads keep a core
    assert auto_decode_threads("meta") is None  # not a CPU: torch's setting
