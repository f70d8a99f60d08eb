"""Kill the teach process mid-run (SIGKILL) and rerun: every row exactly once, none lost."""
import json
import os
import signal
import subprocess
import sys
import time

from emoreason.data.manifest import read_manifest
from emoreason.jsonl import cut_torn_tail
from emoreason.llm_client import ResponseCache
from emoreason.testing.fakeserver import FakeTeacherServer
from emoreason.testing.fixtures import make_manifest

N = 150


def _lines(path):
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def _parses(line):
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def test_sigkill_mid_run_then_rerun_gives_every_row_exactly_once(tmp_path):
    rows = [(f"r{i:03d}", f"Sentence number {i} is here, I really love it!", "happy" if i % 2 else "angry", "emotion", f"s{i % 3}")
            for i in range(N)]
    manifest = make_manifest(tmp_path / "D", rows=rows, audio=False)
    out = tmp_path / "T.jsonl"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with FakeTeacherServer(delay_s=0.05) as server:
        cmd = [sys.executable, "-m", "emoreason", "data", "teach", "--manifest", str(manifest), "--teacher", server.url,
               "--out", str(out), "--concurrency", "4", "--no-progress"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while len(_lines(out)) < 20 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        written = _lines(out)
        assert 20 <= len(written) < N, "killed mid-run"
        sent_before = server.requests
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        # only rows not finished before the kill are asked again (plus at most the 4 that were in flight)
        assert server.requests - sent_before <= N - len(written) + 4
    complete = sum(1 for line in written if _parses(line))  # a torn last line is not a finished row
    assert f"{N - complete} taught, 0 passed through, {complete} skipped" in result.stderr
    ids = [json.loads(line)["id"] for line in _lines(out)]
    assert ids == [r[0] for r in rows]  # exactly once each, manifest order
    assert all(r.target and r.meta["teacher_check"]["ok"] for r in read_manifest(out))


def test_torn_last_line_is_cut_and_cache_survives_it(tmp_path):
    path = tmp_path / "c.jsonl"
    cache = ResponseCache(path)
    cache.put("a", "answer a")
    cache.close()
    with path.open("a") as f:
        f.write('{"key": "b", "val')  # a write cut short by a kill
    cache = ResponseCache(path)
    assert cache.get("a") == "answer a" and cache.get("b") is None
    cache.put("c", "answer c")
    cache.close()
    assert ResponseCache(path).get("c") == "answer c"
    assert not cut_torn_tail(path) and path.read_text().count("\n") == 2
