"""The VaultTerm Events API (``vaultterm-events-api``), served at ``/compat/vaultterm``.

``GET /api/events/v1`` and ``GET /events/v1`` (the seed uses both spellings; one handler)
with ``Authorization: Bearer <API token or user JWT>`` and the ``events:read`` scope. The
tenant comes from the credential: the answer is scoped to the caller's organization.

Parameters
    ``from`` (inclusive) and ``to`` (exclusive): a date ``YYYY-MM-DD`` or an ISO 8601
    date-time (Unix milliseconds too). A date in ``to`` means *through the end of that
    day*, so ``from=2026-06-01&to=2026-06-23`` includes June 23. The window is half-open so
    that consecutive windows ("the previous hour, every hour") never read an event twice.
    ``from`` after ``to`` is a 400.
    ``limit``: events per page, default 100, 1 to 1000 (else 400).
    ``cursor``: the ``next_cursor`` of the previous page.
    Anything else is a 400, so a misspelt parameter cannot silently widen an export.

Scope
    The reference's Events API is "the full audit event stream", so the profile serves the
    tenant's whole stream unless ``AUDITSTREAM_COMPAT_VAULTTERM_SCOPE`` (a ``q`` filter,
    see ``scope.py``) narrows it. The reference lists no value sets for ``category`` or
    ``severity``: canonical values pass through.

Pages
    ``{"data": [record, ...], "next_cursor": "<opaque>" | null}``, oldest first (by
    timestamp, then arrival). ``next_cursor`` is null on the last page; otherwise the
    response also carries ``Link: <absolute URL of the next page>; rel="next"`` (the same
    query with ``cursor`` set). The cursor is a keyset position in the store, not an
    offset: walking the pages yields every event that matched when the walk began exactly
    once, however many events arrive meanwhile (they may appear on later pages when their
    timestamps sort after the position reached; none is ever repeated).

Records (flat, the push connectors' field names), ``null`` where the event lacks a value
    ``id``; ``action`` (type); ``title``; ``category``; ``severity``; ``actor``
    (``actor.name``, else ``actor.id``); ``resource`` (``subject.type:subject.id``, or
    ``subject.id`` alone); ``source_ip`` (``source.ip``, else ``actor.ip``); ``detail``
    (description); ``timestamp``.

Errors
    The seed documents none. This profile answers ``{"error": "<code>", "message":
    "<text>"}`` with the HTTP status; codes: ``invalid_request`` (400), ``unauthorized``
    (401, with ``WWW-Authenticate: Bearer``), ``forbidden`` (403), ``not_found`` (404),
    ``method_not_allowed`` (405), ``service_unavailable`` (503).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ...auth.principal import Principal
from ...errors import InvalidRequest, ProblemError
from ...model.times import US, parse_time
from ...query.filter import Cmp, Node, and_
from ...store.base import EventQuery
from ..deps import reader
from ..native.events import json_response
from ..openapi import ErrorShape, Param, content, operation, ref
from .fields import obj as _obj
from .schemas import VaultTermError, VaultTermPage
from .scope import scope
from .turen import error_message, is_date_only, param

PREFIX = "/compat/vaultterm"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
DAY_US = 24 * 3600 * US

_PARAMS = frozenset({"from", "to", "limit", "cursor"})
_CODES = {400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
          503: "service_unavailable"}


def _time(raw: str, name: str) -> int:
    try:
        return parse_time(raw)
    except (ValueError, OverflowError):  # TimeParseError, or a number beyond any time
        raise InvalidRequest(f"{name}: {raw[:40]!r} is not a date (YYYY-MM-DD) or an ISO "
                             "8601 date-time") from None


def window(request: Request) -> Node:
    """``[from, to)``; a date-only ``to`` ends at the following midnight."""
    nodes: list[Node] = []
    start = end = None
    if (raw := param(request, "from")) is not None:
        start = _time(raw, "from")
        nodes.append(Cmp("timestamp", ">=", start))
    if (raw := param(request, "to")) is not None:
        end = _time(raw, "to") + (DAY_US if is_date_only(raw) else 0)
        nodes.append(Cmp("timestamp", "<", end))
    if start is not None and end is not None and start > end:
        raise InvalidRequest("from must not be after to")
    return and_(*nodes)


def _limit(request: Request) -> int:
    raw = param(request, "limit")
    if raw is None:
        return DEFAULT_LIMIT
    try:
        value = int(raw.strip())
    except ValueError:  # also a number too long to convert
        raise InvalidRequest(f"limit: {raw[:40]!r} is not an integer") from None
    if not 1 <= value <= MAX_LIMIT:
        shown = str(value) if len(raw) <= 40 else f"{raw[:20]}…"
        raise InvalidRequest(f"limit must be between 1 and {MAX_LIMIT}, got {shown}")
    return value



def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def event_record(event: dict[str, Any]) -> dict[str, Any]:
    """A canonical event as VaultTerm's flat, normalized record."""
    actor, subject, source = _obj(event, "actor"), _obj(event, "subject"), _obj(event, "source")
    who = actor.get("name") if actor.get("name") is not None else actor.get("id")
    sid, stype = subject.get("id"), subject.get("type")
    resource = f"{stype}:{sid}" if stype is not None and sid is not None else _text(sid)
    ip = source.get("ip") if source.get("ip") is not None else actor.get("ip")
    return {
        "id": event["id"],
        "action": event["type"],
        "title": event.get("title"),
        "category": event.get("category"),
        "severity": event.get("severity"),
        "actor": _text(who),
        "resource": resource,
        "source_ip": _text(ip),
        "detail": event.get("description"),
        "timestamp": event["timestamp"],
    }


