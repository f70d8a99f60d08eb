"""``emoreason serve``: the engine behind a small HTTP API and a one-page web UI.

    emoreason serve --model runs/x --port 8000
    curl -F file=@clip.wav -F task=emotion http://127.0.0.1:8000/analyze
    curl -F file=@clip.wav -F task=sqa -F question="What does the speaker want?" http://127.0.0.1:8000/analyze

Endpoints:
- ``POST /analyze``: multipart ``file`` (+ optional form fields ``task`` (emotion | sentiment | asr |
  sqa), ``question`` (sqa), ``transcript`` (auto | model | whisper | none), ``quotes`` (constrained |
  free), ``explain`` (forced | free), ``max_new_tokens``, ``prompt``) -> the
  analysis JSON (``emoreason.inference.results``); 400 ``{"error": "..."}`` (one line) for bad
  audio or a bad field, 413 for an upload over the size limit.
- ``GET /health``: ``{"status": "ok", "model", "tasks": {task: [labels]}}`` (asr, sqa: no labels).
- ``GET /``: a self-contained page (no CDN) to upload or record a clip and see the label, score
  bars, the explanation with its quotes highlighted, and a timeline of segments for long audio.
"""
# No `from __future__ import annotations` here: FastAPI reads the endpoint annotations at runtime,
# and UploadFile is imported inside create_app (keeps `--help` fast), so they must be real objects.
import argparse
from importlib import resources
from typing import Any

MAX_UPLOAD_BYTES = 200 * 1024 * 1024
"""Bigger uploads are refused before decoding (413)."""
SERVER_MAX_SECONDS = 3600.0
"""Default longest clip the server accepts (the CLI allows longer with --max-seconds)."""


def create_app(engine: Any, max_new_tokens: int = 128, batch_size: int = 4, max_upload_bytes: int = MAX_UPLOAD_BYTES) -> Any:
    """A FastAPI app serving ``engine`` (an :class:`emoreason.inference.engine.Engine`)."""
    from fastapi import FastAPI, File, Form, UploadFile
    from fastapi.responses import HTMLResponse, JSONResponse

    from emoreason.errors import UserError
    from emoreason.inference.engine import TASKS
    from emoreason.inference.generation import MAX_QUESTION_CHARS

    app = FastAPI(title="emoreason", description="Speech emotion reasoning: label, scores, explanation, quotes.")
    page = resources.files("emoreason.inference").joinpath("index.html").read_text(encoding="utf-8")

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message.splitlines()[0] if message else "error"}, status_code=status)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": engine.name, "tasks": {t: engine.labels(t) for t in TASKS}}

    # A plain `def`: FastAPI runs it in its thread pool, so a long analysis does not block the
    # event loop (health checks keep answering); the engine serialises model calls with a lock.
    @app.post("/analyze")
    def analyze(
        file: UploadFile = File(..., description="an audio file (wav, flac, ogg, mp3, ...)"),
        task: str = Form("emotion"),
        max_new_tokens: int = Form(max_new_tokens),
        prompt: str = Form(""),
        question: str = Form("", description="sqa: the question asked about the clip"),
        transcript: str = Form("auto", description="auto | model | whisper | none: where the transcript comes from"),
        quotes: str = Form("", description="constrained: quotes only from the transcript; free: unconstrained; "
                           "empty: constrained when there is a transcript"),
        explain: str = Form("forced", description="forced: the explanation continues the label's sentence; free"),
    ) -> Any:
        name = file.filename or "upload"
        if task not in TASKS:
            return error(400, f"unknown task {task!r} (expected one of {list(TASKS)})")
        if not 0 <= max_new_tokens <= 1024:
            return error(400, f"max_new_tokens must be in [0, 1024], got {max_new_tokens}")
        for field, value in (("prompt", prompt), ("question", question)):
            if len(value) > MAX_QUESTION_CHARS:  # before reading the upload: refuse cheaply
                return error(400, f"{field} is {len(value)} characters long; at most {MAX_QUESTION_CHARS} are accepted")
        data = file.file.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            return error(413, f"{name}: upload is over the {max_upload_bytes // (1024 * 1024)} MB limit")
        if not data:
            return error(400, f"{name}: file is empty (0 bytes)")
        try:
            [result] = engine.analyze([(name, data)], task=task, batch_size=batch_size, max_new_tokens=max_new_tokens,
                                      prompt=prompt or None, question=question or None, transcript=transcript,
                                      quotes=quotes or None, explain=explain)
        except UserError as e:
            return error(400, str(e))
        if not result.ok:
            return error(400, result.error)
        return result.to_dict()

    return app


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``emoreason serve``."""
    p = subparsers.add_parser(
        "serve",
        help="serve a trained model over HTTP (POST /analyze, GET /health) with a web page at /",
        description="Load a trained model once and serve it: POST /analyze (multipart 'file', optional 'task' "
        "emotion|sentiment|asr|sqa, 'question' for sqa, 'transcript' auto|model|whisper|none, 'quotes' constrained|free, "
        "'explain' forced|free), "
        "GET /health, and a web page at / to upload or record a clip.",
    )
    p.add_argument("--model", required=True, metavar="RUN_DIR", help="a run directory (uses RUN_DIR/final) or a save_pretrained directory")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1; 0.0.0.0 exposes it to the network)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")
    from emoreason.inference.cli import add_runtime_arguments

    add_runtime_arguments(p)
    p.add_argument("--batch-size", type=int, default=4, help="30 s windows per forward pass for long uploads (default: 4)")
    p.add_argument("--max-new-tokens", type=int, default=128, help="default explanation length; a request may override it (default: 128)")
    p.add_argument("--max-seconds", type=float, default=SERVER_MAX_SECONDS, help=f"refuse longer clips (default: {SERVER_MAX_SECONDS:.0f})")
    p.add_argument("--max-upload-mb", type=int, default=MAX_UPLOAD_BYTES // (1024 * 1024), help="refuse bigger uploads (default: 200)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from emoreason.inference.engine import Engine

    engine = Engine.load(args.model, device=args.device, max_seconds=args.max_seconds, dtype=args.dtype)
    app = create_app(engine, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                     max_upload_bytes=args.max_upload_mb * 1024 * 1024)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
