"""``POST /analyze/stream``: one clip's analysis as NDJSON events, a line per 30 s window as it finishes.

The page shows long audio filling in window by window, with a progress bar. Each window is queued
on the batcher as its own job, half a batch of them at a time (:func:`in_flight`: they share
forward passes with each other and with other requests, and still finish a few at a time); the
clip's summary is built from the windows' results the way the engine summarises a long clip
(:func:`combine_windows`). Events, one JSON object a line:

    {"event": "start", "file": "a.wav", "duration": 75.0, "windows": 3, "spans": [[0.0, 28.4], ...], "curves": {...} | null}
    {"event": "text", "text": "The speaker sounds angry. They say"}   (one-window clips: the text so far)
    {"event": "window", "index": 0, "windows": 3, "start": 0.0, "end": 30.0, "segment": {Segment}}
    ...
    {"event": "result", "result": {AnalysisResult}}          (last line on success)
    {"event": "error", "status": 504, "message": "..."}      (last line when a window failed)

Settings and audio are checked before the stream starts: a bad request gets the usual JSON error
and status (400 ...), not a stream.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from emoreason.audio import SAMPLE_RATE, load_audio, split_windows
from emoreason.inference.engine import measure_cues
from emoreason.inference.generation import consistency, stitch
from emoreason.inference.results import AnalysisResult, Quote, Segment, Transcript
from emoreason.inference.server.batcher import AnalyzeOptions, Job, QueueFull
from emoreason.inference.server.curves import clip_curves
from emoreason.inference.server.errors import APIError
from emoreason.inference.server.service import ServerContext, check_options, decode, wait_job


def window_segment(result: AnalysisResult, start: float, end: float) -> Segment:
    """A window analysed as a clip of its own -> its segment of the whole clip: quotes placed in
    the window's span, word timings shifted by the window's start (as the engine does)."""
    start, end = round(start, 3), round(end, 3)
    transcript = None
    if result.transcript is not None:
        words = [{**w, "start": round(w["start"] + start, 3), "end": round(w["end"] + start, 3)} for w in result.transcript.words]
        transcript = Transcript(result.transcript.text, result.transcript.source, words)
    quotes = [Quote(q.text, start, end, q.grounded) for q in result.quotes]
    return Segment(start=start, end=end, label=result.label, scores=result.scores, explanation=result.explanation,
                   quotes=quotes, cues=result.cues, transcript=transcript, answer=result.answer, consistent=result.consistent,
                   explanation_trimmed=result.explanation_trimmed)


def combine_windows(name: str, model: str, task: str, question: str | None, wave: np.ndarray,
                    segments: list[Segment]) -> AnalysisResult:
    """The clip's result from its windows' segments, as ``Engine`` summarises a long clip: scores
    are the duration-weighted mean, the explanation that of the window most supporting the label
    (among windows with that label when any), transcripts stitched, sqa answers one line each.
    One window: that window's result itself (no ``segments``)."""
    duration = round(wave.size / SAMPLE_RATE, 3)
    if len(segments) == 1:
        s = segments[0]
        quotes = [Quote(q.text, None, None, q.grounded) for q in s.quotes]
        return AnalysisResult(file=name, model=model, task=task, duration=duration, label=s.label, scores=s.scores,
                              explanation=s.explanation, quotes=quotes, cues=s.cues, transcript=s.transcript,
                              answer=s.answer, question=question, consistent=s.consistent,
                              explanation_trimmed=s.explanation_trimmed)
    transcript = None
    if all(s.transcript is not None for s in segments):
        transcript = Transcript(stitch([s.transcript.text for s in segments]), segments[0].transcript.source,
                                [w for s in segments for w in s.transcript.words])
    label, scores, explanation, trimmed = None, {}, "", 0
    labels = list(segments[0].scores)
    if labels:
        weights = np.array([s.end - s.start for s in segments])
        stacked = np.array([[s.scores[k] for k in labels] for s in segments])  # (W, C)
        overall = (stacked * weights[:, None]).sum(0) / weights.sum()
        best = int(np.argmax(overall))
        support = stacked[:, best] * weights
        agree = np.array([s.label == labels[best] for s in segments])
        lead = int(np.argmax(np.where(agree, support, -1.0))) if agree.any() else int(np.argmax(support))
        overall = overall / overall.sum()
        label, scores, explanation = labels[best], {k: float(v) for k, v in zip(labels, overall)}, segments[lead].explanation
        trimmed = segments[lead].explanation_trimmed
    answer = stitch([s.answer or "" for s in segments], sep="\n") if task == "sqa" else None
    return AnalysisResult(file=name, model=model, task=task, duration=duration, label=label, scores=scores,
                          explanation=explanation, quotes=[q for s in segments for q in s.quotes],
                          cues=measure_cues(wave, transcript.text if transcript else None), segments=segments,
                          transcript=transcript, answer=answer, question=question, consistent=consistency(label, explanation, task),
                          explanation_trimmed=trimmed)


