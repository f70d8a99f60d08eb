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

