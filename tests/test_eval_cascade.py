"""The cascade's text step against a real local OpenAI-compatible server (shared llm_client):
answers, model discovery, and a refused request that stops the run with one line and loses nothing.
The ASR step is replaced by the manifest transcript (the packaged Whisper is tested in test_eval_run)."""
import asyncio
import json

import pytest

from emoreason.data.manifest import read_manifest
from emoreason.errors import UserError
from emoreason.eval.cascade import _run
from emoreason.testing.fakeserver import FakeTeacherServer
from emoreason.testing.fixtures import make_manifest


class TranscriptASR:
    """Stands in for WhisperASR: 'recognises' each clip as the next transcript in line."""

    def __init__(self, transcripts):
        self.transcripts = list(transcripts)

    def transcribe(self, waves):
        return [self.transcripts.pop(0) for _ in waves]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    manifest = make_manifest(tmp_path_factory.mktemp("cascade"), audio=False)
    return manifest, [r for r in read_manifest(manifest) if r.task in ("emotion", "sentiment")]


def _lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_llm_text_step_answers_every_row_with_the_listed_model(corpus, tmp_path):
    manifest, rows = corpus
    out = tmp_path / "preds.jsonl"
    with FakeTeacherServer() as server:
        asyncio.run(_run(TranscriptASR(r.transcript for r in rows), manifest, rows, out, server.url, None))
        bodies = server.bodies
    preds = _lines(out)
    assert [p["id"] for p in preds] == [r.id for r in rows]
    assert len(bodies) == len(rows) and {b["model"] for b in bodies} == {"fake-teacher"}
    assert all(b["max_tokens"] == 256 and b["temperature"] == 0.0 for b in bodies)
    assert rows[0].transcript in bodies[0]["messages"][0]["content"]
    # the fake server's answer to a prompt without a "Transcript:" line
    assert {p["prediction"] for p in preds} == {"The speaker is neutral, judging by the delivery."}
    assert all(p["asr_transcript"] == r.transcript for p, r in zip(preds, rows))


def test_refused_request_is_one_line_and_the_rerun_resumes(corpus, tmp_path):
    manifest, rows = corpus
    out = tmp_path / "preds.jsonl"
    with FakeTeacherServer(faults={rows[2].transcript: ["400"]}) as server:
        with pytest.raises(UserError, match=r"cascade LLM .* failed \(HTTP 400: .*scripted 400.*\); 2 new rows were kept"):
            asyncio.run(_run(TranscriptASR(r.transcript for r in rows), manifest, rows, out, server.url, "m"))
        assert [p["id"] for p in _lines(out)] == [r.id for r in rows[:2]]
        rest = rows[2:]
        asyncio.run(_run(TranscriptASR(r.transcript for r in rest), manifest, rest, out, server.url, "m"))
    assert [p["id"] for p in _lines(out)] == [r.id for r in rows]


def test_unreachable_endpoint_is_a_user_error(corpus, tmp_path):
    manifest, rows = corpus
    with FakeTeacherServer() as server:
        url = server.url  # closed on exit: nothing listens there any more
    with pytest.raises(UserError, match="could not connect"):
        asyncio.run(_run(TranscriptASR([]), manifest, rows, tmp_path / "p.jsonl", url, None))
