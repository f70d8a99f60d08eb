"""``analyze --model`` finds a running ``emoreason serve`` of the same model (the server files of
``emoreason.inference.discovery``) and sends it the files; a real uvicorn server on a free port."""
from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
import soundfile as sf

from emoreason.inference import discovery
from emoreason.inference.engine import Engine
from emoreason.inference.server import create_app

SR = 16_000


def _wav(seconds: float) -> bytes:
    t = np.arange(int(seconds * SR)) / SR
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), SR, format="WAV", subtype="PCM_16")
    return buf.getvalue()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    """(run directory, URL) of a tiny run served on a free 127.0.0.1 port."""
    from emoreason.testing.tiny import save_tiny_run

    run = save_tiny_run(tmp_path_factory.mktemp("run"))
    engine = Engine.load(run, device="cpu", max_seconds=120)
    app = create_app(engine, max_new_tokens=4)
    from emoreason.testing.server import serve_in_thread

    with serve_in_thread(app, start_timeout=20) as url:
        yield run, url


@pytest.fixture
def registry(tmp_path, monkeypatch):
    monkeypatch.setenv(discovery.REGISTRY_ENV, str(tmp_path / "servers"))
    return tmp_path / "servers"


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_analyze_uses_the_running_server_of_the_same_model(served, registry, tmp_path, capsys):
    from emoreason.cli import main

    run, url = served
    clip = tmp_path / "clip.wav"
    clip.write_bytes(_wav(1.5))
    args = ["analyze", "--model", str(run), str(clip), "--json", "--max-new-tokens", "4", "--transcript", "none"]
    assert main(args + ["--local"]) == 0
    local = capsys.readouterr()
    assert "running `emoreason serve`" not in local.err

    # serve writes its file; `RUN/final` and `RUN` name the same model
    path = discovery.announce(url, run / "final", name=str(run))
    assert path is not None and path.parent == registry
    assert json.loads(path.read_text())["model_dir"] == str((run / "final").resolve())
    before = httpx.get(f"{url}/health").json()["batches"]["requests"]
    assert main(args) == 0
    remote = capsys.readouterr()
    assert f"running `emoreason serve` of this model at {url}" in remote.err
    assert httpx.get(f"{url}/health").json()["batches"]["requests"] == before + 1  # the server did the work
    a, b = json.loads(local.out), json.loads(remote.out)
    assert a["file"] == b["file"] == str(clip) and a["label"] == b["label"]
    assert a["scores"] == pytest.approx(b["scores"], abs=1e-5) and a["explanation"] == b["explanation"]
    discovery.withdraw(path)
    assert not path.exists()


def test_find_skips_other_models_and_removes_dead_servers(served, registry, tmp_path):
    run, url = served
    other = tmp_path / "other"
    (other / "final").mkdir(parents=True)
    (other / "final" / "config.yaml").write_text("llm: {}\n")
    mine = discovery.announce(url, other, name=str(other))  # a live server, but of another model
    dead = discovery.announce(url, run, name=str(run), pid=_dead_pid())
    assert discovery.find(run) is None
    assert mine.exists() and not dead.exists()  # the dead server's file is gone
    assert discovery.find(other) is None  # /health names a different model: not this server
    wrong_port = discovery.announce("http://127.0.0.1:9", run, name=str(run))  # alive (this pid), nothing listening
    assert discovery.find(run) is None and wrong_port.exists()
    (registry / "junk.json").write_text("{not json")
    live = discovery.announce(url, run, name=str(run))
    assert live == wrong_port  # one file per (model, process): rewritten
    assert discovery.find(run) == url


def test_no_registry_means_local(tmp_path, monkeypatch):
    monkeypatch.setenv(discovery.REGISTRY_ENV, str(tmp_path / "missing"))
    assert discovery.find(tmp_path) is None


