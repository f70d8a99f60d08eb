"""``emoreason serve``: the engine behind an HTTP API (ours and OpenAI's) and a one-page web UI.

    emoreason serve --model runs/x --port 8000
    curl -F file=@clip.wav -F task=emotion http://127.0.0.1:8000/analyze
    curl -F file=@clip.wav -F task=sqa -F question="What does the speaker want?" http://127.0.0.1:8000/analyze

    from openai import OpenAI                      # any OpenAI-compatible client
    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="-")
    client.chat.completions.create(model="x", messages=[{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": b64, "format": "wav"}}]}])

Endpoints (details in docs/inference.md and at ``/docs``):

- ``POST /analyze``: multipart ``file`` (+ optional form fields ``task`` (emotion | sentiment | asr |
  sqa), ``question`` (sqa), ``transcript`` (auto | model | whisper | none), ``quotes`` (constrained | free), ``explain`` (forced | free),
  ``max_new_tokens``, ``prompt``, ``curves`` (N time bins of waveform, pitch, loudness)) -> the
  analysis JSON (``emoreason.inference.results``).
- ``POST /analyze/stream``: the same, as NDJSON events, one per 30 s window as it finishes (``stream``).
- ``GET /v1/models``, ``POST /v1/chat/completions`` (``stream`` too), ``POST /v1/audio/transcriptions``:
  the OpenAI-compatible routes (``openai_api``).
- ``GET /health``: ``{"status": "ok", "model", "model_id", "tasks": {task: [labels]}, "queue", "batches"}``.
- ``GET /``: the web page (no CDN; ``page``): upload, record or pick an example (``GET /examples``,
  spoken by espeak-ng on first use); ``GET /docs``: the API, rendered from its OpenAPI spec without any CDN.

Errors on every route: ``{"error": {"message", "type", "param", "code"}}`` (``errors``). Requests
from all routes are batched together (``batcher``); limits on size, length, queue, time, key and
CORS are in ``limits``.

Modules: ``app`` (the FastAPI app), ``batcher`` (batching across requests), ``service`` (decode,
queue, wait), ``stream`` (per-window NDJSON), ``curves``, ``page`` and ``examples`` (the web page),
``openai_api``, ``limits``, ``errors``, ``docs``.
"""
# No `from __future__ import annotations`: see app.py (FastAPI reads annotations at runtime).
import argparse
import os
import signal
import sys
from typing import Any

from emoreason.inference.server.app import MAX_UPLOAD_BYTES, SERVER_MAX_SECONDS, create_app

