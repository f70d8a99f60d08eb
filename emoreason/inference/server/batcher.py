"""Batching across requests: concurrent requests share the engine's forward passes.

Every route hands its decoded clip to one :class:`Batcher` as a :class:`Job`. A background thread
takes the first waiting job, waits at most ``max_wait_s`` for more (up to ``max_batch`` windows),
and runs the gathered jobs through :meth:`Engine.analyze` together. When more requests were in
flight during the previous engine call than have arrived, it waits a little longer for them
(``max_regather_s``, see :meth:`Batcher._gather`): clients that send their next request when the
last one returns come back spread out by decoding and the network, and with a 10 ms window
alone 8 such clients, once split into two batches of 4, stay split (each half returns while the
other runs); uploads still being decoded count too. Windows of different requests
share the audio encoders, the forced-choice scoring and ``generate`` (rows of one call). Jobs
whose settings differ (task, token budget, temperature, transcript, ...) cannot share a plan, so
each group of equal settings runs as its own engine call, in arrival order; jobs that differ only
in their prompt or question share one (the engine takes one per clip).

During generation, per-row hooks (``emoreason.inference.generation.generation_hooks``) give each
job what is its own although the rows share one call:

- a streamer that decodes each streaming job's rows token by token and hands the new text to
  that job's caller (``Job.on_text``), so every caller gets its own stream;
- a stopping criterion that ends the rows of a job past its time budget or abandoned by its
  caller, so a slow request stops costing the others.

Results go back to each caller through an asyncio future (the routes await it on the event
loop, so waiting costs no worker thread). The queue is bounded: :meth:`Batcher.submit` raises
:class:`QueueFull` (the routes answer 429) when ``max_queue`` jobs are accepted and unfinished.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from emoreason.errors import UserError
from emoreason.inference.generation import RowTags, generation_hooks, join_answer
from emoreason.inference.results import AnalysisError, AnalysisResult

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """``max_queue`` requests are waiting or running already."""


@dataclass(frozen=True)
class AnalyzeOptions:
    """One request's settings; requests with equal options can share an engine call."""

    task: str = "emotion"
    prompt: str | None = None
    question: str | None = None
    max_new_tokens: int = 128
    transcript: str = "auto"
    quotes: str | None = None
    explain: str = "forced"
    quote_min_probability: float | None = None
    """None: the engine's default (``generation.QUOTE_MIN_PROBABILITY``)."""
    temperature: float = 0.0
    """0: greedy (the engine's default); > 0: sampled at this temperature."""

    def engine_kwargs(self) -> dict[str, Any]:
        return dict(task=self.task, prompt=self.prompt, question=self.question, max_new_tokens=self.max_new_tokens,
                    transcript=self.transcript, quotes=self.quotes, explain=self.explain,
                    quote_min_probability=self.quote_min_probability)


@dataclass
class Outcome:
    """What the batcher hands back: the engine's result and the batch it ran in."""

    result: AnalysisResult | AnalysisError | None
    batch_id: int = 0
    batch_requests: int = 0
    error: str | None = None
    """Set when the engine call itself failed (the route answers 500 / 400)."""
    status: int = 200


@dataclass(eq=False)
class Job:
    """One request's clip and settings, and how to reach its caller.

    ``on_text`` (optional, called from the batcher thread) receives the explanation / transcript /
    answer as decoded so far, for streaming; only for clips of one window (long clips' text is
    chosen across windows at the end)."""

    name: str
    wave: np.ndarray | bytes
    """The validated upload: (T,) float32 16 kHz for a clip of one window, else its encoded bytes
    (the engine decodes them window by window)."""
    options: AnalyzeOptions
    windows: int
    deadline: float
    """``time.monotonic()`` past which the job's rows stop generating."""
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    on_text: Callable[[str], None] | None = None
    cancelled: bool = False

    def expired(self) -> bool:
        return self.cancelled or time.monotonic() > self.deadline

    def finish(self, outcome: Outcome) -> None:
        """Hand ``outcome`` to the caller's event loop (thread-safe; a gone caller is ignored)."""
        def deliver() -> None:
            if not self.future.done():
                self.future.set_result(outcome)

        try:
            self.loop.call_soon_threadsafe(deliver)
        except RuntimeError:  # the loop is closed: the server is shutting down
            pass


