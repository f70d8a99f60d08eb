"""LLM judge against a real OpenAI-compatible HTTP server on 127.0.0.1: ratings, parse failures,
cache, and a server that dies mid-run followed by a resumed run."""
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from emoreason.errors import UserError
from emoreason.eval.judges.llm import LLMJudge, parse_score
from emoreason.eval.scoring import score_file


class FakeJudgeServer:
    """/v1/models and /v1/chat/completions. Rates 1 when the model answer contains the reference's
    last word, answers without a rating for predictions containing GARBLE, and drops connections
    once ``die_after`` completions were served (until revived)."""

    def __init__(self, die_after: int | None = None):
        self.die_after = die_after
        self.completions = 0
        self.prompts: list[str] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep test output quiet
                pass

            def _send(self, obj, code=200):
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path.endswith("/models"):
                    self._send({"object": "list", "data": [{"id": "fake-judge", "object": "model"}]})
                else:
                    self._send({"error": "not found"}, 404)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    if outer.die_after is not None and outer.completions >= outer.die_after:
                        self.close_connection = True
                        self.connection.close()  # the endpoint is gone: no response at all
                        return
                    outer.completions += 1
                prompt = body["messages"][0]["content"]
                outer.prompts.append(prompt)
                self._send({"choices": [{"message": {"role": "assistant", "content": outer.answer(prompt)}}]})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @staticmethod
    def answer(prompt: str) -> str:
        if "[Ground Truth Transcript]" in prompt:
            return "Groundedness Score: 2\nRelevance Score: 1\nExplanation: fine."
        ref = re.search(r"\[Reference Answer\]\n(.*)\n", prompt).group(1)
        pred = re.search(r"\[Model Answer\]\n(.*)\n", prompt).group(1)
        if "GARBLE" in pred:
            return "Explanation: I am not sure what to say."
        word = ref.rstrip(".").split()[-1].lower()
        return f"Explanation: The reference answer is {word}. Rating: 0 (draft)\nRating: {int(word in pred.lower())}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _write_predictions(path, n=12):
    rows = []
    for i in range(n):
        label = ["angry", "sad", "neutral"][i % 3]
        pred = f"Answer {i}: the speaker sounds {label if i % 4 else 'happy'}."  # unique prompts: no cache hits
        if i == 5:
            pred = "GARBLE output"
        rows.append({"id": f"u{i}", "reference": f"The speaker's tone sounds {label}.", "prediction": pred})
    rows.append({"id": "q1", "label": "angry", "prediction": 'The speaker is angry: "get out now" is shouted.',
                 "transcript": "Get out now!"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def _judge(url, tmp_path, **kw):
    return LLMJudge(url, concurrency=3, timeout=5, retries=1, backoff=0.01, cache_path=tmp_path / "out" / "judge_cache.jsonl", **kw)


@pytest.mark.parametrize("text,value", [
    ("Explanation: ok\nRating: 1", 1), ("Rating: 0\nsecond thought\nRating: 1", 1), ("**Rating:** 4", 4),
    ("Rating: 7", None), ("no rating here", None), ("Rating: 2.5", None),
])
def test_parse_score_takes_last_rating(text, value):
    assert parse_score(text, "Rating", 5) == value


def test_llm_judge_scores_and_counts_parse_failures(tmp_path):
    preds = tmp_path / "p.jsonl"
    rows = _write_predictions(preds)
    with FakeJudgeServer() as server:
        metrics = score_file(preds, tmp_path / "out", _judge(server.url, tmp_path), bootstrap=200)
        n_calls = server.completions
    m = metrics["tasks"]["emotion"]
    scored = [json.loads(l) for l in (tmp_path / "out" / "scores.jsonl").read_text().splitlines()]
    assert [r["id"] for r in scored] == [r["id"] for r in rows]  # input order restored
    expected = [int(r["reference"].rstrip(".").split()[-1] in r["prediction"]) for r in rows[:-1]] + [1]
    assert [int(r["score"]) for r in scored] == expected
    assert m["parse_failures"] == 1 and m["success_rate"] == pytest.approx(1 - 1 / len(rows))
    assert m["score"] == pytest.approx(100 * sum(expected) / len(rows))
    assert scored[-1]["groundedness"] == 2 and scored[-1]["relevance"] == 1
    assert m["quotes"]["groundedness"] == 100 and m["quotes"]["relevance"] == 50
    assert n_calls == len(rows) + 1  # one binary rating each + one quote rating
    assert "fake-judge" in metrics["judge"]


def test_dead_endpoint_keeps_scored_rows_and_resume_finishes(tmp_path):
    preds = tmp_path / "p.jsonl"
    rows = _write_predictions(preds)
    out = tmp_path / "out"
    with FakeJudgeServer(die_after=5) as server:
        with pytest.raises(UserError, match="rerun"):
            score_file(preds, out, _judge(server.url, tmp_path), bootstrap=50)
        kept = [json.loads(l) for l in (out / "scores.jsonl").read_text().splitlines()]
        assert 1 <= len(kept) <= 5 and len({r["id"] for r in kept}) == len(kept)
        # the server comes back: the rerun only judges what is missing
        server.die_after = None
        before = len(server.prompts)
        metrics = score_file(preds, out, _judge(server.url, tmp_path), bootstrap=50)
        rerun = server.prompts[before:]
    assert metrics["n"] == len(rows)
    # No kept row is judged again. (Counting calls is not enough: a request of the first run that
    # the server only reads after it came back is counted there too; at most `concurrency` of them.)
    answers = [m.group(1) for m in (re.search(r"\[Model Answer\]\n(.*)\n", p) for p in rerun) if m]
    assert not {r["prediction"] for r in kept} & set(answers)
    assert len(rerun) <= len(rows) + 1 - len(kept) + 3
    final = [json.loads(l) for l in (out / "scores.jsonl").read_text().splitlines()]
    assert [r["id"] for r in final] == [r["id"] for r in rows]


def test_cache_avoids_repeat_requests(tmp_path):
    preds = tmp_path / "p.jsonl"
    _write_predictions(preds, n=4)
    with FakeJudgeServer() as server:
        score_file(preds, tmp_path / "out", _judge(server.url, tmp_path), bootstrap=50)
        first = server.completions
        score_file(preds, tmp_path / "out", _judge(server.url, tmp_path), bootstrap=50, overwrite=True)
        assert server.completions == first  # every judgement came from the request-hash cache
