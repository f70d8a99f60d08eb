"""A tiny OpenAI-compatible chat server that answers like a teacher and misbehaves on demand.

For tests, the throughput benchmark and offline demos of the HTTP path. It speaks just enough
HTTP/1.1 (keep-alive, Content-Length) over asyncio streams to be cheap at hundreds of requests per
second. Answers are composed from the prompt's ``Transcript: "..."`` and ``... label: X`` lines, so
they pass the teacher checks unless a fault says otherwise.

Faults are scripted per transcript substring and consumed in order, e.g.
``{"best day": ["500", "timeout"]}``: the first request whose prompt contains "best day" gets a 500,
the second hangs past the client's timeout, the third is answered normally. Modes: ``500``,
``429``, ``404``, ``400``, ``timeout`` (sleeps ``hang_s``), ``close`` (drops the connection), ``nonjson``,
``empty`` (empty content), ``nochoices`` (a completion with ``"choices": []``), ``garbage`` (200
with random bytes), ``truncated`` (headers and half the body, then the connection closes), ``badquote`` (quotes words not in the transcript), ``wronglabel``,
``slow`` (answers after ``slow_s``).

Audio chat (an audio LLM under evaluation): a user turn whose content is a list of parts, ``text``
and ``input_audio`` (``{"data": base64, "format": "wav"}``) as OpenAI and vLLM take them. The text
parts are the prompt (faults match it); every audio part must decode to a wav file, else the
request gets a 400 like a real server's; the decoded clips are kept in ``audio`` as
``(sample rate, samples)`` (float32, (T,) mono or (T, C)). ``audio_answer(prompt, sr, wave)``
writes the reply (default: the teacher-like answer to the prompt); ``text_answer(prompt)`` does the
same for plain text turns (e.g. a judge's rating).

    python -m emoreason.testing.fakeserver --port 8123 --delay 0.05   # prints READY <url>
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import io
import json
import re
import threading
from collections import defaultdict
from typing import Callable

import numpy as np

_TRANSCRIPT_RE = re.compile(r'^Transcript: "(.*)"\s*$', re.M)
_LABEL_RE = re.compile(r"^(?:Emotion|Sentiment) label: (\S+)\s*$", re.M)
_TRUNCATED = 299
"""Internal status of a reply sent as a 200 whose body is cut off half-way."""
_REASONS = {400: "Bad Request", 200: "OK", 500: "Internal Server Error", 429: "Too Many Requests", 404: "Not Found"}


def default_answer(prompt: str, fault: str | None = None) -> str:
    """A teacher-like answer that states the label and quotes the transcript's first words."""
    t = _TRANSCRIPT_RE.search(prompt)
    lab = _LABEL_RE.search(prompt)
    transcript = t.group(1) if t else ""
    label = lab.group(1) if lab else "neutral"
    if fault == "wronglabel":
        label = "surprised" if label != "surprised" else "sad"
    words = transcript.split()[:6]
    quote = " ".join(words).strip(".,!?;:") if fault != "badquote" else "purple elephants dance at midnight"
    if not quote:
        return f"The speaker is {label}, judging by the delivery."
    return f'The speaker is {label}. When they say "{quote}", the wording shows it.'


AudioAnswer = Callable[[str, int, np.ndarray], str]
"""(prompt text, sample rate, samples) -> reply text, for chat turns that carry audio."""


def split_content(content: str | list) -> tuple[str, list[dict]]:
    """A user turn's content -> (its text, its ``input_audio`` objects). A plain string is all text."""
    if isinstance(content, str):
        return content, []
    text = "\n".join(p.get("text", "") for p in content if p.get("type") == "text")
    return text, [p.get("input_audio") or {} for p in content if p.get("type") == "input_audio"]


def decode_wav(part: dict) -> tuple[int, np.ndarray]:
    """An ``input_audio`` object -> (sample rate, float32 samples); ValueError saying what is wrong."""
    import soundfile as sf

    if part.get("format") != "wav":
        raise ValueError(f"input_audio format {part.get('format')!r} is not 'wav'")
    try:
        blob = base64.b64decode(part.get("data") or "", validate=True)
        data, sr = sf.read(io.BytesIO(blob), dtype="float32")
    except (binascii.Error, ValueError, RuntimeError, TypeError) as e:
        raise ValueError(f"input_audio data is not base64 of a wav file ({e})") from None
    return sr, data


