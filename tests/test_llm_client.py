"""The shared OpenAI-compatible client and cache against a real local server: error classes,
retries, need_answer, request hashing, concurrency bound."""
import asyncio

import pytest

from emoreason.llm_client import (ChatClient, EndpointRejected, RequestRejected, ResponseCache, RetriesExhausted,
                                  chat_body, request_hash)
from emoreason.testing.fakeserver import FakeTeacherServer


def _chat(server, prompt, need_answer=True, **kw):
    async def go():
        client = ChatClient(server.url, timeout=kw.pop("timeout", 2.0), backoff_s=0.01, **kw)
        try:
            return await client.chat(chat_body("m", prompt, 20, 0.0), need_answer=need_answer), client.requests_sent
        finally:
            await client.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("fault,error", [("404", EndpointRejected), ("400", RequestRejected)])
def test_what_a_retry_cannot_fix_is_not_retried(fault, error):
    with FakeTeacherServer(faults={"x": [fault] * 5}) as server:
        with pytest.raises(error) as e:
            _chat(server, "x", retries=3)
        assert server.requests == 1 and e.value.status == int(fault) and "scripted" in e.value.body


def test_retryable_failures_are_retried_then_reported_in_order():
    with FakeTeacherServer(faults={"x": ["500", "429", "nonjson", "empty", "close"]}) as server:
        with pytest.raises(RetriesExhausted) as e:
            _chat(server, "x", retries=4)
        assert server.requests == 5
    assert not e.value.unreachable and e.value.failures[:2] == ["HTTP 500", "HTTP 429"]
    assert e.value.failures[2].startswith("not a chat completion") and e.value.failures[3] == "empty content"
    with FakeTeacherServer(faults={"x": ["500", "timeout"]}, hang_s=1.0) as server:
        text, sent = _chat(server, 'Transcript: "x"', retries=2, timeout=0.3)
    assert sent == 3 and text.startswith("The speaker is")


def test_without_need_answer_an_empty_reply_is_returned_not_retried():
    with FakeTeacherServer(faults={"x": ["empty"]}) as server:
        assert _chat(server, "x", need_answer=False, retries=3) == ("", 1)


def test_unreachable_server_and_concurrency_bound():
    with FakeTeacherServer() as server:
        url = server.url
    with pytest.raises(RetriesExhausted) as e:
        asyncio.run(_closed(url))
    assert e.value.unreachable and "could not connect" in e.value.failures[-1] and len(e.value.failures) == 2

    with FakeTeacherServer(delay_s=0.1) as server:
        async def many():
            client = ChatClient(server.url, concurrency=2, backoff_s=0.01)
            try:
                loop = asyncio.get_running_loop()
                t0 = loop.time()
                await asyncio.gather(*(client.chat(chat_body("m", f"p{i}", 5, 0.0)) for i in range(4)))
                return loop.time() - t0
            finally:
                await client.aclose()

        elapsed = asyncio.run(many())
    assert 0.2 <= elapsed < 0.6  # 4 requests of 0.1 s, 2 at a time: two rounds


async def _closed(url):
    client = ChatClient(url, retries=1, backoff_s=0.01)
    try:
        await client.chat(chat_body("m", "x", 5, 0.0))
    finally:
        await client.aclose()


def test_request_hash_and_cache(tmp_path):
    a = chat_body("m", "hello", 10, 0.0)
    assert request_hash(a) == request_hash(dict(reversed(list(a.items()))))  # key order does not matter
    assert request_hash(a) != request_hash(chat_body("m", "hello", 10, 0.7, seed=1))
    memory = ResponseCache(None)
    memory.put("k", "v")
    assert memory.get("k") == "v" and len(memory) == 1 and memory.hits == 1
    disk = ResponseCache(tmp_path / "sub" / "c.jsonl")
    disk.put("k", {"any": ["json"]})
    disk.close()
    assert ResponseCache(tmp_path / "sub" / "c.jsonl").get("k") == {"any": ["json"]}