async def start_stream(ctx: ServerContext, name: str, data: bytes, options: AnalyzeOptions,
                       curve_points: int = 0) -> AsyncIterator[bytes]:
    """Check and decode the upload, queue its windows; return the NDJSON byte stream.

    Raises APIError before the stream starts (bad settings or audio: 400, queue full: 429)."""
    start = time.monotonic()
    check_options(ctx, options)
    audio, _ = await asyncio.to_thread(decode, ctx, name, data, "file", options.task)
    # decode keeps a clip longer than one window encoded; the stream draws curves and cues over the
    # whole clip, so it decodes it here (already checked by decode, so this cannot fail differently)
    wave = audio if isinstance(audio, np.ndarray) else await asyncio.to_thread(
        load_audio, audio, max_seconds=ctx.limits.max_seconds)
    windows = split_windows(wave, ctx.engine.window_for(options.task), ctx.engine.window_cut)
    try:
        ctx.batcher.check_room()
    except QueueFull as e:
        raise APIError(429, str(e), code="queue_full") from None
    deadline = start + ctx.limits.request_timeout_s
    return _events(ctx, name, options, wave, windows, deadline, curve_points)


def _line(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")


def in_flight(max_batch: int) -> int:
    """Windows of one upload queued at a time: half a batch, so the windows finish (and stream out)
    a few at a time instead of all in the last engine call, and other requests keep room beside them."""
    return max(1, max_batch // 2)


async def _events(ctx: ServerContext, name: str, options: AnalyzeOptions, wave: np.ndarray,
                  windows: list[tuple[float, float, np.ndarray]], deadline: float, curve_points: int) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    jobs: list[Job] = []
    texts: asyncio.Queue[str] = asyncio.Queue()
    # One window: its text streams as it is generated (the batcher's per-row streamer). Long clips:
    # the windows' results are the stream.
    on_text = (lambda text: loop.call_soon_threadsafe(texts.put_nowait, text)) if len(windows) == 1 else None

    def submit_next() -> None:  # queue the next window (QueueFull propagates)
        i = len(jobs)
        w_start, w_end, chunk = windows[i]
        label = name if len(windows) == 1 else f"{name} [{w_start:g}-{w_end:g} s]"
        job = Job(name=label, wave=chunk, options=options, windows=1, deadline=deadline, loop=loop, future=loop.create_future(),
                  on_text=on_text)
        ctx.batcher.submit(job)
        jobs.append(job)

    try:
        try:  # the first windows start before the curves are measured
            while len(jobs) < min(len(windows), in_flight(ctx.batcher.max_batch)):
                submit_next()
        except QueueFull as e:
            yield _line({"event": "error", "status": 429, "message": str(e)})
            return
        curves = await asyncio.to_thread(clip_curves, wave, curve_points) if curve_points > 0 else None
        yield _line({"event": "start", "file": name, "duration": round(wave.size / SAMPLE_RATE, 3), "windows": len(windows),
                     "spans": [[round(s, 3), round(e, 3)] for s, e, _ in windows], "curves": curves})
        segments = []
        for i, (w_start, w_end, _) in enumerate(windows):
            try:
                while len(jobs) < min(len(windows), i + in_flight(ctx.batcher.max_batch)):
                    submit_next()
                waiter = asyncio.ensure_future(wait_job(ctx, jobs[i]))
                try:
                    while on_text is not None:  # text events until the window is done
                        getter = asyncio.ensure_future(texts.get())
                        done, _ = await asyncio.wait({waiter, getter}, return_when=asyncio.FIRST_COMPLETED)
                        if getter not in done:
                            getter.cancel()
                            break
                        yield _line({"event": "text", "text": getter.result()})
                    result, _ = await waiter
                finally:
                    if not waiter.done():  # the client went away mid-stream
                        waiter.cancel()
            except QueueFull as e:
                yield _line({"event": "error", "status": 429, "message": str(e)})
                return
            except APIError as e:
                yield _line({"event": "error", "status": e.status, "message": e.message})
                return
            segment = window_segment(result, w_start, w_end)
            segments.append(segment)
            yield _line({"event": "window", "index": i, "windows": len(windows), "start": segment.start, "end": segment.end,
                         "segment": dataclasses.asdict(segment)})
        question = options.question.strip() if options.question else None  # as the engine's plan keeps it
        result = await asyncio.to_thread(combine_windows, name, ctx.engine.name, options.task, question, wave, segments)
        yield _line({"event": "result", "result": result.to_dict()})
    finally:  # the client went away or a window failed: the remaining windows stop costing anything
        for job in jobs:
            if not job.future.done():
                job.cancelled = True
