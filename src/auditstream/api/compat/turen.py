"""The turen Events API (``turen-events-api``), served at ``/compat/turen``.

Routes (relative to the prefix), all authenticated with ``X-API-Key`` (``Authorization:
Bearer`` works too, as everywhere in auditstream) and needing the ``events:read`` scope:

``GET /api/v1/events``
    ``{"events": [...], "pagination": {"limit", "offset", "total", "has_more"}}``, newest
    first (the seed does not say; newest first is what an activity list shows).

    * ``limit``: default 50, at most :data:`MAX_LIMIT` (1000); ``offset``: default 0. A
      value that is not an integer in range is a 400.
    * ``type``, ``outcome``: equality; ``all`` (the documented default) means no filter; a
      comma separates several accepted values (``outcome=review,block``).
    * ``ecosystem`` → ``subject.ecosystem``, ``package`` → ``subject.package`` (commas as
      above).
    * ``since`` (inclusive) / ``until`` (exclusive): ISO 8601 / RFC 3339 date-times; a
      date alone means midnight UTC and Unix milliseconds are accepted as well.
    * A parameter given with an empty value counts as absent. An unknown parameter is a 400,
      not silently ignored: a misspelt filter must not widen the answer.

    The profile shows the tenant's whole stream, not only ``install``/``audit`` events:
    ``type=all`` means every type. A field an event lacks is ``null`` in the record
    (``args`` is ``[]``; ``metadata`` and ``payload`` are ``{}``).

``GET /api/v1/stats/summary``
    ``{"total_events", "outcomes": {...}, "ecosystems": {...}, "period"}`` over the last
    ``period`` (``24h``, ``7d``, ``30d`` (default) or ``90d``; anything else is a 400).
    Maps list the largest groups first; events without an outcome or ecosystem are counted
    in ``total_events`` only.

``GET /api/v1/events/llm``
    LLM API calls, newest first, paged like ``/events``: ``{"events": [{"id", "timestamp",
    "client_id", "provider", "model", "input_tokens", "output_tokens", "latency_ms",
    "cost_usd"}], "pagination": {...}}``. An LLM call is an event of type ``llm.call`` *or*
    any event carrying ``llm.model`` or ``llm.provider`` (producers using OpenTelemetry
    GenAI attributes may name their type differently). Filters: ``provider`` →
    ``llm.provider``, ``model`` → ``llm.model``, ``since``, ``until``, ``limit``,
    ``offset``. Declaring ``llm.model`` an indexed path makes this selection use an index.

Offset pagination over a keyset store
    The store pages by keyset cursor only. :func:`offset_page` walks to ``offset`` in
    keyset pages of at most 1000 events (so memory stays bounded whatever the offset) and
    then reads the requested page with its total. Cost grows with ``offset``; clients that
    go deep should narrow with ``since``/``until`` instead. turqoa's ``page``/``per_page``
    reuses the same function.

Errors
    The seed documents no error body. This profile answers
    ``{"error": {"code": "<code>", "message": "<what and how to fix it>"}}`` with the HTTP
    status: ``invalid_parameter`` (400), ``unauthorized`` (401, with ``WWW-Authenticate``),
    ``forbidden`` (403), ``not_found`` (404), ``method_not_allowed`` (405),
    ``conflict`` (409), ``payload_too_large`` (413), ``service_unavailable`` (503).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ...auth.principal import Principal
from ...errors import InvalidRequest, ProblemError
from ...model.times import TimeParseError, now_us, parse_time
from ...query.filter import Cmp, Eq, Exists, Node, Or, and_
from ...store.base import EventQuery, EventStore, Order, SortField
from ..deps import reader
from ..native.events import json_response
from ..native.stats import summary
from ..openapi import ErrorShape, Param, content, operation, ref
from .fields import obj as _obj
from .schemas import TurenError, TurenEventPage, TurenLlmPage, TurenSummary

PREFIX = "/compat/turen"
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
#: Page size used while walking to an offset: the largest page the store is asked for.
SKIP_CHUNK = 1000
PERIODS = {"24h": 24, "7d": 7 * 24, "30d": 30 * 24, "90d": 90 * 24}  # hours
LLM_TYPE = "llm.call"

_EVENT_PARAMS = frozenset({"limit", "offset", "type", "outcome", "ecosystem", "package",
                           "since", "until"})
_LLM_PARAMS = frozenset({"limit", "offset", "provider", "model", "since", "until"})
_SUMMARY_PARAMS = frozenset({"period"})
_CODES = {400: "invalid_parameter", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
          503: "service_unavailable"}


# ------------------------------------------------------------------ shared helpers


def error_message(exc: ProblemError) -> str:
    """The error's detail followed by its field reasons, as one human-readable line."""
    reasons = "; ".join(f"{e.get('field', '?')}: {e.get('reason', '')}" for e in exc.errors)
    return f"{exc.detail} ({reasons})" if reasons else exc.detail