def test_serve_announces_itself_and_withdraws_on_sigterm(served, tmp_path, monkeypatch):
    """The real command: `emoreason serve` writes its file once the model is loaded and removes it
    when stopped with SIGTERM (uvicorn re-raises that signal after its graceful shutdown)."""
    import os
    import signal

    run, _ = served
    registry = tmp_path / "servers"
    monkeypatch.setenv(discovery.REGISTRY_ENV, str(registry))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, discovery.REGISTRY_ENV: str(registry), "HF_HUB_OFFLINE": "1"}
    # with a warm-up (analyses before listening) and the static cache: announced only after them
    server = subprocess.Popen([sys.executable, "-m", "emoreason", "serve", "--model", str(run), "--port", str(port),
                               "--warm-up", "on", "--decode-compile", "static"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while discovery.find(run) is None:
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            assert time.time() < deadline, "serve did not come up"
            time.sleep(0.5)
        assert discovery.find(run) == f"http://127.0.0.1:{port}"
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 128 + signal.SIGTERM
        log = server.stderr.read().decode()
        assert "warming up (decode static; batch sizes 1 and 2)" in log and "warmed up in" in log
    finally:
        if server.poll() is None:
            server.kill()
    assert list(registry.glob("*.json")) == []



def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(run, process, timeout: float = 120) -> str:
    deadline = time.time() + timeout
    while (url := discovery.find(run)) is None:
        assert process is None or process.poll() is None, "the server exited before it answered"
        assert time.time() < deadline, "serve did not come up"
        time.sleep(0.3)
    return url


def test_serve_idle_exit_stops_after_minutes_without_requests(served, registry, tmp_path):
    """`serve --idle-exit MIN` stops by itself MIN minutes after its last request; /health polls
    (what analyze and monitors send) do not keep it alive; it exits 0 and withdraws its file."""
    import os

    run, _ = served
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen([sys.executable, "-m", "emoreason", "serve", "--model", str(run), "--port", str(port),
                               "--idle-exit", "0.1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = _wait_for(run, server)
        response = httpx.post(f"{url}/analyze", files={"file": ("a.wav", _wav(1.0), "audio/wav")},
                              data={"max_new_tokens": "2", "transcript": "none"}, timeout=60)
        assert response.status_code == 200, response.text
        last_request = time.monotonic()
        while server.poll() is None:
            assert time.monotonic() - last_request < 6.0 + 30, "the idle server did not stop"
            try:
                httpx.get(f"{url}/health", timeout=5)  # does not count as work
            except httpx.HTTPError:  # shutting down: it closed its socket before the process ended
                pass
            time.sleep(0.5)
        stopped = time.monotonic()
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == 0
    assert stopped - last_request >= 6.0 - 0.5  # not before 0.1 min after the analysis
    assert "no requests for 0.1 min (--idle-exit): stopping" in server.stderr.read().decode()
    assert list(registry.glob("*.json")) == []


def test_analyze_keep_warm_leaves_a_server_for_the_next_command(served, registry, tmp_path, capsys, monkeypatch):
    """`analyze --model RUN --keep-warm MIN` answers cold, then starts `serve --idle-exit MIN` in the
    background and announces it at once; the next `analyze --model RUN` answers through it and
    starts no other. With settings the server would not share it is refused before any work."""
    import os
    import signal

    from emoreason.cli import main

    run, _ = served
    clip = tmp_path / "clip.wav"
    clip.write_bytes(_wav(1.5))
    args = ["analyze", "--model", str(run), str(clip), "--json", "--max-new-tokens", "4", "--transcript", "none"]
    assert main(args + ["--local", "--keep-warm", "1"]) == 1
    assert "--keep-warm leaves a server with the default settings" in capsys.readouterr().err
    monkeypatch.setenv("EMOREASON_KEEP_WARM", "1")
    assert main(args + ["--local"]) == 0  # the environment's default is skipped quietly there
    assert "keeping the model warm" not in capsys.readouterr().err and not discovery.running(run)
    monkeypatch.delenv("EMOREASON_KEEP_WARM")

    assert main(args + ["--keep-warm", "0.5"]) == 0
    first = capsys.readouterr()
    assert "keeping the model warm: `emoreason serve` at http://127.0.0.1:" in first.err
    (entry,) = [json.loads(p.read_text()) for p in registry.glob("*.json")]  # announced before it listens
    pid, url = entry["pid"], entry["url"]
    try:
        assert discovery.running(run) and "starting_since" in entry  # still importing torch
        # the next command waits for it instead of loading the model a second time beside it
        assert main(args + ["--keep-warm", "0.5"]) == 0
        second = capsys.readouterr()
        assert "waiting for the `emoreason serve` of this model that is starting" in second.err
        assert f"using the running `emoreason serve` of this model at {url}" in second.err
        assert "keeping the model warm" not in second.err
        assert len(list(registry.glob("*.json"))) == 1
        a, b = json.loads(first.out), json.loads(second.out)
        assert a["label"] == b["label"] and a["scores"] == pytest.approx(b["scores"], abs=1e-5)
    finally:
        os.kill(pid, signal.SIGTERM)
    deadline = time.time() + 60
    while discovery.running(run):
        assert time.time() < deadline, "the warm server did not stop on SIGTERM"
        time.sleep(0.2)


def test_waiting_for_a_starting_server_ends(served, registry):
    """A `--keep-warm` server that never answers is waited for only until its start is
    STARTING_WAIT_S (here 1 s) old; a stale start is not waited for; a live one is found at once."""
    run, url = served
    path = discovery.announce("http://127.0.0.1:9", run, name=str(run), starting=True)  # alive (this pid), no listener
    start = time.monotonic()
    assert discovery.wait_for_starting(run, timeout=1.0) is None
    assert 0.8 <= time.monotonic() - start < 5
    start = time.monotonic()
    assert discovery.wait_for_starting(run, timeout=0.0) is None and time.monotonic() - start < 0.5
    discovery.announce(url, run, name=str(run), starting=True)  # the same file: a server that answers
    assert discovery.wait_for_starting(run, timeout=5.0) == url
    discovery.withdraw(path)
    assert discovery.starting_since(run) is None


def test_serve_refuses_bad_numbers_before_loading(tmp_path, capsys):
    from emoreason.cli import main

    assert main(["serve", "--model", str(tmp_path / "no-such-run"), "--idle-exit", "-1"]) == 1
    assert "--idle-exit >= 0" in capsys.readouterr().err  # the flag, not the missing model