class FakeTeacherServer:
    """The server; ``requests`` counts chat requests, ``bodies`` keeps their JSON bodies, ``audio``
    the clips decoded from ``input_audio`` parts, in arrival order."""

    def __init__(self, delay_s: float = 0.0, faults: dict[str, list[str]] | None = None, hang_s: float = 3.0,
                 slow_s: float = 0.3, model: str = "fake-teacher", audio_answer: AudioAnswer | None = None,
                 text_answer: Callable[[str], str] | None = None) -> None:
        self.delay_s, self.hang_s, self.slow_s, self.model = delay_s, hang_s, slow_s, model
        self.faults: dict[str, list[str]] = defaultdict(list, {k: list(v) for k, v in (faults or {}).items()})
        self.audio_answer = audio_answer
        self.text_answer = text_answer
        self.requests = 0
        self.bodies: list[dict] = []
        self.audio: list[tuple[int, np.ndarray]] = []
        self._server: asyncio.base_events.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- lifecycle -----------------------------------------------------------------------
    async def serve(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port, backlog=512)
        self.port = self._server.sockets[0].getsockname()[1]

    def start_in_thread(self, port: int = 0) -> "FakeTeacherServer":
        """Run on a daemon thread with its own event loop; returns once it listens."""
        ready = threading.Event()

        def main() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.serve(port))
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=main, daemon=True, name="fake-teacher")
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake teacher server did not start")
        return self

    def stop(self) -> None:
        """Stop listening and drop open connections (like a server that died)."""
        if self._loop is None:
            return

        async def shutdown() -> None:
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop = None

    def __enter__(self) -> "FakeTeacherServer":
        return self.start_in_thread()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- HTTP ------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path = lines[0].split(" ")[:2]
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                status, payload = await self._route(method, path, body)
                if status is None:  # "close": drop the connection without answering
                    return
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(data)}\r\n\r\n").encode()
                if status == _TRUNCATED:  # "truncated": a 200 whose body stops half-way
                    head = head.replace(f"{_TRUNCATED} Error".encode(), b"200 OK")
                    writer.write(head + data[: len(data) // 2])
                    await writer.drain()
                    return
                writer.write(head + data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            writer.close()

    async def _route(self, method: str, path: str, body: bytes) -> tuple[int | None, object]:
        if method == "GET" and path.rstrip("/").endswith("/models"):
            return 200, {"object": "list", "data": [{"id": self.model, "object": "model"}]}
        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            return 404, {"error": {"message": f"no route {method} {path}"}}
        self.requests += 1
        req = json.loads(body)
        self.bodies.append(req)
        prompt, parts = split_content(req["messages"][-1]["content"])
        try:
            clips = [decode_wav(part) for part in parts]
        except ValueError as e:
            return 400, {"error": {"message": str(e)}}
        self.audio.extend(clips)
        fault = next((modes.pop(0) for key, modes in self.faults.items() if modes and key in prompt), None)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if fault == "timeout":
            await asyncio.sleep(self.hang_s)
        elif fault == "slow":
            await asyncio.sleep(self.slow_s)
        if fault in ("500", "429", "404", "400"):
            return int(fault), {"error": {"message": f"scripted {fault}"}}
        if fault == "close":
            return None, None
        if fault == "nonjson":
            return 200, b"<html>502 Bad Gateway</html>"
        if fault == "garbage":
            return 200, bytes(range(256))[::-1] * 2
        if fault == "nochoices":
            return 200, {"id": f"cmpl-{self.requests}", "object": "chat.completion", "choices": []}
        if fault == "empty":
            content = ""
        elif clips and self.audio_answer is not None:
            content = self.audio_answer(prompt, *clips[0])
        elif self.text_answer is not None:
            content = self.text_answer(prompt)
        else:
            content = default_answer(prompt, fault)
        return (_TRUNCATED if fault == "truncated" else 200), {
            "id": f"cmpl-{self.requests}", "object": "chat.completion", "model": req.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        }


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - exercised through subprocess
    p = argparse.ArgumentParser(description="Fake OpenAI-compatible teacher server (tests, benchmark).")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--delay", type=float, default=0.0, help="seconds before every answer")
    p.add_argument("--faults", default="{}", help='JSON {"transcript substring": ["500", "timeout", ...]}')
    p.add_argument("--hang", type=float, default=3.0, help="seconds a 'timeout' fault sleeps")
    args = p.parse_args(argv)
    server = FakeTeacherServer(delay_s=args.delay, faults=json.loads(args.faults), hang_s=args.hang)

    async def run() -> None:
        await server.serve(args.port)
        print(f"READY {server.url}", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":  # pragma: no cover
    main()
