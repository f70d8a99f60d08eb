"""What every route does with a clip: check the settings, decode the audio, queue it for the
batcher and wait for the outcome within the request's time budget."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from emoreason.audio import SAMPLE_RATE, AudioError, stream_audio, stream_windows
from emoreason.errors import UserError
from emoreason.inference.generation import make_plan
from emoreason.inference.results import AnalysisError, AnalysisResult
from emoreason.inference.server.batcher import AnalyzeOptions, Batcher, Job, Outcome, QueueFull
from emoreason.inference.server.errors import APIError
from emoreason.inference.server.limits import ServerLimits


@dataclass
class ServerContext:
    """What the routes share: the engine, its batcher, the limits and the served model's id."""

    engine: Any
    batcher: Batcher
    limits: ServerLimits
    model_id: str
    default_max_new_tokens: int = 128
    created: int = 0
    """Unix time the server started (``/v1/models``' ``created``)."""

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` under the model's tokenizer (the ``usage`` numbers)."""
        return len(self.engine.model.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0


def check_text(ctx: ServerContext, field: str, value: str | None) -> None:
    """400 for a prompt / question / instruction over the length limit (refused before any audio is read)."""
    if value and len(value) > ctx.limits.max_text_chars:
        raise APIError(400, f"{field} is {len(value)} characters long; at most {ctx.limits.max_text_chars} are accepted", field,
                       "text_too_long")


def check_options(ctx: ServerContext, options: AnalyzeOptions) -> None:
    """400 (one line) for settings the engine would refuse: checked before the upload is decoded."""
    if not 0 <= options.max_new_tokens <= ctx.limits.max_new_tokens:
        raise APIError(400, f"max_new_tokens must be in [0, {ctx.limits.max_new_tokens}], got {options.max_new_tokens}",
                       "max_new_tokens")
    if not 0.0 <= options.temperature <= 2.0:
        raise APIError(400, f"temperature must be in [0, 2], got {options.temperature}", "temperature")
    try:
        make_plan(options.task, ctx.engine.labels(options.task), options.prompt, options.question, options.max_new_tokens,
                  options.transcript, options.quotes, options.explain, whisper=ctx.engine.has_whisper)
    except UserError as e:
        raise APIError(400, str(e)) from None


def decode(ctx: ServerContext, name: str, data: bytes, param: str = "file",
           task: str = "emotion") -> tuple[np.ndarray | bytes, int]:
    """Check an upload -> (what the engine is given, its number of windows for ``task``:
    ``Engine.window_for``); 400 naming the upload when it is empty, unreadable, too long or has bad samples.

    The upload is decoded one block at a time and checked as it streams by: a clip of one window
    is kept as its (T,) float32 16 kHz waveform (not decoded twice); a longer one stays encoded
    and the engine decodes it again window by window, so a request holds its upload plus one
    batch of windows, never the whole decoded clip (a 1-hour upload would be 230 MB as float32)."""
    if not data:
        raise APIError(400, f"{name}: file is empty (0 bytes)", param, "empty_audio")
    window = ctx.engine.window_for(task)
    kept: list[np.ndarray] = []  # the blocks, while they may still be one window's clip
    samples = 0

    def blocks() -> Iterator[np.ndarray]:
        nonlocal kept, samples
        for block in stream_audio(data, max_seconds=ctx.limits.max_seconds):
            samples += block.size
            # one window plus a sliver it drops (audio.split_windows) may still be one window
            kept = kept + [block] if samples <= (window + 1) * SAMPLE_RATE else []
            yield block

    try:
        windows = sum(1 for _ in stream_windows(blocks(), window, ctx.engine.window_cut))  # where the engine will cut, counted
    except AudioError as e:
        # stream_audio names encoded bytes "<bytes>"; say which upload it was instead
        raise APIError(400, str(e).replace("<bytes>", name), param, "invalid_audio") from None
    if windows == 1:
        return np.concatenate(kept), 1
    return data, windows


async def submit_clip(ctx: ServerContext, name: str, data: bytes, options: AnalyzeOptions, param: str = "file",
                      on_text: Callable[[str], None] | None = None) -> Job:
    """Check the settings, decode ``data`` off the event loop and queue it for the batcher.

    Raises APIError: 400 bad settings or audio, 429 queue full. Await the job with :func:`wait_job`."""
    start = time.monotonic()
    check_options(ctx, options)
    try:
        ctx.batcher.check_room()  # refuse before spending a thread on decoding
    except QueueFull as e:
        raise APIError(429, str(e), code="queue_full") from None
    # Counted as arriving while it decodes: a batch being gathered waits for it (burst of uploads).
    with ctx.batcher.arriving() as submit:
        audio, windows = await asyncio.to_thread(decode, ctx, name, data, param, options.task)
        loop = asyncio.get_running_loop()
        job = Job(name=name, wave=audio, options=options, windows=windows,
                  deadline=start + ctx.limits.request_timeout_s, loop=loop, future=loop.create_future(), on_text=on_text)
        try:
            submit(job)
        except QueueFull as e:
            raise APIError(429, str(e), code="queue_full") from None
    return job


async def wait_job(ctx: ServerContext, job: Job, param: str = "file") -> tuple[AnalysisResult, Outcome]:
    """The result of a queued job. Raises APIError: 400 when the engine refused the clip, 504 over
    the time budget (the job's rows then stop generating, as they do when the caller goes away)."""
    try:
        outcome: Outcome = await asyncio.wait_for(asyncio.shield(job.future), timeout=max(0.0, job.deadline - time.monotonic()))
    except TimeoutError:
        job.cancelled = True
        raise APIError(504, f"{job.name}: not finished within the {ctx.limits.request_timeout_s:g} s request budget",
                       code="request_timeout") from None
    except asyncio.CancelledError:  # the client went away: its rows stop generating
        job.cancelled = True
        raise
    if outcome.error is not None:
        raise APIError(outcome.status, outcome.error)
    if isinstance(outcome.result, AnalysisError) or outcome.result is None:
        raise APIError(400, outcome.result.error if outcome.result else f"{job.name}: no result", param, "invalid_audio")
    return outcome.result, outcome


async def analyze_clip(ctx: ServerContext, name: str, data: bytes, options: AnalyzeOptions,
                       param: str = "file") -> tuple[AnalysisResult, Outcome]:
    """:func:`submit_clip` then :func:`wait_job`: the whole request."""
    return await wait_job(ctx, await submit_clip(ctx, name, data, options, param), param)


def batch_header(outcome: Outcome) -> dict[str, str]:
    """``X-Emoreason-Batch: ID;requests=N``: which engine call served the request, shared by how many."""
    return {"x-emoreason-batch": f"{outcome.batch_id};requests={outcome.batch_requests}"}