class _RowHooks:
    """``generate`` extras for one engine call: per-job streamers, deadlines and sampling."""

    def __init__(self, jobs: Sequence[Job], tokenizer: Any, eos_ids: Sequence[int], temperature: float,
                 engine: Any = None):
        self.jobs, self.tokenizer, self.eos = list(jobs), tokenizer, set(eos_ids)
        self.temperature, self.engine = temperature, engine

    def _owners(self, waves: Sequence[np.ndarray]) -> list[Job | None]:
        """The job each window of the batch came from: by the source the engine says it read it
        from (``Engine.window_sources``: long uploads are decoded by the engine, so their windows
        share no memory with anything the job holds), else by being a view of the job's waveform.
        A window matched by neither just gets no streaming / deadline."""
        sources = getattr(self.engine, "window_sources", None)
        if sources is not None and len(sources) == len(waves):
            return [next((job for job in self.jobs if isinstance(src, tuple) and src[1] is job.wave), None)
                    for src in sources]
        return [next((job for job in self.jobs if isinstance(job.wave, np.ndarray) and np.may_share_memory(w, job.wave)),
                     None) for w in waves]

    def generate_kwargs(self, waves: Sequence[np.ndarray], rows: RowTags, prefixes: Sequence[str]) -> dict[str, Any]:
        from transformers import StoppingCriteriaList

        owners = self._owners(waves)
        row_jobs = [owners[window] for window, _ in rows]
        kwargs: dict[str, Any] = {"stopping_criteria": StoppingCriteriaList([_DeadlineStop(row_jobs)])}
        streamed = {r: job for r, ((_, part), job) in enumerate(zip(rows, row_jobs))
                    if part == "text" and job is not None and job.on_text is not None and job.windows == 1}
        if streamed:
            kwargs["streamer"] = _RowStreamer(self.tokenizer, self.eos, streamed, {r: prefixes[r] for r in streamed})
        if self.temperature > 0 and any(part == "text" for _, part in rows):
            kwargs.update(do_sample=True, temperature=self.temperature)
        return kwargs


class _DeadlineStop:
    """Per-row stop: rows of an expired (timed out or abandoned) job finish now; (B,) bool."""

    def __init__(self, row_jobs: Sequence[Job | None]):
        self.row_jobs = list(row_jobs)

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        done = [job is not None and job.expired() for job in self.row_jobs]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class _RowStreamer:
    """A transformers streamer (``put`` / ``end``) for a batched ``generate``: decodes the rows of
    streaming jobs and passes each job its text so far (whitespace at the ends held back, so the
    pieces add up to the final, stripped text). A row's forced prefix (the label sentence with
    ``explain="forced"``) is sent first: it is the start of the answer the caller gets."""

    def __init__(self, tokenizer: Any, eos: set[int], rows: dict[int, Job], prefixes: dict[int, str]):
        self.tokenizer, self.eos, self.rows, self.prefixes = tokenizer, eos, rows, prefixes
        self.ids: dict[int, list[int]] = {r: [] for r in rows}
        self.finished: set[int] = set()

    def put(self, value: Any) -> None:
        if value.dim() != 1:  # the prompt ((B, 0) with inputs_embeds): nothing generated yet
            return
        tokens = value.tolist()
        for row, job in self.rows.items():
            if row in self.finished:
                continue
            if tokens[row] in self.eos:
                self.finished.add(row)
                continue
            self.ids[row].append(tokens[row])
            text = join_answer(self.prefixes.get(row, ""), self.tokenizer.decode(self.ids[row], skip_special_tokens=True).strip())
            if text and not text.endswith("\ufffd"):  # a split multi-byte character: wait for the rest
                job.on_text(text)  # type: ignore[misc]

    def end(self) -> None:
        pass


@dataclass
class BatchStats:
    """Counters for /health: how many engine calls ran and how big they were."""

    runs: int = 0
    requests: int = 0
    largest: int = 0


