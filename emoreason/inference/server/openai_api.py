"""The OpenAI-compatible routes: ``GET /v1/models``, ``POST /v1/chat/completions`` (audio in a
user message, optionally streamed) and ``POST /v1/audio/transcriptions`` (the ASR task).

A chat request is one clip and one question about it: the last user message must hold exactly one
audio part (``input_audio`` with base64 ``data`` + ``format``, or ``audio_url`` with a ``data:``
URL; the server fetches nothing), and its text parts are the instruction (sqa: the question).
System and earlier messages are ignored: the model answers single turns. Extra body fields pick
the task: ``task`` (emotion | sentiment | asr | sqa, default emotion), ``transcript`` (auto | model | whisper | none), ``explain`` (forced | free)
``quotes`` (constrained | free) and ``quote_min_probability`` (0-1), as on ``/analyze``.

The reply's ``message.content`` is the model's text (emotion / sentiment: the explanation, asr:
the transcript, sqa: the answer); the whole structured analysis (label, scores, transcript,
quotes, cues, segments; ``emoreason.inference.results``) is in the extra top-level field
``emoreason`` (the SDK keeps unknown fields: ``completion.emoreason`` / ``model_extra``). With
``stream: true`` the text arrives as server-sent ``chat.completion.chunk`` events token by token
(clips over one 30 s window: at the end, in one piece), the last chunk carries
``finish_reason`` and ``emoreason``, then ``data: [DONE]``.
"""
# No `from __future__ import annotations`: FastAPI reads the route annotations at runtime, and
# UploadFile is imported inside add_openai_routes (see app.py).
import asyncio
import base64
import binascii
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from emoreason.inference.results import AnalysisResult
from emoreason.inference.server.batcher import AnalyzeOptions
from emoreason.inference.server.errors import APIError, error_body
from emoreason.inference.server.service import ServerContext, analyze_clip, batch_header, check_text, submit_clip, wait_job

log = logging.getLogger(__name__)

MAX_PARTS = 16
MAX_MESSAGES = 64
DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?:;[\w-]+=[\w.-]+)*;base64,", re.IGNORECASE)


class TextPart(BaseModel):
    type: Literal["text"]
    text: str = Field(max_length=100_000)


class InputAudio(BaseModel):
    data: str = Field(description="base64-encoded audio file bytes")
    format: str = Field("wav", max_length=16, description="wav, mp3, flac, ogg, ... (any format the server decodes)")


class InputAudioPart(BaseModel):
    type: Literal["input_audio"]
    input_audio: InputAudio


class AudioURL(BaseModel):
    url: str = Field(description="a data: URL (data:audio/wav;base64,...); remote URLs are refused")


class AudioURLPart(BaseModel):
    type: Literal["audio_url"]
    audio_url: AudioURL


ContentPart = Annotated[TextPart | InputAudioPart | AudioURLPart, Field(discriminator="type")]


