"""Teacher backend for any OpenAI-compatible chat server (vLLM, llama.cpp, Ollama, OpenAI).

Async (httpx) so the pipeline can keep many requests in flight; each request has a timeout and is
retried with exponential backoff and jitter on what a retry can fix (connection errors, timeouts,
HTTP 408/429/5xx, a body that is not the expected JSON, empty content). What a retry cannot fix
stops early: a rejected key or wrong URL/model stops the whole run (:class:`TeacherUnavailable`),
any other 4xx fails only that row (:class:`TeacherError`).
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import re
import ssl

import httpx

from emoreason.errors import UserError
from emoreason.teacher.base import TeachRequest, TeacherError, TeacherUnavailable

API_KEY_ENVS = ("EMOREASON_TEACHER_API_KEY", "OPENAI_API_KEY")
_THINK_RE = re.compile(r"<think>.*?</think>", re.S)


def _short(text: str, n: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


class OpenAICompatTeacher:
    """Chat-completions client with timeout, retries (exponential backoff + jitter) and a cache key."""

    max_concurrency = None

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        timeout: float = 60.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        max_tokens: int = 300,
        concurrency: int = 32,
        api_key: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = self.base_url
        self.model = model
        self.timeout = timeout
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_tokens = max_tokens
        key = api_key or next((os.environ[k] for k in API_KEY_ENVS if os.environ.get(k)), None)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        # One single-connection client per slot instead of one shared pool: httpcore's pool scans
        # every connection on every request, which made the client CPU-bound at ~160 requests/s
        # with 32 in flight (measured; benchmarks/teach_throughput.py). Slots also bound concurrency.
        # one TLS context for all of them: building one per client costs ~40 ms each
        tls = _tls_context()
        self._slots: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        self._clients = [
            httpx.AsyncClient(headers=headers, timeout=timeout, verify=tls, limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))
            for _ in range(max(1, concurrency))
        ]
        for client in self._clients:
            self._slots.put_nowait(client)
        try:
            self._chat_url = httpx.URL(f"{self.base_url}/chat/completions")  # parsed once, not per request
        except httpx.InvalidURL as e:
            raise UserError(f"--teacher {base_url!r} is not a valid URL ({e})") from None
        self.requests_sent = 0

    # -- model discovery -------------------------------------------------------------------
    async def start(self) -> None:
        """Resolve the model name (first entry of ``GET /models`` when none was given); raises
        TeacherUnavailable when the endpoint cannot be reached."""
        if self.model:
            return
        try:
            r = await self._clients[0].get(f"{self.base_url}/models", timeout=min(self.timeout, 10.0))
            r.raise_for_status()
            models = [m["id"] for m in r.json().get("data", [])]
        except httpx.TransportError as e:
            raise TeacherUnavailable(f"cannot reach the teacher at {self.base_url} ({_describe(e)})") from None
        except (httpx.HTTPStatusError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise TeacherUnavailable(f"{self.base_url}/models did not list models ({_short(str(e))}): pass --model NAME") from None
        if not models:
            raise TeacherUnavailable(f"{self.base_url}/models lists no model: pass --model NAME")
        self.model = models[0]

    # -- requests --------------------------------------------------------------------------
    def payload(self, request: TeachRequest) -> dict:
        """The chat-completions body. The first attempt is greedy; a retry after a failed check
        samples (temperature 0.7, seed = attempt) so it can produce a different answer."""
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": request.prompt}],
            "max_tokens": self.max_tokens,
            "temperature": 0.0 if request.attempt == 0 else 0.7,
        }
        if request.attempt:
            body["seed"] = request.attempt
        return body

    def request_key(self, request: TeachRequest) -> str:
        """Cache key: hash of the request body (model, messages, sampling); the host is not part
        of it, so the same model behind another URL reuses the cache."""
        blob = json.dumps(self.payload(request), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    async def complete(self, request: TeachRequest) -> str:
        body = self.payload(request)
        url = self._chat_url
        failures: list[str] = []
        only_unreachable = True
        for attempt in range(self.retries + 1):
            if attempt:
                # exponential backoff with jitter, so 32 workers don't retry in lockstep
                await asyncio.sleep(min(30.0, self.backoff_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5))
            self.requests_sent += 1
            client = await self._slots.get()
            try:
                r = await client.post(url, json=body)
            except httpx.ConnectError as e:
                failures.append(_describe(e))
                continue
            except httpx.TimeoutException:
                only_unreachable = False
                failures.append(f"timed out after {self.timeout:g} s")
                continue
            except httpx.TransportError as e:
                only_unreachable = False
                failures.append(_describe(e))
                continue
            finally:
                self._slots.put_nowait(client)
            only_unreachable = False
            if r.status_code in (401, 403):
                raise TeacherUnavailable(f"the teacher at {self.base_url} rejected the request (HTTP {r.status_code}): check the API key ({' or '.join(API_KEY_ENVS)})")
            if r.status_code == 404:
                raise TeacherUnavailable(f"{url} answered 404 (wrong base URL or unknown model {self.model!r}?): {_short(r.text)}")
            if r.status_code in (408, 429) or r.status_code >= 500:
                failures.append(f"HTTP {r.status_code}")
                continue
            if r.status_code >= 400:
                raise TeacherError(f"HTTP {r.status_code}: {_short(r.text)}")
            try:
                content = r.json()["choices"][0]["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError):
                failures.append(f"not a chat completion: {_short(r.text, 60)!r}")
                continue
            content = _THINK_RE.sub("", content or "").strip()
            if not content:
                failures.append("empty content")
                continue
            return content
        if only_unreachable:
            raise TeacherUnavailable(f"cannot reach the teacher at {self.base_url} ({failures[-1]}, {len(failures)} tries)")
        raise TeacherError(f"{len(failures)} tries failed: {'; '.join(dict.fromkeys(failures))}")

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


def _tls_context() -> ssl.SSLContext:
    try:
        import certifi  # what httpx itself uses by default

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:
        return ssl.create_default_context()


def _describe(e: Exception) -> str:
    if isinstance(e, httpx.ConnectError):  # httpx says "All connection attempts failed"
        return "could not connect: is the server running and the URL right?"
    return _short(str(e).strip() or e.__class__.__name__, 80)
