"""The OpenAI-compatible API of ``emoreason serve``, with the real ``openai`` SDK as the client
against real uvicorn servers on 127.0.0.1 (the tiny packaged test model); plus batching across
requests, the limits (size, key, queue, time budget, CORS) and the one error shape."""
from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import soundfile as sf

openai = pytest.importorskip("openai")  # a test dependency (pyproject's dev extra)

from emoreason.inference.engine import Engine  # noqa: E402
from emoreason.inference.server import create_app  # noqa: E402
from emoreason.inference.server.limits import ServerLimits  # noqa: E402

SR = 16_000
MODEL = "tiny"
KEY = "s3cret-key"


def _wav(seconds: float, freq: float = 220.0) -> bytes:
    t = np.arange(int(seconds * SR)) / SR
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _audio_message(wav: bytes, text: str | None = None, as_url: bool = False) -> list[dict]:
    b64 = base64.b64encode(wav).decode()
    part = ({"type": "audio_url", "audio_url": {"url": f"data:audio/wav;base64,{b64}"}} if as_url
            else {"type": "input_audio", "input_audio": {"data": b64, "format": "wav"}})
    content = ([{"type": "text", "text": text}] if text else []) + [part]
    return [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": content}]


def _serve(app) -> Iterator[str]:
    """The app on a real uvicorn server (``emoreason.testing.server``); yields its base URL."""
    from emoreason.testing.server import serve_in_thread

    return serve_in_thread(app)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    from emoreason.testing.tiny import save_tiny_run

    return Engine.load(save_tiny_run(tmp_path_factory.mktemp("run")), device="cpu", max_seconds=120)


@pytest.fixture(scope="module")
def base_url(engine) -> Iterator[str]:
    """Default limits except a 2 MB body limit."""
    with _serve(create_app(engine, max_new_tokens=6, limits=ServerLimits(max_body_bytes=2 * 1024 * 1024, max_seconds=120),
                           model_id=MODEL)) as url:
        yield url


@pytest.fixture(scope="module")
def gather_url(engine) -> Iterator[str]:
    """A long gathering window (0.8 s), so concurrent requests surely share a batch."""
    with _serve(create_app(engine, max_new_tokens=4, limits=ServerLimits(max_seconds=120, max_wait_s=0.8), model_id=MODEL)) as url:
        yield url


@pytest.fixture(scope="module")
def strict_url(engine) -> Iterator[str]:
    """An API key, a queue of one, a 1 s gathering window, a 0.5 s time budget, and CORS for one origin."""
    limits = ServerLimits(max_seconds=120, max_queue=1, max_wait_s=1.0, request_timeout_s=0.5, api_key=KEY,
                          cors_origins=("http://localhost:3000",))
    with _serve(create_app(engine, max_new_tokens=4, limits=limits, model_id=MODEL)) as url:
        yield url


def _client(url: str, key: str = "unused") -> "openai.OpenAI":
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=120)


def _assert_error_shape(body: dict, status_type: str) -> dict:
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == status_type
    assert error["message"] and "\n" not in error["message"]
    return error


# ---------------------------------------------------------------------- the SDK, happy paths
def test_models_list(base_url):
    models = _client(base_url).models.list()
    assert [m.id for m in models.data] == [MODEL] and models.data[0].owned_by == "emoreason"


def test_chat_completion_with_input_audio(base_url, engine):
    done = _client(base_url).chat.completions.create(model=MODEL, messages=_audio_message(_wav(1.5)), max_tokens=6)
    choice = done.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    analysis = done.model_extra["emoreason"]  # the documented extra field, kept by the SDK
    assert analysis["task"] == "emotion" and analysis["duration"] == 1.5
    assert analysis["label"] in engine.labels("emotion") and sum(analysis["scores"].values()) == pytest.approx(1.0)
    assert analysis["explanation"] == choice.message.content and analysis["transcript"]["source"] == "model-asr"
    assert {"quotes", "cues", "segments"} <= set(analysis)
    assert done.usage.completion_tokens == len(engine.model.tokenizer(choice.message.content, add_special_tokens=False)["input_ids"])


