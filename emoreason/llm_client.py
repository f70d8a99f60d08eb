"""The one client for OpenAI-compatible chat servers (vLLM, llama.cpp, Ollama, OpenAI) and the one
on-disk answer cache; the teacher (``teacher/openai_compat.py``) and the LLM judge
(``eval/judges/llm.py``) both sit on top of them.

ARCHITECTURE.md: every external call is wrapped: timeout, retry, cache by request hash. Here:

- bounded concurrency: one single-connection httpx client per slot, at most ``concurrency``
  requests in flight;
- a per-request timeout;
- retries with exponential backoff and jitter on what a retry can fix: connection errors,
  timeouts, HTTP 408/429/5xx, a body that is not JSON (and, for callers that need an answer, a
  reply without text);
- what a retry cannot fix stops early, classified so each caller can word its own message:
  401/403/404 -> :class:`EndpointRejected` (no request can succeed: key, URL or model is wrong),
  any other 4xx -> :class:`RequestRejected` (only this request fails), retries used up ->
  :class:`RetriesExhausted`;
- :func:`request_hash` + :class:`ResponseCache`: an append-only JSONL cache keyed by the hash of
  the request body, so the same request is never paid for twice.

The client does not read the cache itself: callers decide what a cache hit counts as.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import ssl
from pathlib import Path
from typing import Any, Callable, TypeVar

import httpx

from emoreason.jsonl import ResumableJsonl

T = TypeVar("T")
_THINK_RE = re.compile(r"<think>.*?</think>", re.S)
MAX_BACKOFF_S = 30.0


class EndpointError(Exception):
    """A request to the endpoint failed; ``detail`` says why in a few words."""

    def __init__(self, detail: str, status: int | None = None, body: str = "") -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.body = body
        """Response text (for HTTP errors), so callers can quote the server."""


class EndpointRejected(EndpointError):
    """HTTP 401/403/404: the key, URL or model is wrong; no request to this endpoint can succeed."""


class RequestRejected(EndpointError):
    """Any other HTTP 4xx (but 408/429): this request cannot succeed; others may."""


class RetriesExhausted(EndpointError):
    """Every try failed with something retryable. ``failures`` describes each try;
    ``unreachable`` is true when no try reached the server (connection refused / failed);
    ``status`` is the last try's HTTP status (None when it got no response)."""

    def __init__(self, failures: list[str], unreachable: bool, status: int | None = None) -> None:
        super().__init__(failures[-1] if failures else "no tries", status)
        self.failures = failures
        self.unreachable = unreachable


class BadResponse(EndpointError):
    """A 2xx response that is not what the endpoint should answer (e.g. no model list)."""


class _Retry(Exception):
    """Raised by a response decoder: the response is unusable but a retry may fix it."""


