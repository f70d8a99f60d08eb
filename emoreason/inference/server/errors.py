"""One error shape for every route: OpenAI's ``{"error": {"message", "type", "param", "code"}}``.

``message`` is one line; ``type`` follows the status (``invalid_request_error`` for 400 / 404 /
413 / 422, ``authentication_error`` 401, ``rate_limit_error`` 429, ``timeout_error`` 504,
``server_error`` 500); ``param`` names the offending field when one is known; ``code`` is a short
machine-readable reason (``queue_full``, ``request_too_large``, ``invalid_api_key``, ...) or null.
FastAPI's own 422 ``{"detail": [...]}`` and ``HTTPException`` bodies are replaced by this shape.
"""
from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "invalid_request_error", 405: "invalid_request_error", 408: "timeout_error",
               413: "invalid_request_error", 415: "invalid_request_error", 422: "invalid_request_error",
               429: "rate_limit_error", 500: "server_error", 503: "server_error", 504: "timeout_error"}


class APIError(Exception):
    """An HTTP error answered in the OpenAI shape; raise it from any route."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """The JSON body of an error (``message`` cut to its first line)."""
    line = message.strip().splitlines()[0] if message and message.strip() else "error"
    return {"error": {"message": line, "type": ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error"),
                      "param": param, "code": code}}


def error_response(status: int, message: str, param: str | None = None, code: str | None = None,
                   headers: dict[str, str] | None = None) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse(error_body(status, message, param, code), status_code=status, headers=headers)


def _location(loc: tuple[Any, ...]) -> str:
    """``("body", "messages", 0, "content")`` -> ``messages[0].content`` (the field as a client names it)."""
    out = ""
    for part in loc[1:] if loc and loc[0] in ("body", "query", "path", "header", "form") else loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def install_error_handlers(app: Any) -> None:
    """Answer every error of ``app`` (ours, FastAPI's validation, Starlette's 404 / 405, crashes) in the one shape."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(APIError)
    async def api_error(request: Any, exc: APIError) -> Any:
        return error_response(exc.status, exc.message, exc.param, exc.code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Any, exc: RequestValidationError) -> Any:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        param = _location(tuple(first.get("loc", ())))
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return error_response(422, f"{param}: {first.get('msg', 'invalid')}{more}", param, "invalid_value")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Any, exc: StarletteHTTPException) -> Any:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404:
            message = f"{request.method} {request.url.path}: no such route (see /docs)"
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return error_response(exc.status_code, message, None, code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def crash(request: Any, exc: Exception) -> Any:
        # The traceback goes to the server log; the client gets one line without internals.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal error ({type(exc).__name__}); the server log has the details")


def openapi_error_responses() -> dict[int | str, Any]:
    """The error statuses every route may answer, for the OpenAPI spec (all in the one shape)."""
    from pydantic import BaseModel

    class ErrorDetail(BaseModel):
        message: str
        type: str
        param: str | None = None
        code: str | None = None

    class ErrorResponse(BaseModel):
        error: ErrorDetail

    about = {400: "bad audio or a bad field", 401: "missing or wrong API key (when the server has one)",
             404: "unknown model id", 413: "request body over the size limit", 422: "a field of the wrong type or size",
             429: "the request queue is full", 504: "over the per-request time budget", 500: "internal error"}
    return {status: {"model": ErrorResponse, "description": text} for status, text in about.items()}