def test_chat_completion_matches_the_engine_and_audio_url(base_url, engine):
    """Same clip, same settings: the server's answer is the engine's (batching changes nothing)."""
    wav = _wav(1.2, freq=330)
    done = _client(base_url).chat.completions.create(model=MODEL, messages=_audio_message(wav, "How does the speaker feel?",
                                                                                           as_url=True), max_tokens=5)
    [direct] = engine.analyze([("clip.wav", wav)], max_new_tokens=5, prompt="How does the speaker feel?")
    analysis = done.model_extra["emoreason"]
    assert analysis["scores"] == pytest.approx(direct.scores, abs=1e-5) and analysis["explanation"] == direct.explanation


def test_chat_completion_sqa_text_part_is_the_question(base_url):
    done = _client(base_url).chat.completions.create(model=MODEL, messages=_audio_message(_wav(1.0), "Who is speaking?"),
                                                     extra_body={"task": "sqa", "transcript": "none"}, max_tokens=4)
    analysis = done.model_extra["emoreason"]
    assert analysis["task"] == "sqa" and analysis["question"] == "Who is speaking?" and analysis["transcript"] is None
    assert done.choices[0].message.content == analysis["answer"]


def test_chat_completion_streams_token_by_token(base_url):
    wav = _wav(1.3, freq=180)
    client = _client(base_url)
    whole = client.chat.completions.create(model=MODEL, messages=_audio_message(wav), max_tokens=12)
    chunks = list(client.chat.completions.create(model=MODEL, messages=_audio_message(wav), max_tokens=12, stream=True,
                                                 stream_options={"include_usage": True}))
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(deltas) == whole.choices[0].message.content  # the pieces add up to the whole answer
    assert len(deltas) >= 2, deltas  # it streamed, not one final piece
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].model_extra["emoreason"]["scores"] == pytest.approx(whole.model_extra["emoreason"]["scores"])
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_stream_of_bad_audio_is_an_http_error(base_url):
    """Settings and audio are checked before the stream starts: a proper 400, not a 200 stream."""
    with pytest.raises(openai.BadRequestError) as bad:
        _client(base_url).chat.completions.create(model=MODEL, messages=_audio_message(b"not audio at all" * 9), stream=True)
    assert "not a readable audio file" in bad.value.body["message"]


def test_stream_past_its_time_budget_ends_with_one_error_event(strict_url):
    """Errors after the status line (here the 0.5 s budget, spent in the 1 s gathering window)
    come as one {"error"} event before [DONE]."""
    import json

    time.sleep(1.2)  # an earlier test's request may still hold the queue of one
    with httpx.stream("POST", f"{strict_url}/v1/chat/completions", timeout=60, headers={"authorization": f"Bearer {KEY}"},
                      json={"model": MODEL, "stream": True, "messages": _audio_message(_wav(0.5))}) as r:
        assert r.status_code == 200
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]" and json.loads(events[0])["choices"][0]["delta"]["role"] == "assistant"
    error = _assert_error_shape(json.loads(events[-2]), "timeout_error")
    assert error["code"] == "request_timeout"


def test_audio_transcriptions(base_url, engine):
    client = _client(base_url)
    wav = _wav(1.1)
    text = client.audio.transcriptions.create(model=MODEL, file=("clip.wav", wav, "audio/wav"))
    [direct] = engine.transcribe([("clip.wav", wav)], max_new_tokens=6)
    assert text.text == direct.transcript.text
    plain = client.audio.transcriptions.create(model=MODEL, file=("clip.wav", wav), response_format="text")
    assert plain == direct.transcript.text or plain.strip() == direct.transcript.text.strip()
    verbose = client.audio.transcriptions.create(model=MODEL, file=("clip.wav", wav), response_format="verbose_json")
    assert verbose.duration == pytest.approx(1.1) and verbose.text == direct.transcript.text


