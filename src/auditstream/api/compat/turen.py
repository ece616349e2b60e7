"""The turen Events API (``turen-events-api``), served at ``/compat/turen``.

Routes (relative to the prefix), all authenticated with ``X-API-Key`` (``Authorization:
Bearer`` works too, as everywhere in auditstream) and needing the ``events:read`` scope:

``GET /api/v1/events``
    ``{"events": [...], "pagination": {"limit", "offset", "total", "has_more"}}``, newest
    first (the seed does not say; newest first is what an activity list shows).

    * ``limit``: default 50, at most :data:`MAX_LIMIT` (1000); ``offset``: default 0, and
      ``offset + limit`` at most :data:`MAX_DEPTH` (10,000). A value that is not an integer
      in range, whatever its size, is a 400.
    * ``type`` (``install``, ``audit``) and ``outcome`` (``allow``, ``review``, ``block``):
      ``all`` (the documented default) means no filter; a comma separates several accepted
      values (``outcome=review,block``); any other value is a 400.
    * ``ecosystem`` (``npm``, ``pip``, ``go``, ``cargo``; else a 400) →
      ``subject.ecosystem``, ``package`` → ``subject.package`` (commas as above; the whole
      value is matched too, so a package name holding a comma is found).
    * ``since`` (inclusive) / ``until`` (exclusive): ISO 8601 / RFC 3339 date-times; a
      date alone means midnight UTC and Unix milliseconds are accepted as well.
    * A parameter given with an empty value counts as absent. An unknown parameter is a 400,
      not silently ignored: a misspelt filter must not widen the answer.

    A field an event lacks is ``null`` in the record (``args`` is ``[]``; ``metadata``
    and ``payload`` are ``{}``).

``GET /api/v1/stats/summary``
    ``{"total_events", "outcomes": {...}, "ecosystems": {...}, "period"}`` over the last
    ``period`` (``24h``, ``7d``, ``30d`` (default) or ``90d``; anything else is a 400).
    Counted exactly as the records show the events: ``outcomes`` adds up to
    ``total_events``; events whose ecosystem reads null are in ``total_events`` only. Maps
    list the largest groups first (ties in the reference's order).

``GET /api/v1/events/llm``
    LLM API calls, newest first, paged like ``/events``: ``{"events": [{"id", "timestamp",
    "client_id", "provider", "model", "input_tokens", "output_tokens", "latency_ms",
    "cost_usd"}], "pagination": {...}}``. Filters: ``provider`` → ``llm.provider``,
    ``model`` → ``llm.model``, ``since``, ``until``, ``limit``, ``offset``.

Scopes (``scope.py``)
    ``/events`` and ``/stats/summary`` serve the events of ``AUDITSTREAM_COMPAT_TUREN_SCOPE``
    (default ``type:install,audit``: the reference's two types), so the summary counts
    turen events only. The reference keeps LLM calls in a store of their own, so
    ``/events/llm`` has its own scope, ``AUDITSTREAM_COMPAT_TUREN_LLM_SCOPE`` (default: type
    ``llm.call`` or any event carrying ``llm.model`` or ``llm.provider``, as producers using
    OpenTelemetry GenAI attributes may name their type differently).

Values outside the reference (:data:`TYPE`, :data:`OUTCOME`, :data:`ECOSYSTEM`)
    A widened scope can hold canonical values the reference does not have; records show
    them as: ``type`` other than install → ``audit``; ``outcome`` ``allowed``/``success``
    → ``allow``, ``blocked``/``deny``/``denied`` → ``block``, anything else or none →
    ``review``; ``ecosystem`` ``pypi``/``PyPI`` → ``pip``, ``golang``/``Go`` → ``go``,
    ``crates.io`` → ``cargo`` (purl and OSV names of the same registries), anything else →
    ``null``. A filter on a value selects exactly the events that show it
    (``outcome=review`` includes the events without an outcome).

Offset pagination over a keyset store
    The store pages by keyset cursor only. :func:`offset_page` walks to ``offset`` in
    keyset pages of at most 1000 events (so memory stays bounded whatever the offset) and
    then reads the requested page with its total. Its cost grows with ``offset``, which is
    why ``offset + limit`` stops at :data:`MAX_DEPTH` (Elasticsearch's
    ``max_result_window``); deeper reads narrow with ``since``/``until``. turqoa's
    ``page``/``per_page`` reuses the same function and bound.

Errors
    The seed documents no error body. This profile answers
    ``{"error": {"code": "<code>", "message": "<what and how to fix it>"}}`` with the HTTP
    status: ``invalid_parameter`` (400), ``unauthorized`` (401, with ``WWW-Authenticate``),
    ``forbidden`` (403), ``not_found`` (404), ``method_not_allowed`` (405),
    ``conflict`` (409), ``payload_too_large`` (413), ``service_unavailable`` (503).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ...auth.principal import Principal
from ...errors import InvalidRequest, ProblemError
from ...model.severity import SEVERITIES
from ...model.times import now_us, parse_time
from ...query.filter import Cmp, Eq, Node, and_
from ...store.base import AggregateSpec, EventQuery, EventStore, Order, SortField
from ..deps import reader
from ..native.events import json_response
from ..openapi import ErrorShape, Param, content, operation, ref
from .fields import as_number, as_str, filter_values
from .fields import obj as _obj
from .schemas import TurenError, TurenEventPage, TurenLlmPage, TurenSummary
from .scope import scope
from .value_map import ValueMap

PREFIX = "/compat/turen"
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
#: Page size used while walking to an offset: the largest page the store is asked for.
SKIP_CHUNK = 1000
PERIODS = {"24h": 24, "7d": 7 * 24, "30d": 30 * 24, "90d": 90 * 24}  # hours
#: Deepest position an offset page may reach (``offset + limit``), as Elasticsearch's
#: ``max_result_window``: the walk to an offset reads every event before it, so deeper
#: reads are refused with a hint to narrow the window instead.
MAX_DEPTH = 10_000
#: The reference's value sets, and how canonical values outside them read (module docstring).
TYPE = ValueMap("type", ("install", "audit"), other="audit")
OUTCOME = ValueMap("outcome", ("allow", "review", "block"), {
    "allowed": "allow", "success": "allow", "blocked": "block", "deny": "block",
    "denied": "block"}, other="review")
#: purl types and OSV ecosystem names of the same registries.
ECOSYSTEM = ValueMap("subject.ecosystem", ("npm", "pip", "go", "cargo"), {
    "pypi": "pip", "PyPI": "pip", "golang": "go", "Go": "go", "crates.io": "cargo"})

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


def int_arg(raw: str | None, name: str, default: int, lo: int, hi: int) -> int:
    """An integer parameter in ``[lo, hi]``, else a 400 (whatever its size)."""
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:  # also a number too long to convert
        raise bad_param(name, f"{raw[:40]!r} is not an integer") from None
    if not lo <= value <= hi:
        shown = str(value) if len(raw) <= 40 else f"{raw[:20]}…"
        raise bad_param(name, f"must be between {lo} and {hi}, got {shown}")
    return value


def time_arg(raw: str, name: str) -> int:
    """An ISO 8601 time (or date, or Unix ms) in microseconds, else a 400."""
    try:
        return parse_time(raw)
    except (ValueError, OverflowError):  # TimeParseError, or a number beyond any time
        raise bad_param(name, f"{raw[:40]!r} is not an ISO 8601 time, a date or Unix "
                        "milliseconds") from None


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

    Severity order is time order within each severity, most severe first (``desc``): it
    is walked one severity at a time, skipping whole severities by their counts, so every
    read is a range of the store's ``(tenant, severity, ts)`` index. Asked for all
    severities at once, the store sorted the whole window again for every chunk of the
    walk (a deep page of 120k events took 47 s; see bench/RESULTS.md).
    """
    if sort == "severity":
        return await _offset_page_by_severity(store, tenant, where, offset=offset,
                                              limit=limit, order=order)
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


