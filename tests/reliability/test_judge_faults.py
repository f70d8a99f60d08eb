"""The LLM judge against a fault-injecting OpenAI-compatible server: transient failures are
retried, never cached, and a judge that answers nothing usable fails the run with one line."""
import json
import re

import pytest

from emoreason.errors import UserError
from emoreason.eval.judges.llm import LLMJudge
from emoreason.eval.scoring import JudgeSuccessTooLow, score_file
from emoreason.testing.fakeserver import FakeTeacherServer

N = 6


def rating(prompt: str) -> str:
    """A judge that rates 1 when the reference's last word is in the answer."""
    ref = re.search(r"\[Reference Answer\]\n(.*)\n", prompt).group(1)
    pred = re.search(r"\[Model Answer\]\n(.*)\n", prompt).group(1)
    word = ref.rstrip(".").split()[-1].lower()
    return f"Explanation: compared.\nRating: {int(word in pred.lower())}"


def predictions(path):
    rows = [{"id": f"u{i}", "reference": f"The speaker sounds {lab}.", "prediction": f"Clip {i}: {lab if i % 2 else 'happy'}."}
            for i, lab in enumerate(["angry", "sad", "neutral"] * (N // 3))]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def judge(server, out, retries=2):
    return LLMJudge(server.url, concurrency=2, timeout=1.0, retries=retries, backoff=0.01,
                    cache_path=out / "judge_cache.jsonl")


@pytest.mark.parametrize("fault", ["500", "429", "timeout", "empty", "nochoices", "truncated", "garbage", "nonjson", "close"])
def test_one_transient_fault_per_row_is_retried_and_scores_are_right(tmp_path, fault):
    preds, out = tmp_path / "p.jsonl", tmp_path / "out"
    rows = predictions(preds)
    faults = {f"Clip {i}:": [fault] for i in range(N)}  # the first try of every row fails
    with FakeTeacherServer(faults=faults, hang_s=1.5, text_answer=rating) as server:
        metrics = score_file(preds, out, judge(server, out), bootstrap=20)
    scores = [json.loads(line)["score"] for line in (out / "scores.jsonl").read_text().splitlines()]
    assert scores == [float(i % 2 == 1) for i in range(len(rows))]
    assert metrics["tasks"]["emotion"]["success_rate"] == 1.0
    cached = [json.loads(line)["value"] for line in (out / "judge_cache.jsonl").read_text().splitlines()]
    assert len(cached) == len(rows) and all(v.startswith("Explanation") for v in cached)


def test_all_empty_judge_fails_caches_nothing_and_a_healthy_rerun_rescores(tmp_path):
    preds, out = tmp_path / "p.jsonl", tmp_path / "out"
    rows = predictions(preds)
    with FakeTeacherServer(faults={"Clip": ["empty", "nochoices"] * 3 * N}, text_answer=rating) as server:
        with pytest.raises(JudgeSuccessTooLow, match=r"judge success emotion 0\.0% is under 90%") as err:
            score_file(preds, out, judge(server, out), bootstrap=20)
        assert server.requests == 3 * N  # every row was tried 1 + 2 times
    assert "\n" not in str(err.value) and isinstance(err.value, UserError)
    assert not (out / "judge_cache.jsonl").exists() or (out / "judge_cache.jsonl").read_text() == ""
    assert (out / "metrics.json").exists()  # what was measured is written, the exit is not 0
    with FakeTeacherServer(text_answer=rating) as healthy:
        metrics = score_file(preds, out, judge(healthy, out), bootstrap=20)
        assert healthy.requests == len(rows)  # the failed rows were asked again, none replayed
    assert metrics["tasks"]["emotion"]["success_rate"] == 1.0


def test_empty_answers_cached_by_an_old_version_are_asked_again(tmp_path):
    preds, out = tmp_path / "p.jsonl", tmp_path / "out"
    rows = predictions(preds)
    with FakeTeacherServer(text_answer=rating) as server:
        # poison the cache the way the old judge did: an empty reply stored under every request
        score_file(preds, out, judge(server, out), bootstrap=20)
        lines = [json.loads(line) for line in (out / "judge_cache.jsonl").read_text().splitlines()]
        (out / "judge_cache.jsonl").write_text("".join(json.dumps({"key": r["key"], "value": ""}) + "\n" for r in lines))
        before = server.requests
        metrics = score_file(preds, out, judge(server, out), bootstrap=20, overwrite=True)
        assert server.requests - before == len(rows)
    assert metrics["tasks"]["emotion"]["success_rate"] == 1.0


def test_cli_low_success_is_one_line_and_exit_1(tmp_path):
    import subprocess
    import sys

    preds, out = tmp_path / "p.jsonl", tmp_path / "out"
    predictions(preds)
    with FakeTeacherServer(faults={"Clip": ["empty"] * 3 * N}, text_answer=rating) as server:
        proc = subprocess.run([sys.executable, "-m", "emoreason", "eval", "score", "--predictions", str(preds),
                               "--out", str(out), "--judge", server.url, "--retries", "2", "--bootstrap", "10"],
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if "error" in line.lower()][-1].count("judge success") == 1
