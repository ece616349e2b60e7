"""Security headers of every response, set in one place.

Every response: ``X-Content-Type-Options: nosniff`` and frame protection
(``X-Frame-Options: DENY`` and CSP ``frame-ancestors 'none'``). The console's pages get a
full Content-Security-Policy with no inline script or style (every script is a file of
``/console/static``) and ``Referrer-Policy: no-referrer`` (the embed URL carries a token).
The one page that may be framed is the embeddable viewer, by the origins of
``AUDITSTREAM_CONSOLE_FRAME_ANCESTORS``.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors {ancestors}")
CONSOLE_PREFIX = "/console"
EMBED_PATH = "/console/embed"


class SecurityHeaders:
    def __init__(self, app: ASGIApp, frame_ancestors: str = "'self'"):
        self.app = app
        self.embed_csp = PAGE_CSP.format(ancestors=frame_ancestors.strip() or "'none'")
        self.page_csp = PAGE_CSP.format(ancestors="'none'")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                if path == EMBED_PATH:
                    headers["Content-Security-Policy"] = self.embed_csp
                    headers["Referrer-Policy"] = "no-referrer"
                elif path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/"):
                    headers["Content-Security-Policy"] = self.page_csp
                    headers["Referrer-Policy"] = "no-referrer"
                    headers["X-Frame-Options"] = "DENY"
                else:
                    headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
                    headers["X-Frame-Options"] = "DENY"
            await send(message)

        await self.app(scope, receive, send_with_headers)