async def list_events(request: Request, principal: Principal = Depends(reader)) -> Response:
    """One page of the stream, oldest first, with a keyset ``next_cursor``."""
    unknown = sorted(k for k in request.query_params if k not in _PARAMS)
    if unknown:
        raise InvalidRequest(f"unknown parameter {unknown[0]!r}; accepted: "
                             f"{', '.join(sorted(_PARAMS))}")
    q = EventQuery(filter=and_(scope(request, "vaultterm"), window(request)),
                   sort="timestamp", order="asc",
                   limit=_limit(request), cursor=param(request, "cursor"))
    page = await request.app.state.services.store.query(principal.tenant, q)
    headers = {}
    if page.next_cursor:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
        params.append(("cursor", page.next_cursor))
        next_url = request.url.replace_query_params(**dict(params))
        headers["Link"] = f'<{next_url}>; rel="next"'
    return json_response({"data": [event_record(e) for e in page.events],
                          "next_cursor": page.next_cursor}, headers=headers)


# ------------------------------------------------------------------ OpenAPI declarations

_WHEN = "a date (YYYY-MM-DD) or an ISO 8601 date-time"
EVENTS_DOC = operation(
    ok={200: content("application/json", ref(VaultTermPage), "A page, oldest first.", headers={
        "Link": {"description": "`<next page URL>; rel=\"next\"` unless this is the last page.",
                 "schema": {"type": "string"}}})},
    shape=ErrorShape("application/json", ref(VaultTermError)), scope="events:read", params=(
        Param("from", {"type": "string"}, f"Events at or after this time: {_WHEN}."),
        Param("to", {"type": "string"},
              f"Events before this time: {_WHEN} (a date includes that whole day)."),
        Param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                        "default": DEFAULT_LIMIT}, "Events per page."),
        Param("cursor", {"type": "string"}, "The `next_cursor` of the previous page."),
    ))


def router() -> APIRouter:
    r = APIRouter(tags=["compat: vaultterm"])
    for path in ("/api/events/v1", "/events/v1"):
        r.add_api_route(path, list_events, methods=["GET"],
                        summary="VaultTerm: pull the event stream (cursor pages)", **EVENTS_DOC)
    return r


def render_error(request: Request, exc: ProblemError) -> Response:
    """``{"error": "<code>", "message": "<text>"}`` with the error's status."""
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return json_response({"error": _CODES.get(exc.status, "error"),
                          "message": error_message(exc)}, status=exc.status, headers=headers)


__all__ = ["PREFIX", "router", "render_error"]