def shorten(text: str, n: int = 120) -> str:
    """``text`` on one line, cut to ``n`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


def describe(e: Exception) -> str:
    """A transport error in a few words (httpx's own text is often "All connection attempts failed")."""
    if isinstance(e, httpx.ConnectError):
        return "could not connect: is the server running and the URL right?"
    return shorten(str(e).strip() or e.__class__.__name__, 80)


def describe_failure(e: EndpointError) -> str:
    """A failed request in a few words for a one-line message: how many tries and the last
    failure, or the HTTP status with the server's words."""
    if isinstance(e, RetriesExhausted):
        return f"{len(e.failures)} tries: {e.failures[-1]}"
    return f"HTTP {e.status}: {shorten(e.body)}" if e.body else e.detail


def request_hash(body: dict) -> str:
    """Cache key of a request body (model, messages, sampling): sha256 of its canonical JSON. The
    host is not part of it, so the same model behind another URL reuses the cache."""
    blob = json.dumps(body, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def chat_body(model: str | None, prompt: str, max_tokens: int, temperature: float, seed: int | None = None) -> dict:
    """A chat-completions body with ``prompt`` as the single user turn."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": temperature,
    }
    if seed is not None:
        body["seed"] = seed
    return body


class ChatClient:
    """Async chat-completions client for ``base_url`` (e.g. ``http://127.0.0.1:8000/v1``).

    Create it anywhere, use it inside one event loop, ``await aclose()`` at the end.
    """

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 60.0, retries: int = 4,
                 backoff_s: float = 0.5, concurrency: int = 32) -> None:
        """``retries``: extra tries after the first; ``backoff_s``: wait before the first retry
        (doubled each time, x0.5-1.5 jitter, at most 30 s); ``concurrency``: requests in flight.
        Raises ``httpx.InvalidURL`` when ``base_url`` cannot be parsed."""
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff_s = backoff_s
        self.concurrency = max(1, concurrency)
        self.requests_sent = 0
        """HTTP requests made, retries included."""
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.chat_url = httpx.URL(f"{self.base_url}/chat/completions")  # parsed once, not per request
        # One single-connection client per slot instead of one shared pool: httpcore's pool scans
        # every connection on every request, which made the client CPU-bound at ~160 requests/s
        # with 32 in flight (measured; benchmarks/teach_throughput.py). Slots also bound concurrency.
        # One TLS context for all of them: building one per client costs ~40 ms each.
        tls = _tls_context()
        self._clients = [
            httpx.AsyncClient(headers=headers, timeout=timeout, verify=tls,
                              limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))
            for _ in range(self.concurrency)
        ]
        self._slots: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        for client in self._clients:
            self._slots.put_nowait(client)

    async def list_models(self, retries: int | None = None, timeout: float | None = None) -> list[str]:
        """Model ids from ``GET /models``. Raises the errors of :meth:`send`; a reply that is not
        a model list raises :class:`BadResponse` (not retried: a server that lists models wrongly
        does so every time)."""
        def decode(r: httpx.Response) -> list[str]:
            try:
                return [m["id"] for m in r.json().get("data", [])]
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise BadResponse(f"not a model list ({shorten(str(e))})", r.status_code, r.text) from None

        return await self.send("GET", f"{self.base_url}/models", None, decode, retries=retries, timeout=timeout)

    async def chat(self, body: dict, *, need_answer: bool = True, allow_empty: bool = False) -> str:
        """The assistant's text for a chat-completions ``body``.

        ``need_answer``: the reply must carry text once ``<think>...</think>`` blocks are removed,
        and a reply that does not (malformed JSON, no choices, empty content) is retried; the text
        returned is the cleaned one. Off, such a reply returns ``""`` (raw content otherwise) and
        the caller decides what it means (the judge scores it as a parse failure).
        ``allow_empty`` (with ``need_answer``): a well-formed completion whose cleaned content is
        empty returns ``""`` instead of being retried (a model under evaluation that says nothing
        at temperature 0 says nothing again; its empty answer is what gets scored).
        """
        def decode(r: httpx.Response) -> str:
            try:
                content = r.json()["choices"][0]["message"]["content"]
            except ValueError:  # not JSON at all: a broken proxy or a server mid-restart
                raise _Retry(f"not a chat completion: {shorten(r.text, 60)!r}") from None
            except (KeyError, IndexError, TypeError):
                if need_answer:
                    raise _Retry(f"not a chat completion: {shorten(r.text, 60)!r}") from None
                return ""
            if not need_answer:
                return content or ""
            content = _THINK_RE.sub("", content or "").strip()
            if not content and not allow_empty:
                raise _Retry("empty content")
            return content

        return await self.send("POST", self.chat_url, body, decode)

    async def send(self, method: str, url: str | httpx.URL, body: dict | None, decode: Callable[[httpx.Response], T],
                   retries: int | None = None, timeout: float | None = None) -> T:
        """One request with the retry policy of this module; ``decode`` turns a < 400 response
        into the result (raising ``_Retry`` to try again)."""
        retries = self.retries if retries is None else retries
        extra = {} if timeout is None else {"timeout": timeout}
        failures: list[str] = []
        unreachable = True
        status: int | None = None
        for attempt in range(retries + 1):
            if attempt:
                # exponential backoff with jitter, so 32 workers don't retry in lockstep
                await asyncio.sleep(min(MAX_BACKOFF_S, self.backoff_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5))
            self.requests_sent += 1
            client = await self._slots.get()
            try:
                r = await client.request(method, url, json=body, **extra)
            except httpx.ConnectError as e:
                status = None
                failures.append(describe(e))
                continue
            except httpx.TimeoutException:
                unreachable, status = False, None
                failures.append(f"timed out after {timeout or self.timeout:g} s")
                continue
            except httpx.TransportError as e:
                unreachable, status = False, None
                failures.append(describe(e))
                continue
            finally:
                self._slots.put_nowait(client)
            unreachable = False
            status = r.status_code
            if status in (401, 403, 404):
                raise EndpointRejected(f"HTTP {status}", status, r.text)
            if status in (408, 429) or status >= 500:
                failures.append(f"HTTP {status}")
                continue
            if status >= 400:
                raise RequestRejected(f"HTTP {status}: {shorten(r.text)}", status, r.text)
            try:
                return decode(r)
            except _Retry as e:
                failures.append(str(e))
        raise RetriesExhausted(failures, unreachable, status)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


def _tls_context() -> ssl.SSLContext:
    try:
        import certifi  # what httpx itself uses by default

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:
        return ssl.create_default_context()


class ResponseCache:
    """Append-only on-disk cache, request hash -> any JSON value (one ``{"key", "value"}`` line each).

    ``get(key)`` / ``put(key, value)``; ``path=None`` keeps it in memory only. A line cut short by a
    crash is cut off on open; a corrupt line costs one cached answer, never the run.
    """

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self._file = ResumableJsonl(self.path, key="key") if self.path is not None else None
        self._data: dict[str, Any] = {k: row.get("value") for k, row in self._file.done.items()} if self._file else {}
        self.hits = 0

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> Any | None:
        value = self._data.get(key)
        if value is not None:
            self.hits += 1
        return value

    def put(self, key: str, value: Any) -> None:
        self._data[key] = value
        if self._file is not None:
            self._file.append({"key": key, "value": value})

    def close(self) -> None:
        if self._file is not None:
            self._file.close()