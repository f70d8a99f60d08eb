"""`eval run --endpoint`: an outside audio LLM behind an OpenAI-compatible chat endpoint.

Any server that takes audio as an ``input_audio`` content part of a chat turn (vLLM serving
Qwen2-Audio or another audio model, a hosted audio model) answers the same rows, with the same
per-row instructions as ``eval run --model`` (:func:`emoreason.eval.run.instruction_of`), and its
rows are written with the same fields (:func:`emoreason.eval.run.prediction_row`), so it is scored
the same way and lands on the same ``eval compare`` table as our model.

One request per row, as OpenAI's and vLLM's chat completions take audio::

    {"model": NAME, "messages": [{"role": "user", "content": [
        {"type": "text", "text": INSTRUCTION},
        {"type": "input_audio", "input_audio": {"data": BASE64_WAV, "format": "wav"}}]}],
     "max_tokens": N, "temperature": 0}

The clip is re-encoded to 16 kHz mono 16-bit wav (:func:`wav_base64`) whatever its file holds.
The reply text is the prediction of every task: the transcript (asr), the answer (sqa), the text
the judge reads (emotion / sentiment). An empty reply is kept as an empty prediction (it scores 0);
a reply that is not a chat completion is retried, then stops the run.

Rows are appended as they are answered (:class:`~emoreason.jsonl.ResumableJsonl`), at most
``concurrency`` requests in flight (:func:`~emoreason.jsonl.run_bounded`); a dead or failing
endpoint stops the run with one line saying how many rows were kept, and the same command resumes.
When every row is done the file is rewritten in manifest order, so the bootstrap sees the same
row order whatever order the answers came back in.
"""
from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path
from typing import Any

import httpx

from emoreason.errors import UserError
from emoreason.eval.run import eval_rows, instruction_of, prediction_row
from emoreason.jsonl import ResumableJsonl, run_bounded
from emoreason.llm_client import ChatClient, EndpointError, describe_failure

ENDPOINT_TIMEOUT_S = 300.0
"""Per request: an audio LLM on a busy server prefills a long clip before the first token."""
ENDPOINT_RETRIES = 3
"""Extra tries per request (connection errors, timeouts, HTTP 408/429/5xx, malformed replies)."""
ENDPOINT_CONCURRENCY = 4
"""Requests in flight by default (vLLM batches concurrent requests itself)."""


def wav_base64(path: str | Path) -> str:
    """The clip at ``path`` as base64 of a 16 kHz mono 16-bit PCM wav file (what every audio LLM
    server decodes), read and resampled by :func:`emoreason.audio.load_audio`."""
    import soundfile as sf

    from emoreason.audio import SAMPLE_RATE, load_audio

    buf = io.BytesIO()
    sf.write(buf, load_audio(path), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def audio_chat_body(model: str, instruction: str, audio_b64: str, max_tokens: int) -> dict[str, Any]:
    """A chat-completions body: one user turn with the instruction and the clip, greedy."""
    content = [{"type": "text", "text": instruction},
               {"type": "input_audio", "input_audio": {"data": audio_b64, "format": "wav"}}]
    return {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens,
            "temperature": 0}


def endpoint_predictions(url: str, manifest: str | Path, out_path: str | Path, model: str | None = None,
                         task: str | None = None, limit: int | None = None, seed: int = 0,
                         max_tokens: int = 128, instructions: str = "dataset",
                         concurrency: int = ENDPOINT_CONCURRENCY, api_key: str = "EMPTY",
                         timeout: float = ENDPOINT_TIMEOUT_S, retries: int = ENDPOINT_RETRIES,
                         backoff_s: float = 0.5) -> Path:
    """Ask the audio LLM at ``url`` (``http://host:port/v1``) every emotion / sentiment / sqa / asr
    row of ``manifest`` (only ``task``'s, the first ``limit``); append its rows to ``out_path``.

    ``model``: the name to request (default: the first one ``GET /models`` lists).
    ``instructions``, ``seed``: see :func:`~emoreason.eval.run.instruction_of`. ``max_tokens``:
    the reply's length limit. ``concurrency``: requests in flight. ``timeout`` (seconds),
    ``retries``, ``backoff_s``: per request, see :class:`~emoreason.llm_client.ChatClient`.
    Rows are written with ``model`` = ``endpoint:NAME``. Raises UserError (one line) when the
    endpoint cannot be used; rows answered before are kept and a rerun skips them.
    """
    rows = eval_rows(manifest, task, limit, "evaluate")
    out_path = Path(out_path)
    questions = {r.id: instruction_of(r, instructions, seed) for r in rows}  # a bad source fails before any request
    with ResumableJsonl(out_path) as out:
        todo = [r for r in rows if r.id not in out]
        if todo:
            try:
                client = ChatClient(url, api_key=api_key, timeout=timeout, retries=retries, backoff_s=backoff_s,
                                    concurrency=concurrency)
            except httpx.InvalidURL as e:
                raise UserError(f"--endpoint {url!r} is not a valid URL ({e})") from None
            asyncio.run(_run(client, model, manifest, todo, questions, out, max_tokens))
        # answers come back in any order; the bootstrap resamples by position, so fix the order
        wanted = [r.id for r in rows]
        others = [k for k in out.done if k not in questions]  # rows of another --task / --limit: kept
        if all(k in out for k in wanted):
            out.rewrite_in_order(wanted + others)
    return out_path


async def _run(client: ChatClient, model: str | None, manifest: str | Path, todo: list, questions: dict[str, str],
               out: ResumableJsonl, max_tokens: int) -> None:
    """Answer every row of ``todo``, appending each to ``out`` as soon as it is answered; any
    endpoint failure becomes one UserError saying how many rows were kept."""
    from tqdm import tqdm

    from emoreason.data.manifest import resolve_audio

    appended_before = out.appended
    bar = tqdm(total=len(todo), desc="endpoint", unit="utt", disable=len(todo) < 20)

    async def answer(row) -> None:
        audio = await asyncio.to_thread(wav_base64, resolve_audio(row, manifest))  # file I/O off the loop
        body = audio_chat_body(model, questions[row.id], audio, max_tokens)
        reply = await client.chat(body, allow_empty=True)
        out.append(prediction_row(row, reply, questions[row.id], f"endpoint:{model}"))
        bar.update(1)

    try:
        if model is None:
            model = await _first_model(client)
        await run_bounded(todo, answer, client.concurrency)
    except (EndpointError, UserError) as e:  # UserError: e.g. an unreadable clip, named by load_audio
        what = f"endpoint {client.base_url} failed ({describe_failure(e)})" if isinstance(e, EndpointError) else str(e)
        raise UserError(f"{what}; {out.appended - appended_before} new rows were kept in {out.path}, "
                        "rerun the same command to resume") from None
    finally:
        bar.close()
        await client.aclose()


async def _first_model(client: ChatClient) -> str:
    """The first model the server lists (one served model per vLLM server, as AudioBench assumes)."""
    models = await client.list_models()
    if not models:
        raise UserError(f"endpoint {client.base_url}/models lists no model: pass --endpoint-model")
    return models[0]