async def _offset_page_by_severity(
    store: EventStore, tenant: str, where: Node, *, offset: int, limit: int, order: Order,
) -> tuple[list[dict[str, Any]], int, bool]:
    levels = SEVERITIES[::-1] if order == "desc" else SEVERITIES
    wheres = [and_(where, Eq("severity", (level,))) for level in levels]
    counts = await asyncio.gather(*(store.count(tenant, w) for w in wheres))
    total = sum(counts)
    events: list[dict[str, Any]] = []
    skip = offset
    for level_where, count in zip(wheres, counts, strict=True):
        if len(events) >= limit:
            break
        if skip >= count:
            skip -= count
            continue
        page, _, _ = await offset_page(store, tenant, level_where, offset=skip,
                                       limit=limit - len(events), order=order)
        events += page
        skip = 0
    return events, total, offset + len(events) < total


# ------------------------------------------------------------------ records



def event_record(event: dict[str, Any]) -> dict[str, Any]:
    """A canonical event in turen's documented record shape (and key order)."""
    actor, subject = _obj(event, "actor"), _obj(event, "subject")
    args = actor.get("args")
    return {
        "id": event["id"],
        "client_id": as_str(_obj(event, "source").get("client_id")),
        "timestamp": event["timestamp"],
        "type": TYPE.render(event["type"]),
        "outcome": OUTCOME.render(event.get("outcome")),
        "actor": {
            "command": as_str(actor.get("command")),
            # A list in every documented example; [] rather than null keeps clients iterating.
            "args": args if isinstance(args, list) else [] if args is None else [args],
            "version": as_str(actor.get("version")),
        },
        "subject": {
            "ecosystem": ECOSYSTEM.render(subject.get("ecosystem")),
            "package": as_str(subject.get("package")),
            "version": as_str(subject.get("version")),
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
        "client_id": as_str(_obj(event, "source").get("client_id")),
        "provider": as_str(llm.get("provider")),
        "model": as_str(llm.get("model")),
        "input_tokens": as_number(llm.get("input_tokens")),
        "output_tokens": as_number(llm.get("output_tokens")),
        "latency_ms": as_number(llm.get("latency_ms")),
        "cost_usd": as_number(llm.get("cost_usd")),
    }


# ------------------------------------------------------------------ routes


def _eq_filter(request: Request, name: str, path: str) -> Node | None:
    """Equality on a free-form field: any ``a,b`` item, as the records spell it."""
    raw = param(request, name)
    return Eq(path, filter_values(raw)) if raw is not None and values(raw) else None


def _enum_filter(request: Request, name: str, vmap: ValueMap, *,
                 all_word: bool = False) -> Node | None:
    """Exactly the events whose records show one of the ``a,b`` values (400 for a value
    the reference does not have); ``all`` (where documented) means no filter."""
    raw = param(request, name)
    vals = values(raw) if raw is not None else ()
    if not vals or (all_word and "all" in vals):
        return None
    bad = [v for v in vals if v not in vmap.allowed]
    if bad:
        choices = ", ".join((*vmap.allowed, "all") if all_word else vmap.allowed)
        raise bad_param(name, f"{bad[0][:40]!r}; use one of {choices}")
    return vmap.filter(vals)


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
    offset = int_arg(param(request, "offset"), "offset", 0, 0, MAX_DEPTH)
    if offset + limit > MAX_DEPTH:
        raise bad_param("offset", f"offset + limit may be at most {MAX_DEPTH}, got "
                        f"{offset + limit}; narrow the window with since/until to read "
                        "further back")
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
        scope(request, "turen"),
        _enum_filter(request, "type", TYPE, all_word=True),
        _enum_filter(request, "outcome", OUTCOME, all_word=True),
        _enum_filter(request, "ecosystem", ECOSYSTEM),
        _eq_filter(request, "package", "subject.package"),
        *_time_filters(request),
    )
    return await _paged(request, principal, where, event_record)


