"""Render errors: RFC 9457 problem+json for the native API, each profile's own shape for its
prefix (profiles register a renderer in ``app.state.error_renderers``).

Every error reaches the client in its route's shape, the unexpected ones included: an
exception no handler knows becomes an ``InternalError`` (500) carrying a request id, which
is also sent as ``X-Request-ID`` and logged with the traceback (``UnexpectedErrors``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import (
    InternalError,
    InvalidRequest,
    NotFound,
    ProblemError,
    StoreError,
    ValidationFailed,
)

log = logging.getLogger("auditstream")
PROBLEM = "application/problem+json"

#: A profile's renderer: (request, error) → response in that profile's documented shape.
Renderer = Callable[[Request, ProblemError], Response]


def problem_response(request: Request, exc: ProblemError) -> Response:
    render = _renderer_for(request)
    if render is not None:
        return render(request, exc)  # type: ignore[no-any-return]
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return Response(orjson.dumps(exc.to_problem(request.url.path)), status_code=exc.status,
                    media_type=PROBLEM, headers=headers)


def _loc_field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "(request)"


def install(app: FastAPI) -> None:
    app.state.error_renderers = {}
    app.state.route_renderers = {}
    app.add_middleware(UnexpectedErrors)

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> Response:
        return problem_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        renderer = _renderer_for(request)
        if renderer is not None and getattr(renderer, "handles_request_validation", False):
            return renderer.validation(request, exc)  # type: ignore[attr-defined]
        errors = [{"field": _loc_field(tuple(e["loc"])), "reason": e["msg"]}
                  for e in exc.errors()]
        return problem_response(request, ValidationFailed("invalid request", errors=errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        err: ProblemError
        if exc.status_code == 404:  # no such route: the same problem as no such resource
            err = NotFound(str(exc.detail))
        else:
            err = InvalidRequest(str(exc.detail))
            err.status = exc.status_code
            err.title = {405: "Method not allowed"}.get(exc.status_code, "Error")
        response = problem_response(request, err)
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value  # e.g. Allow on 405
        return response

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError) -> Response:
        log.exception("store failure", exc_info=exc)
        err = ProblemError("the event store is unavailable; retry later")
        err.status, err.title = 503, "Service unavailable"
        response = problem_response(request, err)
        response.headers["Retry-After"] = "5"
        return response


class UnexpectedErrors:
    """Answers an exception that escaped every handler with a 500 in the route's error shape.

    Starlette would answer a plain-text "Internal Server Error" that no client of a JSON
    API can parse. The answer names a fresh request id (``X-Request-ID`` and the body; not
    the client's own, which could forge log lines) and never the exception's text, which
    may hold paths or data; the log gets both, with the traceback. Once a streamed body
    has started the exception is re-raised instead: the connection must abort, so the
    client cannot take a cut stream for a complete one.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception as exc:
            if started:
                raise
            request_id = uuid.uuid4().hex
            log.error("unexpected error in %s %r, request id %s", scope["method"],
                      scope["path"], request_id, exc_info=exc)
            err = InternalError(f"unexpected error; quote request id {request_id} to the "
                                "operator", request_id=request_id)
            response = problem_response(Request(scope), err)
            response.headers["X-Request-ID"] = request_id
            await response(scope, receive, send)


def _renderer_for(request: Request) -> Any:
    """The renderer of the matched root-mounted profile route, else of the longest
    registered prefix that the path falls under, if any."""
    endpoint = request.scope.get("endpoint")
    by_endpoint = getattr(request.app.state, "route_renderers", {})
    if endpoint is not None and endpoint in by_endpoint:
        return by_endpoint[endpoint]
    path = request.url.path
    best = None
    for prefix, render in getattr(request.app.state, "error_renderers", {}).items():
        if (path == prefix or path.startswith(prefix.rstrip("/") + "/")) and (
            best is None or len(prefix) > len(best[0])
        ):
            best = (prefix, render)
    return best[1] if best else None