class ChatMessage(BaseModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | Annotated[list[ContentPart], Field(max_length=MAX_PARTS)] | None = Field(None, max_length=100_000)
    name: str | None = Field(None, max_length=256)


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatRequest(BaseModel):
    """OpenAI's chat completion request (the fields this server reads; others are ignored)."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(max_length=256)
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=0, le=4096)
    max_completion_tokens: int | None = Field(None, ge=0, le=4096)
    temperature: float | None = Field(None, ge=0.0, le=2.0, description="absent or 0: greedy; > 0: sampled")
    n: int = Field(1, ge=1, le=1, description="one choice per request")
    task: Literal["emotion", "sentiment", "asr", "sqa"] = Field("emotion", description="emoreason extension: the task asked")
    transcript: Literal["auto", "model", "whisper", "none"] = Field(
        "auto", description="emoreason extension: where the transcript comes from (auto: Whisper decoder if any, else the model's ASR)")
    quotes: Literal["constrained", "free"] | None = Field(None, description="emoreason extension: quotes held to the transcript")
    explain: Literal["forced", "free"] = Field("forced", description="emoreason extension: the explanation continues the "
                                               "forced-choice label's sentence (forced) or is free")
    quote_min_probability: float | None = Field(None, ge=0.0, le=1.0, description="emoreason extension: constrained quotes "
                                                "may not hold a transcript word of lower Whisper probability")


def _audio_bytes(part: InputAudioPart | AudioURLPart, where: str) -> bytes:
    if isinstance(part, InputAudioPart):
        payload, param = part.input_audio.data, f"{where}.input_audio.data"
    else:
        url, param = part.audio_url.url, f"{where}.audio_url.url"
        match = DATA_URL.match(url)
        if not match:
            raise APIError(400, "audio_url must be a base64 data: URL (data:audio/wav;base64,...); the server fetches no URLs",
                           param, "invalid_audio_url")
        payload = url[match.end():]
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise APIError(400, "audio data is not valid base64", param, "invalid_base64") from None


def parse_chat(ctx: ServerContext, req: ChatRequest) -> tuple[bytes, AnalyzeOptions]:
    """The clip and settings of a chat request; 400 (naming the field) for what cannot be answered."""
    if req.model != ctx.model_id:
        raise APIError(404, f"model {req.model!r} is not served here (GET /v1/models lists {ctx.model_id!r})", "model",
                       "model_not_found")
    users = [i for i, m in enumerate(req.messages) if m.role == "user"]
    if not users:
        raise APIError(400, "no user message: put the audio and the instruction in a user message", "messages")
    index = users[-1]
    content = req.messages[index].content
    parts = [TextPart(type="text", text=content)] if isinstance(content, str) else list(content or [])
    audio = [(j, p) for j, p in enumerate(parts) if not isinstance(p, TextPart)]
    if len(audio) != 1:
        raise APIError(400, f"the last user message must hold exactly one audio part (input_audio or audio_url), got {len(audio)}",
                       f"messages[{index}].content")
    text = "\n".join(p.text.strip() for p in parts if isinstance(p, TextPart) and p.text.strip())
    field = "question" if req.task == "sqa" else "prompt"
    check_text(ctx, f"messages[{index}].content ({field})", text)
    budget = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    options = AnalyzeOptions(
        task=req.task, prompt=None if req.task == "sqa" else (text or None), question=(text or None) if req.task == "sqa" else None,
        max_new_tokens=ctx.default_max_new_tokens if budget is None else budget, transcript=req.transcript,
        quotes=req.quotes, explain=req.explain, quote_min_probability=req.quote_min_probability,
        temperature=req.temperature or 0.0)
    j, part = audio[0]
    return _audio_bytes(part, f"messages[{index}].content[{j}]"), options


def content_of(result: AnalysisResult) -> str:
    """The reply text of a result: asr -> transcript, sqa -> answer, else the explanation."""
    if result.task == "asr":
        return result.transcript.text if result.transcript else ""
    if result.task == "sqa":
        return result.answer or ""
    return result.explanation


def _finish_reason(ctx: ServerContext, content: str, options: AnalyzeOptions) -> tuple[str, int]:
    tokens = ctx.count_tokens(content)
    return ("length" if options.max_new_tokens and tokens >= options.max_new_tokens else "stop"), tokens


def _usage(ctx: ServerContext, options: AnalyzeOptions, completion: int) -> dict[str, int]:
    # prompt_tokens: the instruction's text tokens only (the audio's tokens depend on the encoder)
    prompt = ctx.count_tokens(options.prompt or options.question or "")
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def add_openai_routes(app: Any, ctx: ServerContext, error_responses: dict[int | str, Any]) -> None:
    """Register the /v1 routes on ``app``."""
    from fastapi import File, Form, UploadFile
    from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

    @app.get("/v1/models", tags=["openai"], responses=error_responses)
    async def list_models() -> dict[str, Any]:
        """The one served model (its id is what ``model`` must say)."""
        return {"object": "list", "data": [{"id": ctx.model_id, "object": "model", "created": ctx.created, "owned_by": "emoreason"}]}

    @app.post("/v1/chat/completions", tags=["openai"], responses=error_responses)
    async def chat_completions(req: ChatRequest) -> Any:
        """Analyse the audio of the last user message; ``emoreason`` holds the structured analysis."""
        data, options = await asyncio.to_thread(parse_chat, ctx, req)  # base64 of a big clip: off the event loop
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        head = {"id": cid, "created": created, "model": ctx.model_id}
        if req.stream:
            # Settings, audio and queue room are checked before the stream starts, so those
            # errors get their HTTP status; only later ones (504) come as an event in the stream.
            loop, texts = asyncio.get_running_loop(), asyncio.Queue()
            job = await submit_clip(ctx, "input_audio", data, options, param="messages",
                                    on_text=lambda text: loop.call_soon_threadsafe(texts.put_nowait, text))
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            return StreamingResponse(_stream(ctx, job, texts, head, include_usage), media_type="text/event-stream",
                                     headers={"cache-control": "no-cache"})
        result, outcome = await analyze_clip(ctx, "input_audio", data, options, param="messages")
        content = content_of(result)
        reason, completion = _finish_reason(ctx, content, options)
        body = {**head, "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": reason,
                             "logprobs": None}],
                "usage": _usage(ctx, options, completion), "emoreason": result.to_dict()}
        return JSONResponse(body, headers=batch_header(outcome))

    @app.post("/v1/audio/transcriptions", tags=["openai"], responses=error_responses)
    async def transcriptions(
        file: UploadFile = File(..., description="the audio file"),
        model: str = Form(..., max_length=256),
        response_format: Literal["json", "text", "verbose_json"] = Form("json"),
        temperature: float = Form(0.0, ge=0.0, le=2.0),
        language: str | None = Form(None, max_length=16, description="accepted, not used (the model's ASR is English)"),
    ) -> Any:
        """The ASR task: ``{"text"}`` (json), the bare text (text), or with duration and the analysis (verbose_json)."""
        if model != ctx.model_id:
            raise APIError(404, f"model {model!r} is not served here (GET /v1/models lists {ctx.model_id!r})", "model",
                           "model_not_found")
        name = file.filename or "upload"
        options = AnalyzeOptions(task="asr", max_new_tokens=ctx.default_max_new_tokens, temperature=temperature)
        result, outcome = await analyze_clip(ctx, name, await file.read(), options)
        text = content_of(result)
        headers = batch_header(outcome)
        if response_format == "text":
            return PlainTextResponse(text, headers=headers)
        if response_format == "verbose_json":
            return JSONResponse({"task": "transcribe", "language": language or "english", "duration": result.duration,
                                 "text": text, "segments": [], "emoreason": result.to_dict()}, headers=headers)
        return JSONResponse({"text": text}, headers=headers)


def _sse(obj: Any) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


async def _stream(ctx: ServerContext, job: Any, texts: "asyncio.Queue[str]", head: dict[str, Any],
                  include_usage: bool) -> AsyncIterator[str]:
    """The server-sent events of one streamed chat completion.

    The batcher thread puts this request's text so far on ``texts`` (``Job.on_text``); each new
    part becomes one chunk. Errors after the stream started (the status line is sent) come as one
    ``{"error"}`` event before ``[DONE]``."""
    options = job.options

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        return _sse({**head, "object": "chat.completion.chunk",
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra})

    yield chunk({"role": "assistant", "content": ""})
    task = asyncio.ensure_future(wait_job(ctx, job, param="messages"))
    sent = ""
    try:
        while True:
            getter = asyncio.ensure_future(texts.get())
            done, _ = await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                text = getter.result()
                if text.startswith(sent) and len(text) > len(sent):
                    yield chunk({"content": text[len(sent):]})
                    sent = text
                continue
            getter.cancel()
            break
        result, _ = task.result()
    except APIError as e:
        yield _sse(error_body(e.status, e.message, e.param, e.code))
        yield "data: [DONE]\n\n"
        return
    except Exception as e:  # noqa: BLE001 - the status line is out: say it in the stream, in one line
        log.exception("streamed chat completion failed")
        yield _sse(error_body(500, f"internal error ({type(e).__name__})"))
        yield "data: [DONE]\n\n"
        return
    finally:
        if not task.done():  # the client went away mid-stream
            task.cancel()
    while not texts.empty():  # text that arrived with the result
        text = texts.get_nowait()
        if text.startswith(sent) and len(text) > len(sent):
            yield chunk({"content": text[len(sent):]})
            sent = text
    content = content_of(result)
    if content.startswith(sent) and len(content) > len(sent):
        yield chunk({"content": content[len(sent):]})  # the rest (or all of it, for long clips)
    reason, completion = _finish_reason(ctx, content, options)
    yield chunk({}, reason, emoreason=result.to_dict())
    if include_usage:
        yield _sse({**head, "object": "chat.completion.chunk", "choices": [], "usage": _usage(ctx, options, completion)})
    yield "data: [DONE]\n\n"