async def list_llm_events(request: Request, principal: Principal = Depends(reader)) -> Response:
    """``GET /api/v1/events/llm``: LLM calls with tokens, latency and cost, newest first."""
    reject_unknown(request, _LLM_PARAMS)
    where = and_(
        scope(request, "turen_llm"),
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
    where = and_(scope(request, "turen", now), Cmp("timestamp", ">=", since),
                 Cmp("timestamp", "<=", now))
    store, tenant = request.app.state.services.store, principal.tenant
    total, outcomes, ecosystems = await asyncio.gather(
        store.aggregate(tenant, where, AggregateSpec()),
        mapped_counts(store, tenant, where, OUTCOME),
        mapped_counts(store, tenant, where, ECOSYSTEM),
    )
    total_events = total[0].rows[0].count if total and total[0].rows else 0
    if OUTCOME.other is not None:  # the catch-all counts every event no other value names
        outcomes[OUTCOME.other] = total_events - sum(outcomes.values())
    return json_response({"total_events": total_events, "outcomes": _largest_first(
        outcomes, OUTCOME), "ecosystems": _largest_first(ecosystems, ECOSYSTEM),
        "period": period})


async def mapped_counts(store: EventStore, tenant: str, where: Node,
                        vmap: ValueMap) -> dict[str, int]:
    """How many events of ``where`` show each allowed value that ``vmap`` names
    (the catch-all's count is the rest, which the caller knows)."""
    named = tuple(w for w in vmap.allowed if w != vmap.other)
    buckets = await store.aggregate(tenant, and_(where, vmap.filter(named)),
                                    AggregateSpec(group_by=vmap.path, max_groups=10**6))
    out: dict[str, int] = {}
    for row in (r for b in buckets for r in b.rows):
        shown = vmap.render(row.key)
        if shown is not None:
            out[shown] = out.get(shown, 0) + row.count
    return out


def _largest_first(counts: dict[str, int], vmap: ValueMap) -> dict[str, int]:
    """Non-zero counts, largest first; ties in the reference's order."""
    order = {v: i for i, v in enumerate(vmap.allowed)}
    return {k: n for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], order[kv[0]]))
            if n > 0}


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


__all__ = ["PREFIX", "router", "render_error", "offset_page", "error_message", "MAX_DEPTH"]
