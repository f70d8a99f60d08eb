"""A real uvicorn server for an app, on a free 127.0.0.1 port, in a daemon thread (tests only)."""
from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def serve_in_thread(app: Any, start_timeout: float = 30.0) -> Iterator[str]:
    """Run ``app`` until the block ends; yields its base URL (``http://127.0.0.1:PORT``).

    Raises RuntimeError when uvicorn has not started within ``start_timeout`` seconds."""
    import uvicorn

    with socket.socket() as s:  # a free port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + start_timeout
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def serve_tiny_run(directory: Any, start_timeout: float = 30.0, **app_options: Any) -> Iterator[str]:
    """A freshly saved tiny run (``emoreason.testing.tiny.save_tiny_run`` into ``directory``)
    loaded by the engine on the CPU and served by :func:`serve_in_thread`; yields the base URL.
    ``app_options`` go to ``create_app`` (``max_new_tokens``, ``batch_size``, ...)."""
    from emoreason.inference.engine import Engine
    from emoreason.inference.server import create_app
    from emoreason.testing.tiny import save_tiny_run

    engine = Engine.load(save_tiny_run(directory), device="cpu", max_seconds=120)
    with serve_in_thread(create_app(engine, **app_options), start_timeout) as url:
        yield url
