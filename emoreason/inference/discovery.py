"""Finding a running ``emoreason serve`` of the same model, so ``emoreason analyze`` can skip the cold start.

    path = announce("http://127.0.0.1:8000", "runs/x", name="runs/x")   # serve, once listening
    url = find("runs/x")                   # analyze: the URL of a live server of runs/x, or None
    withdraw(path)                         # serve, on exit

A cold ``emoreason analyze`` spends seconds importing torch / transformers and loading the model
before its first clip; a running server has done both. ``serve`` writes one small JSON file per
server into :func:`registry_dir` (``{"url", "model_dir", "name", "pid"}``; removed when it stops),
and ``analyze --model RUN`` looks there first: a file for the same model directory whose process
is alive and whose ``/health`` answers with the same model sends the files to that server instead
(``--local`` loads the model in the command as before). Stale files (dead process) are deleted.

Nothing here imports torch: the point is to answer before any of it is loaded.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from emoreason.jsonl import atomic_write

REGISTRY_ENV = "EMOREASON_SERVER_DIR"
"""Overrides the directory of the server files (tests use a temporary one)."""
STARTING_WAIT_S = 30.0
"""How long after its start ``analyze`` waits for a server ``--keep-warm`` started (a packaged model
is up in ~3 s on 2 cores; a big model on a GPU may take longer, and then the command loads its own)."""
HEALTH_TIMEOUT_S = 1.0
"""How long ``find`` waits for a server's ``/health``: a busy server still answers it at once
(its model work runs in another thread), and a dead one should not delay the cold path much."""


def registry_dir() -> Path:
    """Where running servers announce themselves: ``$EMOREASON_SERVER_DIR``, else
    ``$XDG_CACHE_HOME/emoreason/servers`` (``~/.cache/emoreason/servers``)."""
    if os.environ.get(REGISTRY_ENV):
        return Path(os.environ[REGISTRY_ENV])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "emoreason" / "servers"


def model_dir(path: str | Path) -> Path:
    """The directory that holds a model's ``config.yaml`` (``RUN`` or ``RUN/final``), absolute,
    links resolved: the key that matches ``serve --model runs/x`` with ``analyze --model
    /abs/runs/x/final``. A path without a config gives itself, resolved (it then matches nothing)."""
    path = Path(path).expanduser()
    for candidate in (path / "final", path):
        if (candidate / "config.yaml").is_file():
            return candidate.resolve()
    return path.resolve()


def _file_for(directory: Path, pid: int) -> Path:
    key = hashlib.sha1(str(directory).encode()).hexdigest()[:16]
    return registry_dir() / f"{key}-{pid}.json"


def announce(url: str, model: str | Path, name: str, pid: int | None = None, starting: bool = False) -> Path | None:
    """Write the server file of the server at ``url`` serving ``model`` (whose ``/health``
    reports ``name`` as its model); returns its path, or None when the directory is not writable
    (the server runs anyway; analyze then just loads the model itself). ``starting``: written for
    a server that is still loading (``analyze --keep-warm``), with the time, so that the next
    ``analyze`` waits for it (:func:`wait_for_starting`); the server's own file replaces it."""
    pid = os.getpid() if pid is None else pid
    directory = model_dir(model)
    path = _file_for(directory, pid)
    entry: dict[str, Any] = {"url": url.rstrip("/"), "model_dir": str(directory), "name": name, "pid": pid}
    if starting:
        entry["starting_since"] = time.time()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(entry))
    except OSError:
        return None
    return path


def withdraw(path: Path | None) -> None:
    """Remove a server file written by :func:`announce` (no error when it is already gone)."""
    if path is not None:
        try:
            path.unlink()
        except OSError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _healthy(url: str, name: str, headers: dict[str, str]) -> bool:
    """Whether ``url`` answers ``/health`` as an emoreason server of model ``name``."""
    import httpx

    try:
        response = httpx.get(url + "/health", timeout=HEALTH_TIMEOUT_S, headers=headers)
        body = response.json()
    except (httpx.HTTPError, ValueError):
        return False
    return response.status_code == 200 and isinstance(body, dict) and body.get("status") == "ok" and body.get("model") == name


def _live_servers(model: str | Path) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(url, name, the file's entry) of each announced server of ``model`` (same model directory)
    whose process is alive; files of dead processes are removed, unreadable or foreign ones left
    alone."""
    directory = str(model_dir(model))
    try:
        files = sorted(registry_dir().glob("*.json"))
    except OSError:
        return
    for path in files:
        try:
            entry: Any = json.loads(path.read_text())
            url, owner, name, pid = entry["url"], entry["model_dir"], entry["name"], int(entry["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # unreadable or foreign: not ours to judge
        if owner != directory:
            continue
        if not _alive(pid):
            withdraw(path)
            continue
        yield url, name, entry


def find(model: str | Path, headers: dict[str, str] | None = None) -> str | None:
    """The URL of a live ``emoreason serve`` of ``model`` (same model directory), or None.

    Files of dead processes are removed; a live process whose ``/health`` does not answer (still
    loading, or its port taken by something else) is skipped but its file kept."""
    for url, name, _ in _live_servers(model):
        if _healthy(url, name, headers or {}):
            return url
    return None


def running(model: str | Path) -> bool:
    """Whether a live process has announced a server of ``model`` (answering or still loading)."""
    return any(True for _ in _live_servers(model))


def starting_since(model: str | Path) -> float | None:
    """When (``time.time()``) the earliest server of ``model`` that ``analyze --keep-warm`` started
    and that has not announced itself yet was started; None when there is none."""
    times = [entry["starting_since"] for _, _, entry in _live_servers(model)
             if isinstance(entry.get("starting_since"), (int, float))]
    return min(times) if times else None


def wait_for_starting(model: str | Path, headers: dict[str, str] | None = None,
                      timeout: float = STARTING_WAIT_S) -> str | None:
    """The URL of a server of ``model`` that ``analyze --keep-warm`` started less than ``timeout``
    seconds ago and that is still loading, once it answers; None at once when there is no such
    server, and when it has not answered within ``timeout`` of its start (or died). Waiting beats
    loading the model a second time beside it: on a few cores both would go slower."""
    start = starting_since(model)
    if start is None:
        return None
    while time.time() - start < timeout:
        url = find(model, headers)
        if url is not None or not running(model):
            return url
        time.sleep(0.2)
    return None


def start_warm_server(model: str, name: str, minutes: float, max_seconds: float) -> tuple[str, int, Path]:
    """Start ``emoreason serve --model MODEL --idle-exit MINUTES`` in the background (its own
    session, so it outlives the command) on a free 127.0.0.1 port, and announce it at once under
    its pid: a second ``analyze`` while it is still loading sees it starting (:func:`running`) and
    starts no other; the server announces itself again once it listens. Returns (URL, pid, its log
    file in :func:`registry_dir`)."""
    import socket
    import subprocess
    import sys

    with socket.socket() as s:  # the OS picks a free port; freed here, bound by the server a moment later
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    directory = model_dir(model)
    registry_dir().mkdir(parents=True, exist_ok=True)
    log = registry_dir() / f"{hashlib.sha1(str(directory).encode()).hexdigest()[:16]}.log"
    command = [sys.executable, "-m", "emoreason", "serve", "--model", str(model), "--port", str(port),
               "--idle-exit", f"{minutes:g}", "--max-seconds", f"{max_seconds:g}"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=os.name == "posix")
    url = f"http://127.0.0.1:{port}"
    announce(url, model, name=name, pid=process.pid, starting=True)
    return url, process.pid, log
