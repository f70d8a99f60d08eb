"""The FastAPI app: ``/analyze``, ``/health``, the page at ``/``, the OpenAI-compatible ``/v1``
routes, ``/docs``; every request goes through one :class:`Batcher` (``emoreason.inference.server``)."""
# No `from __future__ import annotations` here: FastAPI reads the endpoint annotations at runtime,
# and UploadFile is imported inside create_app (keeps `--help` fast), so they must be real objects.
import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

from emoreason.inference.server.batcher import AnalyzeOptions, Batcher
from emoreason.inference.server.errors import APIError, install_error_handlers, openapi_error_responses
from emoreason.inference.server.idle import Activity, ActivityTracker
from emoreason.inference.server.limits import APIKeyGuard, BodyLimit, ServerLimits
from emoreason.inference.server.service import ServerContext, batch_header, check_text, submit_clip, wait_job

MAX_UPLOAD_BYTES = 200 * 1024 * 1024
"""Bigger request bodies are refused while they stream in (413)."""
SERVER_MAX_SECONDS = 3600.0
"""Default longest clip the server accepts (the CLI allows longer with --max-seconds)."""


def served_model_id(name: str) -> str:
    """The model id clients send as ``model``: the run directory's name (``runs/x/final`` -> ``x``)."""
    path = Path(name.rstrip("/"))
    return (path.parent.name if path.name == "final" else path.name) or "emoreason"


