"""Requests for a tenant whose home is another node (``auditstream.homes``): appends,
redactions, and reads of its log (checkpoints, proofs).

The store refuses them with ``ElsewhereHome`` before anything is written; this handler
turns that into either a ``307 Temporary Redirect`` to the same path and query on the home
node (the method and body are to be re-sent there), or, with
``AUDITSTREAM_FORWARD_APPENDS=true``, a forward: the request goes to the home with its
headers and body, and the home's answer is relayed as it is.

A 307 suits clients that re-send credentials across hosts; most HTTP libraries drop an
``Authorization`` header on a redirect to another origin, which is what forwarding is for.
A forwarded request carries ``X-Auditstream-Forwarded-By``; a node never forwards such a
request again (it redirects instead), so maps that disagree between nodes cannot loop.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from starlette.responses import Response

from ..errors import ElsewhereHome, ProblemError
from .problems import problem_response

FORWARDED_BY = "x-auditstream-forwarded-by"
#: Hop-by-hop and framing headers a proxy must not copy (RFC 9110 §7.6.1).
_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                  "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length"})


#: How long a forwarded request may take at the home (a large batch, a busy writer).
FORWARD_TIMEOUT_S = 30.0


def install(app: FastAPI, *, node: str, forward: bool) -> None:
    @app.exception_handler(ElsewhereHome)
    async def _elsewhere(request: Request, exc: ElsewhereHome) -> Response:
        # The path as the client sent it (still percent-encoded): a decoded %0D%0A in an
        # event id would otherwise break the Location header, a decoded %2F the path.
        raw = request.scope.get("raw_path") or quote(request.url.path).encode()
        target = exc.location + raw.decode("latin-1") + (
            "?" + request.url.query if request.url.query else "")
        body = getattr(request.state, "body",
                       b"" if request.method in ("GET", "HEAD") else None)
        if forward and body is not None and FORWARDED_BY not in request.headers:
            return await _forward(request, target, body, node)
        response = problem_response(request, exc)
        response.headers["Location"] = target
        return response


async def _forward(request: Request, target: str, body: bytes, node: str) -> Response:
    import httpx  # only forwarding nodes pay for it (it loads rich; ~0.5 s per worker)

    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP]
    headers.append((FORWARDED_BY, node))
    # One client per forward: forwarding is the fallback for clients that cannot follow
    # a redirect, not the hot path, and a shared client would need the lifespan to close it.
    async with httpx.AsyncClient(timeout=FORWARD_TIMEOUT_S, follow_redirects=False,
                                 trust_env=False) as client:
        try:
            answer = await client.request(request.method, target, headers=headers,
                                          content=body)
        except httpx.HTTPError:
            # Nothing was acknowledged here; the client retries, as after any 503 (an
            # idempotency key makes that safe if the home did store it).
            err = ProblemError("the tenant's home node did not answer; retry later")
            err.status, err.title = 503, "Service unavailable"
            response = problem_response(request, err)
            response.headers["Retry-After"] = "5"
            return response
    response = Response(answer.content, status_code=answer.status_code)
    # Each header as the home sent it (a repeated one stays repeated), except framing:
    # httpx decoded the body, and uvicorn adds its own date and server.
    response.raw_headers.extend(
        (k.lower().encode("latin-1"), v.encode("latin-1"))
        for k, v in answer.headers.multi_items()
        if k.lower() not in _HOP | {"content-encoding", "date", "server"})
    return response


__all__ = ["FORWARDED_BY", "install"]
