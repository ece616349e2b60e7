"""The web console: static pages served from the package, using only the public API.

``/`` redirects to ``/console``; ``/console`` is the console (explore, event detail with
its proof verified in the browser, live tail, integrations, admin); ``/console/embed`` is
the read-only viewer a vendor frames with a viewer token (``POST /v1/viewer-tokens``).
Nothing is built at run time: the files under ``static/`` are what the browser gets
(uPlot, the one vendored library, is committed built; see ``static/VENDOR.md``).
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.responses import RedirectResponse, Response

from .headers import SecurityHeaders

__all__ = ["install", "SecurityHeaders", "CONSOLE_URL", "EMBED_URL"]

CONSOLE_URL = "/console"
EMBED_URL = "/console/embed"
STATIC_URL = "/console/static"
STATIC_DIR = files("auditstream.console") / "static"


def _page() -> bytes:
    return (STATIC_DIR / "console.html").read_bytes()


def install(app: FastAPI, frame_ancestors: str = "'self'") -> None:
    """Serve the console's pages and assets (before the compat root mount, so they stay
    native), and the security headers of every response."""
    app.mount(STATIC_URL, StaticFiles(directory=str(STATIC_DIR)), name="console-static")
    page = _page()

    @app.get("/", include_in_schema=False)
    async def root() -> Response:
        return RedirectResponse(CONSOLE_URL, status_code=302)

    @app.get(CONSOLE_URL, include_in_schema=False)
    async def console() -> Response:
        return Response(page, media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-store"})

    @app.get(EMBED_URL, include_in_schema=False)
    async def embed() -> Response:
        return Response(page, media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-store"})

    app.add_middleware(SecurityHeaders, frame_ancestors=frame_ancestors)