def bad_param(name: str, reason: str) -> InvalidRequest:
    """A 400 naming the parameter; profiles render ``detail`` as their message."""
    return InvalidRequest(f"invalid {name}: {reason}", param=name)


def reject_unknown(request: Request, known: frozenset[str]) -> None:
    """400 for a parameter the route does not document (a typo must not widen a query)."""
    unknown = sorted({k for k in request.query_params if k not in known})
    if unknown:
        raise bad_param(unknown[0], f"unknown parameter; accepted: {', '.join(sorted(known))}")


def param(request: Request, name: str) -> str | None:
    """The parameter's value, or None when absent or empty."""
    raw = request.query_params.get(name)
    return raw if raw not in (None, "") else None


def int_arg(raw: str | None, name: str, default: int, lo: int, hi: int | None) -> int:
    """An integer parameter in ``[lo, hi]`` (``hi`` None: no upper bound), else a 400."""
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise bad_param(name, f"{raw!r} is not an integer") from None
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise bad_param(name, f"must be {bound}, got {value}")
    return value


def time_arg(raw: str, name: str) -> int:
    """An ISO 8601 time (or date, or Unix ms) in microseconds, else a 400."""
    try:
        return parse_time(raw)
    except TimeParseError as exc:
        raise bad_param(name, f"{exc}") from None


def is_date_only(raw: str) -> bool:
    """True for a bare ``YYYY-MM-DD`` (which upper bounds read as "through that day")."""
    text = raw.strip()
    return len(text) == 10 and text[4] == "-" and text[7] == "-"


def values(raw: str) -> tuple[str, ...]:
    """``a,b`` → ("a", "b"), blanks dropped."""
    return tuple(v.strip() for v in raw.split(",") if v.strip())


async def offset_page(
    store: EventStore, tenant: str, where: Node, *, offset: int, limit: int,
    sort: SortField = "timestamp", order: Order = "desc",
) -> tuple[list[dict[str, Any]], int, bool]:
    """Events ``[offset, offset + limit)`` of the ordered result, its total, and has_more.

    Walks the store's keyset pages (at most :data:`SKIP_CHUNK` events each) up to
    ``offset`` and reads the requested page from there, so memory is bounded by the chunk
    size and the skipped events are never held together.
    """
    cursor: str | None = None
    skip = offset
    while skip > 0:
        page = await store.query(tenant, EventQuery(
            filter=where, sort=sort, order=order, limit=min(skip, SKIP_CHUNK), cursor=cursor))
        skip -= len(page.events)
        if not page.has_more:
            # The offset lies past the end: nothing to show, but the total is still useful.
            return [], await store.count(tenant, where), False
        cursor = page.next_cursor
    page = await store.query(tenant, EventQuery(
        filter=where, sort=sort, order=order, limit=limit, cursor=cursor, include_total=True))
    total = page.total if page.total is not None else await store.count(tenant, where)
    return page.events, total, page.has_more


