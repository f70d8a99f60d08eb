"""The web page's routes: ``/`` (index.html), ``/static/page.js|page.css``, ``/examples``.

The page is plain HTML, CSS and JavaScript shipped in the package (``emoreason/inference/index.html``
and ``emoreason/inference/static/``): nothing from a CDN, so it works offline. It reads the model and
its labels from ``/health``, analyses through ``/analyze/stream`` and offers the clips of
``/examples`` (``emoreason.inference.server.examples``)."""
from __future__ import annotations

import asyncio
from importlib import resources
from typing import Any

from emoreason.inference.server.errors import APIError
from emoreason.inference.server.examples import ExampleBank

STATIC_TYPES = {"page.js": "text/javascript; charset=utf-8", "page.css": "text/css; charset=utf-8"}
"""The files under ``/static`` and their content types (nothing else is served from there)."""


def add_page_routes(app: Any, ctx: Any) -> None:
    """Register the page's routes on ``app`` (files read once, at startup)."""
    from fastapi.responses import HTMLResponse, JSONResponse, Response

    package = resources.files("emoreason.inference")
    page = package.joinpath("index.html").read_text(encoding="utf-8")
    static = {name: package.joinpath("static", name).read_bytes() for name in STATIC_TYPES}
    bank = ExampleBank()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        return page

    @app.get("/static/{name}", include_in_schema=False)
    async def static_file(name: str) -> Any:
        if name not in static:
            raise APIError(404, f"no static file {name!r}", code="not_found")
        return Response(static[name], media_type=STATIC_TYPES[name], headers={"cache-control": "no-cache"})

    @app.get("/examples")
    async def examples() -> Any:
        """Example clips to try (synthesised with espeak-ng on first use): name, emotion spoken, text, seconds, url."""
        clips = await asyncio.to_thread(bank.clips)
        return JSONResponse({"examples": [{"name": c.name, "emotion": c.emotion, "text": c.text, "duration": c.duration,
                                           "url": f"examples/{c.name}.wav"} for c in clips.values()],
                             "unavailable": bank.unavailable})

    @app.get("/examples/{name}.wav", include_in_schema=False)
    async def example_wav(name: str) -> Any:
        clip = (await asyncio.to_thread(bank.clips)).get(name)
        if clip is None:
            raise APIError(404, f"no example clip {name!r}", code="not_found")
        return Response(clip.wav, media_type="audio/wav")
