"""What one request may cost the server, and the ASGI guards that refuse the rest early.

The guards sit in front of FastAPI, so they act before any body is parsed or spooled:

- :class:`BodyLimit`: a declared ``Content-Length`` over the limit is refused before one byte is
  read; a body without one (chunked) is counted while it streams in and refused (413) the moment
  it passes the limit, so a 1 GB upload never reaches the disk.
- :class:`APIKeyGuard`: with an API key set, every route but the public ones (``/``, ``/health``,
  ``/docs``, ``/openapi.json``) needs ``Authorization: Bearer KEY`` (what the OpenAI SDK sends)
  or ``X-API-Key: KEY``.

Both answer in the one error shape (``emoreason.inference.server.errors``).
"""
from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from emoreason.inference.generation import MAX_QUESTION_CHARS
from emoreason.inference.server.errors import error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PUBLIC_PATHS = frozenset({"/", "/health", "/docs", "/openapi.json"})
"""Routes served without the API key: the page, the health check and the API description."""


@dataclass(frozen=True)
class ServerLimits:
    """Bounds on one request and on the queue (``emoreason serve`` flags in brackets)."""

    max_body_bytes: int = 200 * 1024 * 1024
    """Largest request body (``--max-upload-mb``): a multipart upload, or a JSON body with base64
    audio (which is 4/3 of the audio's size)."""
    max_seconds: float = 3600.0
    """Longest clip (``--max-seconds``); checked from the file header before decoding it all."""
    max_text_chars: int = MAX_QUESTION_CHARS
    """Longest instruction / prompt / question (the text parts of a chat message together): the
    prompt's cost grows with its length while the model is busy with it."""
    max_queue: int = 64
    """Requests accepted but not finished (``--max-queue``); one more is answered 429."""
    max_batch: int = 8
    """Windows (30 s each) per forward pass across requests (``--batch-size``)."""
    max_wait_s: float = 0.01
    """How long the batcher waits for more requests after the first one arrives (``--batch-wait-ms``)."""
    max_regather_s: float = 2.0
    """How much longer it may wait when more requests were in flight during the previous engine
    call than have arrived (``--batch-regather-ms``; at most a quarter of that call's time; 0: never)."""
    request_timeout_s: float = 300.0
    """Time budget of one request, queueing included (``--request-timeout``): past it the caller
    gets 504 and its rows stop generating."""
    max_new_tokens: int = 1024
    """Largest generation budget a request may ask for."""
    api_key: str | None = None
    """``--api-key`` / ``EMOREASON_API_KEY``: required on every non-public route when set."""
    cors_origins: tuple[str, ...] = field(default_factory=tuple)
    """``--cors ORIGIN`` (repeatable); none: no CORS headers at all (browsers block other origins)."""


async def _send_error(send: Send, status: int, message: str, code: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps(error_body(status, message, code=code)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *headers]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """ASGI middleware: refuse bodies over ``max_bytes`` while they stream in (413)."""

    def __init__(self, app: Any, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        message = f"request body is over the {self.max_bytes / (1024 * 1024):g} MB limit"
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await _send_error(send, 413, message, "request_too_large")
        seen, over, started = 0, False, False

        async def counted() -> Message:
            nonlocal seen, over
            event = await receive()
            if event["type"] == "http.request":
                seen += len(event.get("body", b""))
                if seen > self.max_bytes:
                    # Stop reading: the app sees a disconnect and gives up on the body; what it
                    # answers is replaced by the 413 below.
                    over = True
                    return {"type": "http.disconnect"}
            return event

        async def guarded_send(event: Message) -> None:
            nonlocal started
            if over:
                if event["type"] == "http.response.start" and not started:
                    started = True
                    await _send_error(send, 413, message, "request_too_large")
                return  # the app's own answer to the cut body is dropped
            started = started or event["type"] == "http.response.start"
            await send(event)

        try:
            await self.app(scope, counted, guarded_send)
        except Exception:
            if not over:
                raise
        if over and not started:
            await _send_error(send, 413, message, "request_too_large")


class APIKeyGuard:
    """ASGI middleware: with ``api_key`` set, non-public routes need the key (401 otherwise)."""

    def __init__(self, app: Any, api_key: str):
        self.app, self.key = app, api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS or scope.get("method") == "OPTIONS":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers", ()))
        auth = headers.get(b"authorization", b"")
        given = auth[7:].strip() if auth[:7].lower() == b"bearer " else headers.get(b"x-api-key", b"")
        if not given or not hmac.compare_digest(given, self.key):
            what = "no API key given" if not given else "invalid API key"
            return await _send_error(send, 401, f"{what} (send 'Authorization: Bearer KEY')", "invalid_api_key",
                                     [(b"www-authenticate", b"Bearer")])
        await self.app(scope, receive, send)