# ------------------------------------------------------------------ records



def event_record(event: dict[str, Any]) -> dict[str, Any]:
    """A canonical event in turen's documented record shape (and key order)."""
    actor, subject = _obj(event, "actor"), _obj(event, "subject")
    args = actor.get("args")
    return {
        "id": event["id"],
        "client_id": _obj(event, "source").get("client_id"),
        "timestamp": event["timestamp"],
        "type": event["type"],
        "outcome": event.get("outcome"),
        "actor": {
            "command": actor.get("command"),
            # A list in every documented example; [] rather than null keeps clients iterating.
            "args": args if args is not None else [],
            "version": actor.get("version"),
        },
        "subject": {
            "ecosystem": subject.get("ecosystem"),
            "package": subject.get("package"),
            "version": subject.get("version"),
        },
        "metadata": _obj(event, "metadata"),
        "payload": _obj(event, "payload"),
    }


def llm_record(event: dict[str, Any]) -> dict[str, Any]:
    """An LLM call: identity, client and the canonical ``llm.*`` figures."""
    llm = _obj(event, "llm")
    return {
        "id": event["id"],
        "timestamp": event["timestamp"],
        "client_id": _obj(event, "source").get("client_id"),
        "provider": llm.get("provider"),
        "model": llm.get("model"),
        "input_tokens": llm.get("input_tokens"),
        "output_tokens": llm.get("output_tokens"),
        "latency_ms": llm.get("latency_ms"),
        "cost_usd": llm.get("cost_usd"),
    }


# ------------------------------------------------------------------ routes


def _eq_filter(request: Request, name: str, path: str, *, all_word: bool = False) -> Node | None:
    raw = param(request, name)
    if raw is None or (all_word and raw == "all"):
        return None
    vals = values(raw)
    return Eq(path, vals) if vals else None


def _time_filters(request: Request) -> list[Node]:
    out: list[Node] = []
    if (raw := param(request, "since")) is not None:
        out.append(Cmp("timestamp", ">=", time_arg(raw, "since")))
    if (raw := param(request, "until")) is not None:
        out.append(Cmp("timestamp", "<", time_arg(raw, "until")))
    return out


