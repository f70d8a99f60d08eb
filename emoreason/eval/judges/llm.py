"""LLM-as-a-judge over any OpenAI-compatible chat endpoint (vLLM, llama.cpp, Ollama, OpenAI).

AudioBench's protocol (FACTS.md): Llama-3-70B-Instruct, max_tokens 512, binary rubric for emotion
and sentiment (score = mean x 100), 0-5 rubric for open-ended SQA (mean x 20), the rating read
from the final "Rating: N"; a rating that cannot be read scores 0 and is counted (success rate).
The quote rubric (paper Fig. 5) rates groundedness and relevance 0-2 each.

Calls go through :class:`emoreason.llm_client.ChatClient` (bounded concurrency, per-request
timeout, retries with exponential backoff) and a :class:`~emoreason.llm_client.ResponseCache` keyed
by the request hash (model, prompt, max_tokens, temperature), stored append-only next to the
scores, so a rerun never pays twice for the same judgement. Whatever stops the endpoint from
answering (after retries, or a 4xx) stops the run with :class:`JudgeUnavailable`; rows scored
so far are kept.
"""
from __future__ import annotations

import json
import logging
import re
from importlib import resources
from pathlib import Path

from emoreason.errors import UserError
from emoreason.eval.judges.scales import MAX_RATING
from emoreason.eval.judges.offline import OfflineJudge
from emoreason.llm_client import (ChatClient, EndpointError, EndpointRejected, RequestRejected, ResponseCache,
                                  RetriesExhausted, chat_body, request_hash)

log = logging.getLogger(__name__)


class JudgeUnavailable(UserError):
    """The judge endpoint kept failing; rows scored so far are kept."""


def load_rubric(name: str) -> str:
    """Rubric template ``emoreason/eval/rubrics/NAME.txt`` (package data)."""
    return resources.files("emoreason.eval").joinpath("rubrics", f"{name}.txt").read_text(encoding="utf-8")


def parse_score(text: str, key: str, max_value: int) -> int | None:
    """The integer after the last ``KEY:`` in ``text`` (markdown bold tolerated), None when absent
    or outside 0..max_value."""
    hits = re.findall(rf"{key}\s*\**\s*[:：]\s*\**\s*\(?\s*(-?\d+(?:\.\d+)?)", text, flags=re.I)
    if not hits:
        return None
    value = float(hits[-1])
    if not value.is_integer() or not 0 <= value <= max_value:
        return None
    return int(value)


class LLMJudge:
    """Judge through ``base_url`` (e.g. ``http://127.0.0.1:8000/v1``); use inside ``async with``."""

    is_async = True

    def __init__(self, base_url: str, model: str | None = None, api_key: str = "EMPTY", concurrency: int = 8,
                 timeout: float = 60.0, retries: int = 3, backoff: float = 1.0, max_tokens: int = 512,
                 temperature: float = 0.0, cache_path: str | Path | None = None):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.concurrency = concurrency
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.cache_path = Path(cache_path) if cache_path else None
        self.cache: ResponseCache | None = None
        self._client: ChatClient | None = None

    @property
    def name(self) -> str:
        return f"llm:{self.model or '?'}@{self.base_url}"

    async def __aenter__(self) -> "LLMJudge":
        import httpx

        try:
            self._client = ChatClient(self.base_url, api_key=self.api_key, timeout=self.timeout, retries=self.retries,
                                      backoff_s=self.backoff, concurrency=self.concurrency)
        except httpx.InvalidURL as e:
            raise JudgeUnavailable(f"--judge {self.base_url!r} is not a valid URL ({e})") from None
        self.cache = ResponseCache(self.cache_path)
        if self.model is None:
            self.model = await self._first_model()
        return self

    async def __aexit__(self, *exc) -> None:
        if self._client is not None:
            await self._client.aclose()
        if self.cache is not None:
            self.cache.close()

    async def _first_model(self) -> str:
        """Like AudioBench: the first model the server lists (one judge model per server)."""
        try:
            return (await self._client.list_models())[0]
        except (EndpointError, IndexError) as e:
            reason = _failure(e) if isinstance(e, EndpointError) else "the list is empty"
            raise JudgeUnavailable(f"judge {self.base_url}: cannot list models ({reason}); pass --judge-model") from None

    def request_key(self, prompt: str) -> str:
        return request_hash(self._body(prompt))

    def _body(self, prompt: str) -> dict:
        return chat_body(self.model, prompt, self.max_tokens, self.temperature)

    async def complete(self, prompt: str) -> tuple[str, bool]:
        """Judge response text for ``prompt`` and whether it came from the cache.

        Only real answers are cached: a reply without text (no choices, empty content, not JSON)
        is retried, and when every try gives one the row's text is ``""`` (a parse failure,
        counted) but nothing is stored, so a rerun asks again; an empty answer cached by an
        older version is asked again too.
        """
        body = self._body(prompt)
        key = request_hash(body)
        cached = self.cache.get(key) if self.cache is not None else None
        if cached:
            return cached, True
        try:
            text = await self._client.chat(body, need_answer=True)
        except RetriesExhausted as e:
            if e.status is not None and e.status < 300:  # the judge answered, but never with text
                log.warning("judge gave no text after %d tries (%s); scored as a failure, not cached",
                            len(e.failures), e.failures[-1])
                return "", False
            raise JudgeUnavailable(f"judge {self._client.chat_url} failed after {len(e.failures)} tries ({_failure(e)})") from None
        except EndpointError as e:
            raise JudgeUnavailable(f"judge {self._client.chat_url} failed ({_failure(e)})") from None
        if self.cache is not None:
            self.cache.put(key, text)
        return text, False

    async def judge(self, row: dict) -> dict:
        task = row["task"]
        out: dict = {}
        if task in MAX_RATING:
            rubric = "binary" if MAX_RATING[task] == 1 else "open"
            prompt = load_rubric(rubric).format(reference=row["reference"], prediction=row["prediction"],
                                                question=row.get("question") or "")
            text, cached = await self.complete(prompt)
            rating = parse_score(text, "Rating", MAX_RATING[task])
            out["score"] = float(rating or 0)
            out["success"] = rating is not None
            out["judge"] = {"name": self.name, "response": text, "cached": cached}
            if not text:
                out["judge"]["failed"] = "no text in the judge's replies"  # rescored on a rerun
        elif task == "asr":
            out = OfflineJudge().judge(row)  # WER needs no judge
        if row.get("quotes") and row.get("transcript") and row.get("gold"):
            out.update(await self.judge_quotes(row))
        return out

    async def judge_quotes(self, row: dict) -> dict:
        prompt = load_rubric("quotes").format(reference=row["gold"], transcript=row["transcript"],
                                              quotes=json.dumps(row["quotes"], ensure_ascii=False))
        text, _ = await self.complete(prompt)
        if not text:
            return {"groundedness": 0.0, "relevance": 0.0,
                    "quote_judge": {"response": "", "success": False, "failed": "no text in the judge's replies"}}
        g = parse_score(text, "Groundedness Score", 2)
        r = parse_score(text, "Relevance Score", 2)
        return {"groundedness": float(g or 0), "relevance": float(r or 0),
                "quote_judge": {"response": text, "success": g is not None and r is not None}}


def _failure(e: EndpointError) -> str:
    """What went wrong, with the server's words for an HTTP error."""
    if isinstance(e, (EndpointRejected, RequestRejected)):
        return f"HTTP {e.status}: {e.body[:200]}"
    return e.detail
