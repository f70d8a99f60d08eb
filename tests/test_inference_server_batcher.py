"""The batcher's per-row hooks on the tiny model, without HTTP: each job's own stream and
deadline inside one shared ``generate`` call."""
from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from emoreason.inference.engine import Engine
from emoreason.inference.generation import generation_hooks
from emoreason.inference.server.batcher import AnalyzeOptions, Job, _RowHooks

SR = 16_000


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    from emoreason.testing.tiny import save_tiny_run

    return Engine.load(save_tiny_run(tmp_path_factory.mktemp("run")), device="cpu", max_seconds=120)


def _wave(freq: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _job(wave: np.ndarray, loop: asyncio.AbstractEventLoop, deadline: float, on_text=None) -> Job:
    return Job(name="clip", wave=wave, options=AnalyzeOptions(), windows=1, deadline=deadline, loop=loop,
               future=loop.create_future(), on_text=on_text)


def test_rows_stream_to_their_own_job_and_expired_rows_stop(engine):
    loop = asyncio.new_event_loop()
    try:
        waves = [_wave(200), _wave(310)]
        plain = engine.analyze([("a", waves[0]), ("b", waves[1])], max_new_tokens=12, transcript="none")
        seen: list[str] = []
        live = _job(waves[0], loop, time.monotonic() + 600, on_text=seen.append)
        gone = _job(waves[1], loop, time.monotonic() + 600)
        gone.cancelled = True  # its caller went away: its row ends after the first step
        hooks = _RowHooks([live, gone], engine.model.tokenizer, engine.model.eos_ids(), temperature=0.0)
        with generation_hooks(hooks):
            hooked = engine.analyze([("a", waves[0]), ("b", waves[1])], max_new_tokens=12, transcript="none")
    finally:
        loop.close()
    assert hooked[0].explanation == plain[0].explanation  # the live row is untouched by its neighbour's stop
    assert hooked[0].scores == pytest.approx(plain[0].scores)
    # streamed: the text so far, growing; a split multi-byte character at the end is held back
    # (the route sends the rest with the result), so the last piece is a prefix of the whole text
    assert len(set(seen)) >= 2 and plain[0].explanation.startswith(seen[-1])
    assert all(b.startswith(a) for a, b in zip(seen, seen[1:]))
    tokenizer = engine.model.tokenizer
    n_gone = len(tokenizer(hooked[1].explanation, add_special_tokens=False)["input_ids"])
    n_plain = len(tokenizer(plain[1].explanation, add_special_tokens=False)["input_ids"])
    assert n_gone <= 1 < n_plain  # stopped at the first step instead of running its 12 tokens


def test_hooks_only_while_the_block_runs(engine):
    """Outside ``generation_hooks`` the engine generates as before (no streamer, no criteria)."""
    calls = []

    class Spy:
        def generate_kwargs(self, waves, rows):
            calls.append(list(rows))
            return {}

    with generation_hooks(Spy()):
        engine.analyze([("a", _wave(250))], max_new_tokens=3)  # transcript + constrained: two calls
    engine.analyze([("a", _wave(250))], max_new_tokens=3)
    assert calls == [[(0, "transcript")], [(0, "text")]]