class Batcher:
    """Gathers concurrent jobs into shared engine calls on one background thread."""

    def __init__(self, engine: Any, max_batch: int = 8, max_wait_s: float = 0.01, max_queue: int = 64,
                 max_regather_s: float = 2.0, regather_share: float = 0.25):
        if max_batch < 1 or max_queue < 1 or max_wait_s < 0 or max_regather_s < 0 or regather_share < 0:
            raise UserError("batch size and queue length must be >= 1 and the batch waits >= 0")
        self.engine, self.max_batch, self.max_wait_s, self.max_queue = engine, max_batch, max_wait_s, max_queue
        self.max_regather_s, self.regather_share = max_regather_s, regather_share
        self._peak = 0  # most requests arriving or unfinished at once during the current engine call
        self._last_peak = 0  # the same for the previous call (what the next gathering expects back)
        self._arriving = 0  # accepted and still being decoded (not submitted yet)
        self._last_call_s = 0.0  # how long the previous engine call took
        self._queue: queue.Queue[Job] = queue.Queue()
        self._lock = threading.Lock()
        self._unfinished = 0
        self._ids = itertools.count(1)
        self.stats = BatchStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def unfinished(self) -> int:
        """Jobs accepted and not finished (waiting or running)."""
        return self._unfinished

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._serve, name="emoreason-batcher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def check_room(self) -> None:
        """QueueFull when the queue is full (a cheap check before decoding an upload)."""
        if self._unfinished >= self.max_queue:
            raise QueueFull(f"{self._unfinished} requests are queued or running (limit {self.max_queue}); retry later")

    def submit(self, job: Job, arrived: bool = False) -> None:
        """Queue ``job``; its outcome arrives on ``job.future``. QueueFull when full.
        ``arrived``: the job was counted by :meth:`arriving` (use the function it yields)."""
        with self._lock:
            self.check_room()
            self._arriving -= int(arrived)  # in the same step: never counted twice, never missing
            self._unfinished += 1
            self._peak = max(self._peak, self._unfinished + self._arriving)
        self._queue.put(job)

    @contextmanager
    def arriving(self) -> Iterator[Callable[[Job], None]]:
        """Count a request while its upload is decoded, so a batch being gathered waits for it
        (see :meth:`_gather`); submit its job with the function this yields. A request that fails
        before (bad audio, full queue) stops counting when the block ends."""
        with self._lock:
            self._arriving += 1
            self._peak = max(self._peak, self._unfinished + self._arriving)
        submitted = False

        def submit(job: Job) -> None:
            nonlocal submitted
            self.submit(job, arrived=True)
            submitted = True

        try:
            yield submit
        finally:
            if not submitted:
                with self._lock:
                    self._arriving -= 1

    # ------------------------------------------------------------------ the thread
    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            jobs = self._gather(first)
            with self._lock:
                self._peak = self._unfinished + self._arriving  # counted afresh for this call
            started = time.monotonic()
            try:
                self._run(jobs)
            finally:
                self._last_call_s = time.monotonic() - started
                self._last_peak = self._peak
                with self._lock:
                    self._unfinished -= len(jobs)

    def _gather(self, first: Job) -> list[Job]:
        """``first`` and the jobs that join it (up to ``max_batch`` windows).

        What is queued comes at once; then the batcher waits up to ``max_wait_s`` for more. If fewer
        jobs have come than were in flight at once during the previous engine call (their callers
        are likely sending the next ones now), or requests are still being decoded (a burst of
        uploads), it keeps waiting for them, up to ``max_regather_s`` and at most
        ``regather_share`` of that call's duration, so the wait stays small next to the work it
        batches. With one client at a time both numbers stay at 1: no extra wait."""
        jobs, windows = [first], first.windows
        start = time.monotonic()
        regather = min(self.max_regather_s, self.regather_share * self._last_call_s)
        while windows < self.max_batch:
            expected = min(max(self._last_peak, len(jobs) + self._arriving), self.max_batch)
            until = start + (max(self.max_wait_s, regather) if len(jobs) < expected else self.max_wait_s)
            try:
                job = self._queue.get(timeout=max(0.0, until - time.monotonic()))
            except queue.Empty:
                break
            jobs.append(job)
            windows += job.windows
        return jobs

    def _run(self, jobs: list[Job]) -> None:
        live = [job for job in jobs if not job.expired()]  # a gone or timed-out caller costs nothing
        groups: dict[AnalyzeOptions, list[Job]] = {}
        for job in live:  # the prompt and question are per clip in an engine call: not part of the key
            groups.setdefault(replace(job.options, prompt=None, question=None), []).append(job)
        for options, group in groups.items():
            batch_id = next(self._ids)
            self.stats.runs += 1
            self.stats.requests += len(group)
            self.stats.largest = max(self.stats.largest, len(group))
            try:
                results = self._analyze(group, options)
            except UserError as e:  # settings are checked before queueing; kept as a safety net
                outcomes = [Outcome(None, batch_id, len(group), error=str(e), status=400)] * len(group)
            except Exception as e:  # one failed call must not take the server down: fail its jobs only
                log.exception("engine call for %d request(s) failed", len(group))
                outcomes = [Outcome(None, batch_id, len(group), error=f"internal error ({type(e).__name__})", status=500)] * len(group)
            else:
                outcomes = [Outcome(result, batch_id, len(group)) for result in results]
            for job, outcome in zip(group, outcomes):
                job.finish(outcome)

    def _analyze(self, group: list[Job], options: AnalyzeOptions) -> list[AnalysisResult | AnalysisError]:
        """One engine call for ``group`` (options equal but for each job's prompt and question),
        with its per-row generation hooks."""
        model = self.engine.model
        hooks = _RowHooks(group, model.tokenizer, model.eos_ids(), options.temperature, self.engine)
        kwargs = options.engine_kwargs()
        for name in ("prompt", "question"):
            asked = [getattr(job.options, name) for job in group]
            kwargs[name] = asked[0] if len(set(asked)) == 1 else asked
        with generation_hooks(hooks):
            return self.engine.analyze([(job.name, job.wave) for job in group], batch_size=self.max_batch, **kwargs)