__all__ = ["create_app", "register", "run", "MAX_UPLOAD_BYTES", "SERVER_MAX_SECONDS"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``emoreason serve``."""
    p = subparsers.add_parser(
        "serve",
        help="serve a trained model over HTTP (POST /analyze, OpenAI-compatible /v1, GET /health) with a web page at /",
        description="Load a trained model once and serve it: POST /analyze (multipart 'file', optional 'task' "
        "emotion|sentiment|asr|sqa, 'question' for sqa, 'transcript' auto|model|whisper|none, 'quotes' constrained|free, 'explain' forced|free), "
        "the OpenAI-compatible GET /v1/models, POST /v1/chat/completions (input_audio / audio_url parts, stream) and "
        "POST /v1/audio/transcriptions, GET /health, /docs, and a web page at / to upload or record a clip. "
        "Concurrent requests are batched together.",
    )
    p.add_argument("--model", required=True, metavar="RUN_DIR", help="a run directory (uses RUN_DIR/final) or a save_pretrained directory")
    p.add_argument("--served-model-name", metavar="ID", help="the model id of the /v1 routes (default: the run directory's name)")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1; 0.0.0.0 exposes it to the network)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")
    from emoreason.inference.cli import add_runtime_arguments, add_transcriber_argument

    add_runtime_arguments(p)
    add_transcriber_argument(p)
    p.add_argument("--batch-size", type=int, default=8, help="clips or long-audio windows per forward pass, across concurrent requests (default: 8)")
    p.add_argument("--batch-wait-ms", type=float, default=10.0, help="how long to wait for more requests to batch with the first (default: 10)")
    p.add_argument("--batch-regather-ms", type=float, default=2000.0,
                   help="how much longer to wait when more requests were in flight during the previous batch than have "
                   "arrived (clients sending their next request), at most a quarter of that batch's time; 0: never (default: 2000)")
    p.add_argument("--max-queue", type=int, default=64, help="requests queued or running at once; more get HTTP 429 (default: 64)")
    p.add_argument("--request-timeout", type=float, default=300.0, help="seconds one request may take, queueing included; then HTTP 504 (default: 300)")
    p.add_argument("--max-new-tokens", type=int, default=128, help="default explanation length; a request may override it (default: 128)")
    p.add_argument("--max-seconds", type=float, default=SERVER_MAX_SECONDS, help=f"refuse longer clips (default: {SERVER_MAX_SECONDS:.0f})")
    p.add_argument("--max-upload-mb", type=float, default=MAX_UPLOAD_BYTES // (1024 * 1024),
                   help="refuse bigger request bodies, while they stream in (default: 200)")
    p.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on every route but /, /health, /docs "
                   "(default: the EMOREASON_API_KEY environment variable; unset: no key)")
    p.add_argument("--warm-up", choices=["auto", "on", "off"], default="auto",
                   help="before listening, analyse a short tone at batch sizes 1 and 2 so that the first requests do "
                   "not pay one-time costs (the decode step's compile with --decode-compile cudagraphs / inductor: "
                   "30-40 s each on a GPU); auto: on when the decode steps are compiled (default: auto)")
    p.add_argument("--idle-exit", type=float, default=0.0, metavar="MIN",
                   help="stop by itself after MIN minutes without requests (GET /health does not count); "
                   "what `analyze --keep-warm` starts its server with (default: 0, never)")
    p.add_argument("--cors", action="append", default=[], metavar="ORIGIN",
                   help="allow browsers on ORIGIN (e.g. http://localhost:3000) to call the API; repeatable (default: none)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from emoreason.errors import UserError

    # before torch and the model load: a typo costs a second, not a cold start
    if args.batch_size < 1 or args.max_queue < 1 or args.request_timeout <= 0 or args.max_upload_mb <= 0 or args.batch_wait_ms < 0 \
            or args.batch_regather_ms < 0 or args.idle_exit < 0:
        raise UserError("--batch-size, --max-queue, --request-timeout and --max-upload-mb must be positive, "
                        "--batch-wait-ms, --batch-regather-ms and --idle-exit >= 0")
    from emoreason.startup import import_ml_stack

    import_ml_stack()  # (the model is not frozen: a long-lived server's heap is its own business)
    import uvicorn

    from emoreason.hardware import auto_decode_threads, default_device
    from emoreason.inference.discovery import announce, withdraw
    from emoreason.inference.engine import Engine
    from emoreason.inference.server.limits import ServerLimits

    threads = args.decode_threads
    if threads == "auto":  # one decode thread on a CPU: the request threads need the other cores
        threads = auto_decode_threads(args.device or default_device(), serving=True)
    engine = Engine.load(args.model, device=args.device, max_seconds=args.max_seconds, dtype=args.dtype,
                         decode_threads=threads, decode_compile=args.decode_compile,
                         transcriber=args.transcriber, quote_check=args.quote_check,
                         transcript_language=args.transcript_language, window_seconds=args.window)
    if args.warm_up == "on" or (args.warm_up == "auto" and engine.model.decode_compile in ("cudagraphs", "inductor")):
        print(f"emoreason serve: warming up (decode {engine.model.decode_compile}; batch sizes 1 and 2)...",
              file=sys.stderr, flush=True)
        seconds = engine.warm_up(sorted({1, min(2, args.batch_size)}))
        print(f"emoreason serve: warmed up in {seconds:.1f} s", file=sys.stderr, flush=True)
    limits = ServerLimits(
        max_body_bytes=int(args.max_upload_mb * 1024 * 1024), max_seconds=args.max_seconds, max_queue=args.max_queue,
        max_batch=args.batch_size, max_wait_s=args.batch_wait_ms / 1000, max_regather_s=args.batch_regather_ms / 1000,
        request_timeout_s=args.request_timeout,
        api_key=args.api_key or os.environ.get("EMOREASON_API_KEY") or None, cors_origins=tuple(args.cors))
    app = create_app(engine, max_new_tokens=args.max_new_tokens, limits=limits, model_id=args.served_model_name)
    # `emoreason analyze --model` of the same model finds this server and skips its cold start
    # (emoreason.inference.discovery); the file goes when the server stops.
    local = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
    announced = announce(f"http://{'[' + local + ']' if ':' in local else local}:{args.port}", args.model, name=engine.name)
    # uvicorn shuts down gracefully on SIGTERM and then raises the signal again, which by default
    # ends the process at once: as an exception instead, the server file is removed below.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="info"))
    if args.idle_exit > 0:
        from emoreason.inference.server.idle import stop_when_idle

        stop_when_idle(server, app.state.activity, args.idle_exit * 60)
    try:
        server.run()
    except KeyboardInterrupt:  # Ctrl-C after uvicorn's graceful shutdown, as uvicorn.run has it
        pass
    finally:
        withdraw(announced)
    if not server.started:  # e.g. the port is taken: uvicorn has logged why
        raise UserError(f"the server did not start on {args.host}:{args.port} (see the log above)")
    return 0


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)