async def _paged(
    request: Request, principal: Principal, where: Node,
    render: Callable[[dict[str, Any]], dict[str, Any]],
) -> Response:
    limit = int_arg(param(request, "limit"), "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = int_arg(param(request, "offset"), "offset", 0, 0, None)
    events, total, has_more = await offset_page(
        request.app.state.services.store, principal.tenant, where, offset=offset, limit=limit)
    return json_response({
        "events": [render(e) for e in events],
        "pagination": {"limit": limit, "offset": offset, "total": total, "has_more": has_more},
    })


async def list_events(request: Request, principal: Principal = Depends(reader)) -> Response:
    """``GET /api/v1/events``: filtered, offset-paged events, newest first."""
    reject_unknown(request, _EVENT_PARAMS)
    where = and_(
        _eq_filter(request, "type", "type", all_word=True),
        _eq_filter(request, "outcome", "outcome", all_word=True),
        _eq_filter(request, "ecosystem", "subject.ecosystem"),
        _eq_filter(request, "package", "subject.package"),
        *_time_filters(request),
    )
    return await _paged(request, principal, where, event_record)


def llm_filter() -> Node:
    """What counts as an LLM call (see the module docstring)."""
    return Or((Eq("type", (LLM_TYPE,)), Exists("llm.model"), Exists("llm.provider")))


async def list_llm_events(request: Request, principal: Principal = Depends(reader)) -> Response:
    """``GET /api/v1/events/llm``: LLM calls with tokens, latency and cost, newest first."""
    reject_unknown(request, _LLM_PARAMS)
    where = and_(
        llm_filter(),
        _eq_filter(request, "provider", "llm.provider"),
        _eq_filter(request, "model", "llm.model"),
        *_time_filters(request),
    )
    return await _paged(request, principal, where, llm_record)


async def stats_summary(request: Request, principal: Principal = Depends(reader)) -> Response:
    """``GET /api/v1/stats/summary``: totals by outcome and ecosystem over ``period``."""
    reject_unknown(request, _SUMMARY_PARAMS)
    period = param(request, "period") or "30d"
    if period not in PERIODS:
        raise bad_param("period", f"{period!r}; use one of {', '.join(PERIODS)}")
    now = now_us()
    since = now - PERIODS[period] * 3_600_000_000
    where = and_(Cmp("timestamp", ">=", since), Cmp("timestamp", "<=", now))
    doc = await summary(request.app.state.services.store, principal.tenant, where, top=1000,
                        dims={"outcomes": "outcome", "ecosystems": "subject.ecosystem"})
    return json_response({"total_events": doc["total_events"], "outcomes": doc["outcomes"],
                          "ecosystems": doc["ecosystems"], "period": period})


# ------------------------------------------------------------------ OpenAPI declarations

ERRORS = ErrorShape("application/json", ref(TurenError))
_TIME = "ISO 8601 date-time (a date alone is midnight UTC; Unix milliseconds accepted)"
_PAGE_PARAMS = (
    Param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                    "default": DEFAULT_LIMIT}, "Number of events to return."),
    Param("offset", {"type": "integer", "minimum": 0, "default": 0}, "Pagination offset."),
    Param("since", {"type": "string"}, f"Events at or after this time: {_TIME}."),
    Param("until", {"type": "string"}, f"Events before this time: {_TIME}."),
)
EVENTS_DOC = operation(
    ok={200: content("application/json", ref(TurenEventPage), "A page of events.")},
    shape=ERRORS, scope="events:read", params=(
        *_PAGE_PARAMS,
        Param("type", {"type": "string", "default": "all"},
              "Event type (`install`, `audit` …); `all` for every type; commas: any of."),
        Param("outcome", {"type": "string", "default": "all"},
              "`allow`, `review`, `block`; `all` for any; commas: any of."),
        Param("ecosystem", {"type": "string"}, "npm, pip, go, cargo …; commas: any of."),
        Param("package", {"type": "string"}, "Package name; commas: any of."),
    ))
LLM_DOC = operation(
    ok={200: content("application/json", ref(TurenLlmPage), "A page of LLM calls.")},
    shape=ERRORS, scope="events:read", params=(
        *_PAGE_PARAMS,
        Param("provider", {"type": "string"}, "LLM provider; commas: any of."),
        Param("model", {"type": "string"}, "Model; commas: any of."),
    ))
SUMMARY_DOC = operation(
    ok={200: content("application/json", ref(TurenSummary), "Totals of the period.")},
    shape=ERRORS, scope="events:read", params=(
        Param("period", {"type": "string", "enum": list(PERIODS), "default": "30d"},
              "The period that ends now."),
    ))


def router() -> APIRouter:
    """The profile's routes; ``/events/llm`` is declared before anything under ``/events/``."""
    r = APIRouter(tags=["compat: turen"])
    r.add_api_route("/api/v1/events/llm", list_llm_events, methods=["GET"],
                    summary="turen: LLM call events", **LLM_DOC)
    r.add_api_route("/api/v1/events", list_events, methods=["GET"],
                    summary="turen: list events (offset pages)", **EVENTS_DOC)
    r.add_api_route("/api/v1/stats/summary", stats_summary, methods=["GET"],
                    summary="turen: summary stats", **SUMMARY_DOC)
    return r


def render_error(request: Request, exc: ProblemError) -> Response:
    """``{"error": {"code", "message"}}`` with the error's status (see module docstring)."""
    code = _CODES.get(exc.status, "error")
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return json_response({"error": {"code": code, "message": error_message(exc)}},
                         status=exc.status, headers=headers)


__all__ = ["PREFIX", "router", "render_error", "offset_page", "error_message"]