# ---------------------------------------------------------------------- errors, one shape
def test_bad_audio_unknown_model_and_validation_errors(base_url):
    client = _client(base_url)
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=MODEL, messages=_audio_message(b"RIFF garbage" * 10))
    error = _assert_error_shape(bad.value.body if "error" in bad.value.body else {"error": bad.value.body}, "invalid_request_error")
    assert "not a readable audio file" in error["message"] and error["code"] == "invalid_audio"
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-4o", messages=_audio_message(_wav(0.5)))
    assert "not served here" in str(missing.value)
    with pytest.raises(openai.UnprocessableEntityError) as invalid:
        client.chat.completions.create(model=MODEL, messages=_audio_message(_wav(0.5)), n=2)
    assert invalid.value.status_code == 422
    r = httpx.post(f"{base_url}/v1/chat/completions", json={"model": MODEL, "messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]})
    error = _assert_error_shape(r.json(), "invalid_request_error")
    assert r.status_code == 422 and error["param"].startswith("messages[0].content")
    r = httpx.post(f"{base_url}/v1/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "audio_url", "audio_url": {"url": "http://example.invalid/a.wav"}}]}]})
    assert r.status_code == 400 and "fetches no URLs" in _assert_error_shape(r.json(), "invalid_request_error")["message"]
    r = httpx.post(f"{base_url}/v1/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "no audio"}]})
    assert r.status_code == 400 and "exactly one audio part" in r.json()["error"]["message"]
    r = httpx.get(f"{base_url}/v1/nothing-here")
    assert r.status_code == 404 and _assert_error_shape(r.json(), "invalid_request_error")["code"] == "not_found"


def test_long_instruction_is_refused(base_url):
    r = httpx.post(f"{base_url}/v1/chat/completions", json={"model": MODEL, "messages": _audio_message(_wav(0.5), "why? " * 500)})
    assert r.status_code == 400 and "at most 2000" in _assert_error_shape(r.json(), "invalid_request_error")["message"]


def test_oversized_bodies_are_413_while_streaming_in(base_url):
    big = _wav(70.0)  # 2.2 MB, over the 2 MB limit
    with pytest.raises(openai.APIStatusError) as e:
        _client(base_url).audio.transcriptions.create(model=MODEL, file=("big.wav", big))
    assert e.value.status_code == 413
    # no Content-Length (chunked): refused once the count passes the limit, not after spooling
    def chunks() -> Iterator[bytes]:
        yield b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n"
        for _ in range(40):
            yield b"\0" * 100_000
    r = httpx.post(f"{base_url}/analyze", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"}, timeout=60)
    assert r.status_code == 413 and _assert_error_shape(r.json(), "invalid_request_error")["code"] == "request_too_large"
    assert httpx.get(f"{base_url}/health").status_code == 200


def test_api_key(strict_url):
    with pytest.raises(openai.AuthenticationError) as e:
        _client(strict_url, key="wrong").models.list()
    assert e.value.status_code == 401 and e.value.body["code"] == "invalid_api_key"
    assert [m.id for m in _client(strict_url, key=KEY).models.list().data] == [MODEL]
    assert httpx.post(f"{strict_url}/analyze", files={"file": ("a.wav", _wav(0.5))}).status_code == 401
    assert httpx.get(f"{strict_url}/health").status_code == 200  # public: health, page, docs
    assert httpx.get(f"{strict_url}/analyze", headers={"x-api-key": KEY}).status_code == 405


def test_cors_only_for_the_allowed_origin(strict_url, base_url):
    preflight = {"origin": "http://localhost:3000", "access-control-request-method": "POST"}
    r = httpx.options(f"{strict_url}/v1/chat/completions", headers=preflight)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://localhost:3000"
    r = httpx.options(f"{strict_url}/v1/chat/completions", headers={**preflight, "origin": "http://evil.test"})
    assert "access-control-allow-origin" not in r.headers
    r = httpx.get(f"{base_url}/health", headers={"origin": "http://localhost:3000"})
    assert "access-control-allow-origin" not in r.headers  # off unless --cors


def test_queue_full_is_429_and_time_budget_504(strict_url):
    """Queue of one: while the first request waits out the 1 s gathering window, a second is
    refused (429); the first passes its 0.5 s budget there and gets 504."""
    client = _client(strict_url, key=KEY)
    time.sleep(1.2)  # an earlier test's request may still hold the queue of one
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(client.chat.completions.create, model=MODEL, messages=_audio_message(_wav(0.5)))
        time.sleep(0.25)
        with pytest.raises(openai.RateLimitError) as full:
            client.chat.completions.create(model=MODEL, messages=_audio_message(_wav(0.5)))
        assert full.value.body["code"] == "queue_full"
        with pytest.raises(openai.APIStatusError) as slow:
            first.result()
    assert slow.value.status_code == 504 and slow.value.body["type"] == "timeout_error"


# ---------------------------------------------------------------------- batching across requests
def test_concurrent_requests_share_one_batch(gather_url, engine):
    client = _client(gather_url)
    clips = [_wav(1.0, 200), _wav(1.4, 300)]
    with ThreadPoolExecutor(2) as pool:
        raws = list(pool.map(lambda wav: client.chat.completions.with_raw_response.create(
            model=MODEL, messages=_audio_message(wav), max_tokens=4), clips))
    batches = {raw.headers["x-emoreason-batch"] for raw in raws}
    assert len(batches) == 1 and batches.pop().endswith(";requests=2")  # one engine call for both
    direct = engine.analyze([("a", clips[0]), ("b", clips[1])], max_new_tokens=4)
    for raw, want in zip(raws, direct):  # each caller got its own clip's answer
        got = raw.parse().model_extra["emoreason"]
        assert got["duration"] == want.duration and got["scores"] == pytest.approx(want.scores, abs=1e-5)
        assert got["explanation"] == want.explanation
    assert httpx.get(f"{gather_url}/health").json()["batches"]["largest"] >= 2


HOSTILE = r"""
import json, sys, threading, time, httpx
url, seconds = sys.argv[1], float(sys.argv[2])
end = time.monotonic() + seconds  # or earlier: when the test closes our stdin
codes = []

def stop_on_eof():
    global end
    sys.stdin.read()
    end = 0.0

threading.Thread(target=stop_on_eof, daemon=True).start()

def slow_upload():  # a body that trickles in, 1 KB every 50 ms
    def body():
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="slow.wav"\r\n\r\n'
        while time.monotonic() < end:
            yield b"\0" * 1024
            time.sleep(0.05)
    try:
        httpx.post(url + "/analyze", content=body(), headers={"content-type": "multipart/form-data; boundary=x"}, timeout=60)
    except httpx.HTTPError:
        pass

def huge_field():  # a 900 kB prompt
    while time.monotonic() < end:
        try:
            codes.append(httpx.post(url + "/analyze", files={"file": ("a.wav", b"RIFF")}, data={"prompt": "x" * 900_000}, timeout=60).status_code)
        except httpx.HTTPError:  # the server may stop reading the body once it refused it
            pass
        time.sleep(0.1)  # a steady stream, not a CPU-bound client loop stealing the 2 cores

def oversized():  # 3 MB against a 2 MB limit
    while time.monotonic() < end:
        try:
            codes.append(httpx.post(url + "/analyze", files={"file": ("big.wav", b"\0" * (3 << 20))}, timeout=60).status_code)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)

threads = [threading.Thread(target=f) for f in (slow_upload, slow_upload, slow_upload, huge_field, oversized)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(sorted(set(codes))))
"""


def test_health_and_normal_requests_answer_while_hostile_requests_are_in_flight(base_url):
    """Slow uploads, huge form fields and oversized bodies in flight (from another process):
    /health answers within 2 s, and a normal request within 2 s of its quiet latency (plus the
    slowdown any busy process causes on 2 cores)."""
    import statistics
    import subprocess
    import sys

    files = {"file": ("ok.wav", _wav(0.5))}
    normal = {"max_new_tokens": "0", "transcript": "none"}

    def timed_normal() -> float:
        t0 = time.monotonic()
        assert httpx.post(f"{base_url}/analyze", files=files, data=normal, timeout=60).status_code == 200
        return time.monotonic() - t0

    quiet = statistics.median(timed_normal() for _ in range(3))
    hostile = subprocess.Popen([sys.executable, "-c", HOSTILE, base_url, "60"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
    try:
        time.sleep(1.5)
        busy = []
        for _ in range(3):
            t0 = time.monotonic()
            assert httpx.get(f"{base_url}/health", timeout=10).status_code == 200
            assert time.monotonic() - t0 < 2.0
            busy.append(timed_normal())
        assert hostile.poll() is None  # they were still in flight
        out, _ = hostile.communicate("", timeout=60)  # EOF: stop
    finally:
        hostile.kill()
    # The hostile client process itself takes CPU from the 2 cores (a CPU-burning process slows
    # a normal request as much); a stalled server would take minutes, not seconds.
    assert statistics.median(busy) < 2.0 + 2 * quiet, (quiet, busy)
    import json

    assert set(json.loads(out)) <= {400, 413}  # refused, never a 5xx


def test_docs_are_local_and_describe_the_api(base_url):
    html = httpx.get(f"{base_url}/docs").text
    assert "/v1/chat/completions" in html and "/v1/audio/transcriptions" in html and "ChatRequest" in html
    assert "http://" not in html and "https://" not in html and "<script" not in html  # nothing from a CDN
    spec = httpx.get(f"{base_url}/openapi.json").json()
    responses = spec["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert {"400", "413", "422", "429"} <= set(responses)
    assert responses["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
