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
        plain = engine.analyze([("a", waves[0]), ("b", waves[1])], max_new_tokens=12, transcript="none", explain="free")
        seen: list[str] = []
        live = _job(waves[0], loop, time.monotonic() + 600, on_text=seen.append)
        gone = _job(waves[1], loop, time.monotonic() + 600)
        gone.cancelled = True  # its caller went away: its row ends after the first step
        hooks = _RowHooks([live, gone], engine.model.tokenizer, engine.model.eos_ids(), temperature=0.0)
        with generation_hooks(hooks):
            hooked = engine.analyze([("a", waves[0]), ("b", waves[1])], max_new_tokens=12, transcript="none", explain="free")
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


def test_a_forced_label_sentence_is_streamed_first(engine):
    """explain="forced": the answer starts with the label sentence, which is in the prompt, not
    generated; the stream must still add up to the answer, so it sends the sentence first."""
    loop = asyncio.new_event_loop()
    try:
        wave = _wave(250)
        seen: list[str] = []
        job = _job(wave, loop, time.monotonic() + 600, on_text=seen.append)
        hooks = _RowHooks([job], engine.model.tokenizer, engine.model.eos_ids(), temperature=0.0)
        with generation_hooks(hooks):
            [result] = engine.analyze([("a", wave)], max_new_tokens=8, transcript="none", explain="forced")
    finally:
        loop.close()
    sentence = f"The speaker sounds {result.label}."
    assert result.explanation.startswith(sentence)
    assert seen and all(piece.startswith(sentence) for piece in seen)
    assert result.explanation.startswith(seen[-1])


def test_hooks_only_while_the_block_runs(engine):
    """Outside ``generation_hooks`` the engine generates as before (no streamer, no criteria)."""
    calls = []

    class Spy:
        def generate_kwargs(self, waves, rows, prefixes):
            calls.append(list(rows))
            return {}

    with generation_hooks(Spy()):
        engine.analyze([("a", _wave(250))], max_new_tokens=3)  # transcript + constrained: two calls
    engine.analyze([("a", _wave(250))], max_new_tokens=3)
    assert calls == [[(0, "transcript")], [(0, "text")]]


def _run_jobs(batcher, plan: list[tuple[float, np.ndarray]]) -> list:
    """Submit (delay before it, wave) jobs from an event loop as callers would; their outcomes."""
    async def go() -> list:
        loop = asyncio.get_running_loop()
        jobs = []
        for delay, wave in plan:
            await asyncio.sleep(delay)
            jobs.append(Job(name="clip", wave=wave, options=AnalyzeOptions(max_new_tokens=2, transcript="none"), windows=1,
                            deadline=time.monotonic() + 600, loop=loop, future=loop.create_future()))
            batcher.submit(jobs[-1])
        return [await job.future for job in jobs]

    return asyncio.run(go())


@pytest.mark.parametrize("regather", [True, False])
def test_requests_in_flight_last_time_are_waited_for(engine, regather):
    """Three clients that were in flight together come back 0.3 s apart: the batcher waits for the
    ones it saw last time (one engine call), not only its 10 ms window (three calls)."""
    from emoreason.inference.server.batcher import Batcher

    batcher = Batcher(engine, max_batch=8, max_wait_s=0.01, max_regather_s=30.0 if regather else 0.0, regather_share=100.0)
    batcher.start()
    try:
        first = _run_jobs(batcher, [(0.0, _wave(200)), (0.0, _wave(250)), (0.0, _wave(300))])
        assert len({o.batch_id for o in first}) <= 2  # arrived together (two calls at worst on a busy machine)
        again = _run_jobs(batcher, [(0.0, _wave(200)), (0.3, _wave(250)), (0.3, _wave(300))])
    finally:
        batcher.stop()
    ids = {o.batch_id for o in again}
    assert (len(ids) == 1) if regather else (len(ids) >= 2)  # 3 unless this machine stalls the batcher
    assert all(o.result is not None and o.error is None for o in again)


def test_one_client_at_a_time_is_not_held_back(engine):
    """After calls with one request in flight, a request starts at once: the next one, sent while
    it runs, is a call of its own, though the regather wait allowed would cover it."""
    from emoreason.inference.server.batcher import Batcher

    batcher = Batcher(engine, max_batch=8, max_wait_s=0.01, max_regather_s=5.0, regather_share=1.0)
    batcher.start()
    try:
        _run_jobs(batcher, [(0.0, _wave(200))])
        out = _run_jobs(batcher, [(0.0, _wave(200)), (1.0, _wave(250))])
    finally:
        batcher.stop()
    assert out[0].batch_id != out[1].batch_id and out[0].batch_requests == out[1].batch_requests == 1


def test_a_burst_still_decoding_is_waited_for(engine):
    """Three uploads arrive at once and take 0 / 0.3 / 0.6 s to decode: the batcher, counting them
    from their arrival (``Batcher.arriving``), runs them as one call; a failed decode stops counting."""
    from emoreason.inference.server.batcher import Batcher

    batcher = Batcher(engine, max_batch=8, max_wait_s=0.01, max_regather_s=30.0, regather_share=100.0)
    batcher.start()

    async def burst() -> list:
        loop = asyncio.get_running_loop()

        async def upload(delay: float, wave: np.ndarray, fail: bool = False):
            with batcher.arriving() as submit:
                await asyncio.sleep(delay)  # decoding
                if fail:
                    return None
                job = Job(name="clip", wave=wave, options=AnalyzeOptions(max_new_tokens=2, transcript="none"), windows=1,
                          deadline=time.monotonic() + 600, loop=loop, future=loop.create_future())
                submit(job)
            return await job.future

        return await asyncio.gather(upload(0.0, _wave(200)), upload(0.3, _wave(250)), upload(0.6, _wave(300)),
                                    upload(0.1, _wave(350), fail=True))

    try:
        _run_jobs(batcher, [(0.0, _wave(200))])  # a first call: its duration bounds the wait
        out = [o for o in asyncio.run(burst()) if o is not None]
    finally:
        batcher.stop()
    assert len(out) == 3 and len({o.batch_id for o in out}) == 1 and out[0].batch_requests == 3
    assert batcher._arriving == 0 and batcher.unfinished == 0


def test_requests_with_different_questions_share_an_engine_call(engine):
    """Two sqa requests with different questions (and an emotion one with its own prompt) sent
    together: one call per task, each answer the one a call of its own gives."""
    from emoreason.inference.server.batcher import Batcher

    asked = [AnalyzeOptions(task="sqa", question="Who is speaking?", max_new_tokens=3, transcript="none"),
             AnalyzeOptions(task="sqa", question="Where are they?", max_new_tokens=3, transcript="none")]
    waves = [_wave(200), _wave(300)]
    batcher = Batcher(engine, max_batch=8, max_wait_s=0.5, max_regather_s=0.0)
    batcher.start()

    async def together() -> list:
        loop = asyncio.get_running_loop()
        jobs = [Job(name=f"clip{i}", wave=w, options=o, windows=1, deadline=time.monotonic() + 600, loop=loop,
                    future=loop.create_future()) for i, (w, o) in enumerate(zip(waves, asked))]
        for job in jobs:
            batcher.submit(job)
        return [await job.future for job in jobs]

    try:
        out = asyncio.run(together())
    finally:
        batcher.stop()
    assert len({o.batch_id for o in out}) == 1 and out[0].batch_requests == 2
    for wave, options, outcome in zip(waves, asked, out):
        [alone] = engine.analyze([("clip", wave)], **options.engine_kwargs())
        assert outcome.result.to_dict()["question"] == options.question
        assert outcome.result.answer == alone.answer
