"""Teacher backend for any OpenAI-compatible chat server (vLLM, llama.cpp, Ollama, OpenAI).

The HTTP work (bounded concurrency, timeout, retries with backoff and jitter, error classes) is
:class:`emoreason.llm_client.ChatClient`; this module builds the teacher's request and words its
failures: a rejected key or wrong URL/model stops the whole run (:class:`TeacherUnavailable`),
any other 4xx fails only that row (:class:`TeacherError`), and a reply without text is retried
like a 5xx, 429, timeout or non-JSON body.
"""
from __future__ import annotations

import os

import httpx

from emoreason.errors import UserError
from emoreason.llm_client import (BadResponse, ChatClient, EndpointRejected, RequestRejected,
                                  RetriesExhausted, chat_body, request_hash, shorten)
from emoreason.teacher.base import TeachRequest, TeacherError, TeacherUnavailable

API_KEY_ENVS = ("EMOREASON_TEACHER_API_KEY", "OPENAI_API_KEY")


class OpenAICompatTeacher:
    """Chat-completions teacher with timeout, retries (exponential backoff + jitter) and a cache key."""

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
        self.model = model
        self.max_tokens = max_tokens
        key = api_key or next((os.environ[k] for k in API_KEY_ENVS if os.environ.get(k)), None)
        try:
            self.client = ChatClient(base_url, api_key=key, timeout=timeout, retries=retries, backoff_s=backoff_s,
                                     concurrency=concurrency)
        except httpx.InvalidURL as e:
            raise UserError(f"--teacher {base_url!r} is not a valid URL ({e})") from None
        self.base_url = self.client.base_url
        self.name = self.base_url

    @property
    def requests_sent(self) -> int:
        return self.client.requests_sent

    # -- model discovery -------------------------------------------------------------------
    async def start(self) -> None:
        """Resolve the model name (first entry of ``GET /models`` when none was given); raises
        TeacherUnavailable when the endpoint cannot be reached."""
        if self.model:
            return
        try:
            models = await self.client.list_models(retries=0, timeout=min(self.client.timeout, 10.0))
        except RetriesExhausted as e:
            if e.status is None:  # no response at all
                raise TeacherUnavailable(f"cannot reach the teacher at {self.base_url} ({e.detail})") from None
            raise TeacherUnavailable(f"{self.base_url}/models did not list models ({e.detail}): pass --model NAME") from None
        except (EndpointRejected, RequestRejected, BadResponse) as e:
            detail = e.detail if isinstance(e, BadResponse) else f"HTTP {e.status}: {shorten(e.body)}"
            raise TeacherUnavailable(f"{self.base_url}/models did not list models ({shorten(detail)}): pass --model NAME") from None
        if not models:
            raise TeacherUnavailable(f"{self.base_url}/models lists no model: pass --model NAME")
        self.model = models[0]

    # -- requests --------------------------------------------------------------------------
    def payload(self, request: TeachRequest) -> dict:
        """The chat-completions body. The first attempt is greedy; a retry after a failed check
        samples (temperature 0.7, seed = attempt) so it can produce a different answer."""
        return chat_body(self.model, request.prompt, self.max_tokens, 0.0 if request.attempt == 0 else 0.7,
                         seed=request.attempt or None)

    def request_key(self, request: TeachRequest) -> str:
        """Cache key: hash of the request body (model, messages, sampling)."""
        return request_hash(self.payload(request))

    async def complete(self, request: TeachRequest) -> str:
        try:
            return await self.client.chat(self.payload(request), need_answer=True)
        except EndpointRejected as e:
            if e.status in (401, 403):
                raise TeacherUnavailable(f"the teacher at {self.base_url} rejected the request (HTTP {e.status}): check the API key ({' or '.join(API_KEY_ENVS)})") from None
            raise TeacherUnavailable(f"{self.client.chat_url} answered 404 (wrong base URL or unknown model {self.model!r}?): {shorten(e.body)}") from None
        except RequestRejected as e:
            raise TeacherError(f"HTTP {e.status}: {shorten(e.body)}") from None
        except RetriesExhausted as e:
            if e.unreachable:
                raise TeacherUnavailable(f"cannot reach the teacher at {self.base_url} ({e.failures[-1]}, {len(e.failures)} tries)") from None
            raise TeacherError(f"{len(e.failures)} tries failed: {'; '.join(dict.fromkeys(e.failures))}") from None

    async def aclose(self) -> None:
        await self.client.aclose()
