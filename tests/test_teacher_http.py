"""The OpenAI-compatible teacher against a real local server that misbehaves on purpose."""
import json

import pytest

from emoreason.cli import main
from emoreason.data.manifest import read_manifest
from emoreason.testing.fakeserver import FakeTeacherServer
from emoreason.testing.fixtures import DEFAULT_ROWS, make_manifest
from emoreason.teacher.generate import make_teacher, teach

N_TAUGHT = sum(1 for r in DEFAULT_ROWS if r[2])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_manifest(tmp_path_factory.mktemp("corpus"), audio=False)


def _teacher(server, **kw):
    kw = {"timeout": 0.4, "retries": 4, "backoff_s": 0.01, **kw}
    return make_teacher(server.url, **kw)


def _ids(path):
    return [json.loads(line)["id"] for line in open(path, encoding="utf-8")]


def test_transient_failures_are_retried_until_every_row_is_taught(corpus, tmp_path):
    faults = {"stop touching": ["500", "500"], "best day": ["timeout"], "miss her": ["nonjson"], "meeting": ["empty"],
              "form still": ["close"], "waste of money": ["429", "slow"], "wonderful": ["slow"]}
    with FakeTeacherServer(faults=faults, hang_s=1.5, slow_s=0.1) as server:
        summary = teach(corpus, tmp_path / "T.jsonl", _teacher(server), progress=False)
        n_faults = sum(len(v) for v in faults.values())
        assert server.requests == N_TAUGHT + n_faults - 2  # the two "slow" answers still succeed
    assert (summary.taught, summary.passed_through, summary.errors, summary.failed_checks) == (N_TAUGHT, 1, 0, 0)
    rows = read_manifest(tmp_path / "T.jsonl")
    assert [r.id for r in rows] == [r[0] for r in DEFAULT_ROWS]
    assert all(r.meta["teacher_check"]["ok"] and r.meta["teacher"]["model"] == "fake-teacher" for r in rows if r.label)


def test_bad_answers_are_asked_again_then_flagged(corpus, tmp_path):
    faults = {"best day": ["badquote"], "meeting": ["wronglabel"] * 3}
    with FakeTeacherServer(faults=faults) as server:
        summary = teach(corpus, tmp_path / "T.jsonl", _teacher(server), check_retries=2, progress=False)
        meeting = [b for b in server.bodies if "meeting" in b["messages"][0]["content"]]
    assert (summary.failed_checks, summary.rejected_answers, summary.errors) == (1, 3, 0)
    # the first ask is greedy, a re-ask samples with a new seed (so it is also a new cache key)
    assert [(b["temperature"], b.get("seed")) for b in meeting] == [(0.0, None), (0.7, 1), (0.7, 2)]
    rows = {r.id: r for r in read_manifest(tmp_path / "T.jsonl")}
    assert rows["fx-happy"].meta["teacher_check"]["ok"] and rows["fx-happy"].meta["teacher"]["attempts"] == 2
    flagged = rows["fx-neutral"].meta["teacher_check"]
    assert flagged["ok"] is False and flagged["reasons"] == ["label 'neutral' not stated (says surprised)"]


def test_cache_hit_avoids_a_second_request(corpus, tmp_path):
    cache = tmp_path / "answers.jsonl"
    with FakeTeacherServer() as server:
        first = teach(corpus, tmp_path / "a.jsonl", _teacher(server), cache_path=cache, progress=False)
        assert server.requests == N_TAUGHT
        second = teach(corpus, tmp_path / "b.jsonl", _teacher(server), cache_path=cache, progress=False)
        assert server.requests == N_TAUGHT  # nothing new was sent
    assert (first.requests, first.cache_hits, second.requests, second.cache_hits) == (N_TAUGHT, 0, 0, N_TAUGHT)
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()


def test_a_rejected_request_fails_only_its_row_and_the_rerun_finishes(corpus, tmp_path, capsys):
    out = tmp_path / "T.jsonl"
    with FakeTeacherServer(faults={"wonderful": ["400"]}) as server:
        args = ["data", "teach", "--manifest", str(corpus), "--teacher", server.url, "--out", str(out), "--no-progress"]
        assert main(args) == 1
        assert "1 errors" in capsys.readouterr().err
        assert "fx-positive" not in _ids(out) and len(_ids(out)) == len(DEFAULT_ROWS) - 1
        assert main(args) == 0
    assert sorted(_ids(out)) == sorted(r[0] for r in DEFAULT_ROWS)


def test_dead_endpoint_is_one_line_and_loses_nothing(corpus, tmp_path, capsys):
    out = tmp_path / "T.jsonl"
    with FakeTeacherServer() as server:
        assert main(["data", "teach", "--manifest", str(corpus), "--teacher", server.url, "--out", str(out), "--limit", "3", "--no-progress"]) == 0
        url = server.url
    before = out.read_text()
    assert len(before.splitlines()) == 3
    capsys.readouterr()
    for extra in (["--model", "m"], []):  # chat request refused / model listing refused
        code = main(["data", "teach", "--manifest", str(corpus), "--teacher", url, "--out", str(out), "--retries", "1", "--no-progress", *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and err[-1].startswith("emoreason: error: cannot reach the teacher at") and "could not connect" in err[-1]
        assert "finished rows are kept" in err[-1]
        assert out.read_text().startswith(before)  # nothing lost (the ASR row may have been passed through)
    with FakeTeacherServer() as server:  # the endpoint is back (on another port): the rerun finishes
        assert main(["data", "teach", "--manifest", str(corpus), "--teacher", server.url, "--out", str(out), "--no-progress"]) == 0
        assert server.requests == N_TAUGHT - 3
    ids = _ids(out)
    assert ids == [r[0] for r in DEFAULT_ROWS]  # every row exactly once, in manifest order
