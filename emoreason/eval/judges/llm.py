"""LLM-as-a-judge over any OpenAI-compatible chat endpoint (vLLM, llama.cpp, Ollama, OpenAI).

AudioBench's protocol (FACTS.md): Llama-3-70B-Instruct, max_tokens 512, binary rubric for emotion
and sentiment (score = mean x 100), 0-5 rubric for open-ended SQA (mean x 20), the rating read
from the final "Rating: N"; a rating that cannot be read scores 0 and is counted (success rate).
The quote rubric (paper Fig. 5) rates groundedness and relevance 0-2 each.

Calls are async with bounded concurrency, a per-request timeout, retries with exponential
backoff, and a cache keyed by the request hash (model + prompt + max_tokens), stored append-only
next to the scores, so a rerun never pays twice for the same judgement.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from importlib import resources
from pathlib import Path

from emoreason.errors import UserError
from emoreason.eval.judges import MAX_RATING
from emoreason.eval.judges.offline import OfflineJudge

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


class JudgeCache:
    """Append-only JSONL cache: request hash -> response text."""

    def __init__(self, path: Path | None):
        self.path = path
        self.data: dict[str, str] = {}
        if path is not None and path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    item = json.loads(line)
                    self.data[item["key"]] = item["response"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a torn last line from a crash: ignore it
        self._fh = open(path, "a", encoding="utf-8") if path is not None else None

    def get(self, key: str) -> str | None:
        return self.data.get(key)

    def put(self, key: str, response: str) -> None:
        self.data[key] = response
        if self._fh is not None:
            self._fh.write(json.dumps({"key": key, "response": response}, ensure_ascii=False) + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


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
        self.cache: JudgeCache | None = None
        self._client = None
        self._sem: asyncio.Semaphore | None = None

    @property
    def name(self) -> str:
        return f"llm:{self.model or '?'}@{self.base_url}"

    async def __aenter__(self) -> "LLMJudge":
        import httpx

        self._client = httpx.AsyncClient(timeout=self.timeout, headers={"Authorization": f"Bearer {self.api_key}"})
        self._sem = asyncio.Semaphore(self.concurrency)
        self.cache = JudgeCache(self.cache_path)
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
            r = await self._request("GET", "/models")
            return r["data"][0]["id"]
        except (JudgeUnavailable, KeyError, IndexError, TypeError) as e:
            raise JudgeUnavailable(f"judge {self.base_url}: cannot list models ({e}); pass --judge-model") from None

    async def _request(self, method: str, path: str, body: dict | None = None) -> dict:
        import httpx

        last = ""
        for attempt in range(self.retries + 1):
            try:
                r = await self._client.request(method, self.base_url + path, json=body)
                if r.status_code < 400:
                    return r.json()
                last = f"HTTP {r.status_code}: {r.text[:200]}"
                if r.status_code < 500 and r.status_code != 429:
                    break  # a client error does not heal by retrying
            except (httpx.HTTPError, json.JSONDecodeError) as e:
                last = f"{type(e).__name__}: {e}"
            if attempt < self.retries:
                await asyncio.sleep(self.backoff * 2 ** attempt)
        raise JudgeUnavailable(f"judge {self.base_url}{path} failed after {self.retries + 1} tries ({last})")

    def request_key(self, prompt: str) -> str:
        blob = json.dumps([self.model, prompt, self.max_tokens, self.temperature], ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()

    async def complete(self, prompt: str) -> tuple[str, bool]:
        """Judge response text for ``prompt`` and whether it came from the cache."""
        key = self.request_key(prompt)
        cached = self.cache.get(key) if self.cache else None
        if cached is not None:
            return cached, True
        body = {"model": self.model, "messages": [{"role": "user", "content": prompt}],
                "max_tokens": self.max_tokens, "temperature": self.temperature}
        async with self._sem:
            data = await self._request("POST", "/chat/completions", body)
        try:
            text = data["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            text = ""  # a malformed reply is a parse failure, not a dead endpoint
        if self.cache:
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
        elif task == "asr":
            out = OfflineJudge().judge(row)  # WER needs no judge
        if row.get("quotes") and row.get("transcript") and row.get("gold"):
            out.update(await self.judge_quotes(row))
        return out

    async def judge_quotes(self, row: dict) -> dict:
        prompt = load_rubric("quotes").format(reference=row["gold"], transcript=row["transcript"],
                                              quotes=json.dumps(row["quotes"], ensure_ascii=False))
        text, _ = await self.complete(prompt)
        g = parse_score(text, "Groundedness Score", 2)
        r = parse_score(text, "Relevance Score", 2)
        return {"groundedness": float(g or 0), "relevance": float(r or 0),
                "quote_judge": {"response": text, "success": g is not None and r is not None}}
