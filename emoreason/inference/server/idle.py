"""``emoreason serve --idle-exit MIN``: a server that stops by itself after MIN minutes without work.

    activity = Activity()
    app.add_middleware(ActivityTracker, activity=activity)     # create_app does this
    stop_when_idle(server, activity, seconds=300)               # serve, with uvicorn's Server

What keeps a model warm for ``emoreason analyze --keep-warm`` (Ollama's ``keep_alive``, for one
model): the first command answers cold and leaves a server behind, later commands answer through
it, and it goes away once nobody has asked for a while. Every HTTP request counts as work except
``GET /health``, which ``analyze`` (and any monitor) polls without asking for an analysis; a request
in flight (a long upload, a stream) is work until it ends.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Any

from emoreason.inference.server.limits import Receive, Scope, Send

NOT_WORK = frozenset({"/health"})
"""Paths whose requests do not count as activity."""


class Activity:
    """Requests in flight and when the last one ended (monotonic seconds)."""

    def __init__(self) -> None:
        self.active = 0
        self.last = time.monotonic()
        self._lock = threading.Lock()

    def begin(self) -> None:
        with self._lock:
            self.active += 1

    def end(self) -> None:
        with self._lock:
            self.active -= 1
            self.last = time.monotonic()

    def idle_seconds(self) -> float:
        """Seconds since the last request ended; 0 while one is in flight."""
        with self._lock:
            return 0.0 if self.active else time.monotonic() - self.last


class ActivityTracker:
    """ASGI middleware: every HTTP request but :data:`NOT_WORK` is counted in ``activity``."""

    def __init__(self, app: Any, activity: Activity):
        self.app, self.activity = app, activity

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in NOT_WORK:
            return await self.app(scope, receive, send)
        self.activity.begin()
        try:
            await self.app(scope, receive, send)
        finally:
            self.activity.end()


def stop_when_idle(server: Any, activity: Activity, seconds: float) -> threading.Thread:
    """Start a daemon thread that asks the uvicorn ``server`` to shut down (gracefully, like
    Ctrl-C) once ``activity`` has been idle for ``seconds``."""

    def watch() -> None:
        step = min(1.0, seconds / 4)
        while not server.should_exit:
            if activity.idle_seconds() >= seconds:
                print(f"emoreason serve: no requests for {seconds / 60:g} min (--idle-exit): stopping",
                      file=sys.stderr, flush=True)
                server.should_exit = True
                return
            time.sleep(step)

    thread = threading.Thread(target=watch, name="idle-exit", daemon=True)
    thread.start()
    return thread