def create_app(engine: Any, max_new_tokens: int = 128, batch_size: int = 8, max_upload_bytes: int = MAX_UPLOAD_BYTES,
               limits: ServerLimits | None = None, model_id: str | None = None) -> Any:
    """A FastAPI app serving ``engine`` (an :class:`emoreason.inference.engine.Engine`).

    ``limits`` bounds requests and the queue (default: ``ServerLimits`` with ``batch_size``,
    ``max_upload_bytes`` and the engine's ``max_seconds``); ``model_id``: what ``/v1/models``
    lists and ``model`` must say (default: the run directory's name)."""
    from fastapi import Depends, FastAPI, File, Form, UploadFile
    from fastapi.middleware.cors import CORSMiddleware
    from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse

    from emoreason.inference.engine import TASKS
    from emoreason.inference.server.docs import render_docs
    from emoreason.inference.server.curves import MAX_POINTS, clip_curves
    from emoreason.inference.server.openai_api import add_openai_routes
    from emoreason.inference.server.page import add_page_routes
    from emoreason.inference.server.stream import start_stream

    limits = limits or ServerLimits(max_body_bytes=max_upload_bytes, max_seconds=engine.max_seconds, max_batch=batch_size)
    batcher = Batcher(engine, max_batch=limits.max_batch, max_wait_s=limits.max_wait_s, max_queue=limits.max_queue,
                      max_regather_s=limits.max_regather_s)
    ctx = ServerContext(engine, batcher, limits, model_id or served_model_id(engine.name), max_new_tokens, int(time.time()))

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        batcher.start()
        yield
        batcher.stop()

    # Form parsing stops at the first text field over the prompt limit (UTF-8: up to 4 bytes a
    # character) instead of Starlette's 1 MB: a huge field costs the event loop next to nothing.
    form_limits = {"max_part_size": 4 * limits.max_text_chars + 1024, "max_fields": 32, "max_files": 1}
    app = FastAPI(title="emoreason", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None, form_limits=form_limits,
                  description="Speech emotion reasoning: label, scores, explanation, quotes. OpenAI-compatible routes under /v1.")
    app.state.context = ctx
    install_error_handlers(app)
    # Added innermost first (the last added runs first): requests the guards refuse are not work
    # for ``serve --idle-exit``; outermost, CORS answers preflights, then the key is checked before
    # any body is read, then the body is counted while it streams in.
    app.state.activity = Activity()
    app.add_middleware(ActivityTracker, activity=app.state.activity)
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    if limits.api_key:
        app.add_middleware(APIKeyGuard, api_key=limits.api_key)
    if limits.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(limits.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["authorization", "content-type", "x-api-key"])
    errors = openapi_error_responses()
    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs() -> str:
        return render_docs(app.openapi())

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """The loaded model, each task's labels, the Whisper transcript's source (None: none), the
        quote check's Whisper (None: none), how the decode steps run (``decode_compile``), and the
        queue."""
        return {"status": "ok", "model": engine.name, "model_id": ctx.model_id, "tasks": {t: engine.labels(t) for t in TASKS},
                "whisper_transcript": engine.whisper_source if engine.has_whisper else None,
                "quote_check": engine.quote_check,
                "transcript_language": getattr(engine, "transcript_language", "en"),
                "decode_compile": getattr(engine.model, "decode_compile", "off"),
                "queue": {"unfinished": batcher.unfinished, "limit": limits.max_queue},
                "batches": {"runs": batcher.stats.runs, "requests": batcher.stats.requests, "largest": batcher.stats.largest}}

    async def analyze_form(
        task: str = Form("emotion", max_length=32, description="emotion | sentiment | asr | sqa"),
        max_new_tokens: int = Form(max_new_tokens),
        prompt: str = Form("", description="the instruction (default: the task's trained one)"),
        question: str = Form("", description="sqa: the question asked about the clip"),
        transcript: str = Form("auto", max_length=32, description="auto | model | whisper | none: where the transcript comes from "
                               "(auto: the speech encoder's Whisper decoder when it has one, else the model's ASR task)"),
        quotes: str = Form("", max_length=32, description="constrained: quotes only from the transcript; free: unconstrained; "
                           "empty: constrained when there is a transcript"),
        explain: str = Form("forced", max_length=32, description="forced: the explanation continues the forced-choice label's "
                            "sentence; free: generated freely (may disagree, see 'consistent')"),
        quote_min_probability: float | None = Form(None, description="0-1: constrained quotes may not hold a "
                                                   "transcript word the Whisper transcriber gave a lower probability "
                                                   "(0: any word; empty: the engine's default)"),
    ) -> AnalyzeOptions:
        """The analysis settings both /analyze routes take (checked before the upload is decoded)."""
        if task not in TASKS:
            raise APIError(400, f"unknown task {task!r} (expected one of {list(TASKS)})", "task")
        check_text(ctx, "prompt", prompt)
        check_text(ctx, "question", question)
        return AnalyzeOptions(task=task, prompt=prompt or None, question=question or None, max_new_tokens=max_new_tokens,
                              transcript=transcript, quotes=quotes or None, explain=explain,
                              quote_min_probability=quote_min_probability)

    curves_form = Form(0, ge=0, le=MAX_POINTS, description=f"0: none; N (at most {MAX_POINTS}): add 'curves', the clip's "
                       "waveform peaks, loudness and pitch in N time bins (for drawing)")

    # `async def`: the wait for the batcher is an await on the event loop, so a thousand waiting
    # requests hold no worker thread and /health keeps answering; decoding runs in a thread.
    @app.post("/analyze", responses=errors)
    async def analyze(
        file: UploadFile = File(..., description="an audio file (wav, flac, ogg, mp3, webm, ...)"),
        options: AnalyzeOptions = Depends(analyze_form),
        curves: int = curves_form,
    ) -> Any:
        """Analyse one clip: label, scores, explanation, quotes, transcript, cues (``emoreason.inference.results``)."""
        name = file.filename or "upload"
        job = await submit_clip(ctx, name, await file.read(), options)
        result, outcome = await wait_job(ctx, job)
        body = result.to_dict()
        if curves:
            body["curves"] = await asyncio.to_thread(clip_curves, job.wave, curves)
        return JSONResponse(body, headers=batch_header(outcome))

    @app.post("/analyze/stream", responses=errors)
    async def analyze_stream(
        file: UploadFile = File(..., description="an audio file (wav, flac, ogg, mp3, webm, ...)"),
        options: AnalyzeOptions = Depends(analyze_form),
        curves: int = curves_form,
    ) -> Any:
        """As /analyze, answered as NDJSON events: ``start`` (duration, windows, curves), ``text`` (a
        one-window clip's text so far), one ``window`` per 30 s window as it finishes, then ``result``
        (or ``error``); ``emoreason.inference.server.stream``."""
        events = await start_stream(ctx, file.filename or "upload", await file.read(), options, curves)
        return StreamingResponse(events, media_type="application/x-ndjson")

    add_page_routes(app, ctx)
    add_openai_routes(app, ctx, errors)
    return app
