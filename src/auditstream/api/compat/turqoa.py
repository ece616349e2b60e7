"""The turqoa Events API (``turqoa-events-api``), served at ``/compat/turqoa``.

``GET /v1/events`` (also ``/api/v1/events``) with ``Authorization: Bearer <api key>``
(``X-API-Key`` works too) and the ``events:read`` scope answers::

    {"data": [record, ...],
     "meta": {"request_id": "req_…", "timestamp": "<now>"},
     "pagination": {"page", "per_page", "total_items", "total_pages", "has_next",
                    "has_previous"}}

A record has exactly the documented keys: ``id``, ``timestamp``, ``category``,
``severity``, ``source_module`` (``source.module``), ``source_device`` (``source.device``),
``title``, ``description``, ``location`` (``{"lat", "lng", "zone"}``, always an object),
``metadata`` (``{}`` when absent), ``requires_action`` (``false`` when absent),
``assigned_to``, ``incident_id``. Anything the event lacks is ``null``.

Scope and values outside the reference
    The profile serves the events of ``AUDITSTREAM_COMPAT_TURQOA_SCOPE`` (default: the
    reference's six categories; see ``scope.py``). A record only shows values the reference
    allows (:data:`SEVERITY`, :data:`CATEGORY`): severity ``info`` reads ``low``; a
    category outside the six (possible with a widened scope), or none, reads ``system``.
    Filters select exactly what the records show: ``severity=low`` includes ``info``
    events, ``category=system`` every event whose category is not one of the other five.

Filters (all combined with AND; ``a,b`` accepts either value where marked *list*)
    ``category`` (*list*): each value must be a catalog category (gate, perimeter,
    maritime, drone, system, decision), else 400 ``invalid_filter`` with the documented
    message ``Unknown category: 'x'. Valid categories: …``; ``all`` (the documented
    default) means no filter.
    ``severity`` (*list*): low, medium, high, critical, or ``all``; same error style.
    ``source_module`` (*list*) → ``source.module``; ``all`` means no filter.
    ``zone`` (*list*): "zone name or ID". A value matches ``location.zone``,
    ``location.zone_id`` or ``location.zone_name``, as given and as its other spelling in
    the zone directory ``AUDITSTREAM_COMPAT_TURQOA_ZONES`` (``id=Name; …``; by default the
    reference's and the demo's port), so producers may store the id, the name or both.
    Records show the zone's name where the directory knows it.
    ``requires_action``: ``true``/``false`` (also ``1``/``0``); ``false`` also matches
    events that do not carry the flag, as their records show ``false``.
    ``incident_id``: equality.
    ``search``: full text over title and description. Double-quoted parts are phrases,
    other words must each occur (``Nordic+Star`` → both words; ``"Nordic Star"`` → the
    phrase); a trailing ``*`` makes a word a prefix.
    ``start_date`` (inclusive) / ``end_date``: ISO 8601. ``end_date`` defaults to now and
    includes its instant; a date alone (``2026-04-06``) means through the end of that day.
    ``start_date`` defaults to 24 hours before ``end_date``, which is "24h ago" when
    ``end_date`` is not given and keeps an explicit past ``end_date`` from producing an
    empty window. A window whose start is after its end selects nothing (not an error).
    Free-form values (``source_module``, ``zone``) also match the whole parameter and the
    number or boolean they spell, as records spell those out as text.

Ordering and pages
    ``sort``: ``timestamp`` (default) or ``severity`` (ties broken by time, newest or
    oldest first with ``order``); ``order``: ``desc`` (default) or ``asc``. ``page``
    (default 1, from 1) and ``per_page`` (default 50, 1 to 200): a value out of range,
    including ``per_page`` above the documented maximum of 200, is a 400
    ``invalid_parameter`` rather than silently clamped, so a client never receives a
    different page size than it asked for without knowing. A page past the end is an
    empty ``data`` with the true totals. Pages are offsets over a keyset walk
    (``turen.offset_page``), whose cost grows with the offset: ``page × per_page`` may be
    at most ``turen.MAX_DEPTH`` (10,000), deeper pages are a 400 ``invalid_parameter``
    that says to narrow ``start_date``/``end_date``. ``total_pages`` is 0 when nothing
    matches.

Paths
    ``GET /v1/events`` (the reference's examples) and ``GET /api/v1/events`` (its heading).

Errors
    The seed documents one error object (on its WebSocket)::

        {"type": "error", "code": "invalid_filter", "message": "Unknown category: …"}

    Every error of this profile has that shape with the HTTP status: ``invalid_filter``
    (400, a filter value), ``invalid_parameter`` (400, paging/sorting or an unknown
    parameter), ``unauthorized`` (401, with ``WWW-Authenticate: Bearer``), ``forbidden``
    (403), ``not_found`` (404), ``method_not_allowed`` (405), ``service_unavailable`` (503).
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.responses import Response

from ...auth.principal import Principal
from ...errors import InvalidRequest, ProblemError
from ...model.catalog import categories
from ...model.times import US, format_us, now_us, parse_time
from ...query.filter import Cmp, Eq, Node, Not, Or, Text, and_
from ...settings import Settings
from ..deps import reader
from ..native.events import json_response
from ..openapi import ErrorShape, Param, content, operation, ref
from .fields import as_number, as_str, filter_values, first_str, scalars_shown_as
from .fields import obj as _obj
from .schemas import TurqoaError, TurqoaEventPage
from .scope import scope
from .turen import MAX_DEPTH, error_message, is_date_only, offset_page, param, values
from .value_map import ValueMap

PREFIX = "/compat/turqoa"
SEVERITIES = ("low", "medium", "high", "critical")
#: The reference's value sets, and how canonical values outside them read.
SEVERITY = ValueMap("severity", SEVERITIES, {"info": "low"})
CATEGORY = ValueMap("category", tuple(categories()), other="system")
#: The documented default of ``category``, ``severity`` and ``source_module``: no filter.
ALL = "all"
DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 200
DEFAULT_WINDOW_US = 24 * 3600 * US
DAY_US = 24 * 3600 * US
ZONE_PATHS = ("location.zone", "location.zone_id", "location.zone_name")

_PARAMS = frozenset({
    "category", "severity", "source_module", "zone", "start_date", "end_date",
    "requires_action", "incident_id", "search", "sort", "order", "page", "per_page",
})
_CODES = {400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
          503: "service_unavailable"}
_SEARCH_TERM = re.compile(r'"([^"]*)"|(\S+)')


def invalid_filter(message: str) -> InvalidRequest:
    return InvalidRequest(message, code="invalid_filter")


def invalid_parameter(message: str) -> InvalidRequest:
    return InvalidRequest(message, code="invalid_parameter")


# ------------------------------------------------------------------ parameters → filter


def _enum_list(request: Request, name: str, plural: str, vmap: ValueMap) -> Node | None:
    raw = param(request, name)
    vals = values(raw) if raw is not None else ()
    if not vals or ALL in vals:
        return None
    for v in vals:
        if v not in vmap.allowed:
            raise invalid_filter(
                f"Unknown {name}: {v[:40]!r}. Valid {plural}: {', '.join(vmap.allowed)}")
    return vmap.filter(vals)


@dataclass(frozen=True)
class Zones:
    """The zone directory (``AUDITSTREAM_COMPAT_TURQOA_ZONES``): zone id → zone name.

    The reference filters by "zone name or ID" and shows names in records, while producers
    store one or the other (the demo stores ids; the reference's records carry names).
    """

    names: dict[str, str]

    @classmethod
    def parse(cls, text: str) -> Zones:
        """``id=Name; id=Name`` (``;`` because names may hold commas)."""
        names = {}
        for item in (i.strip() for i in text.split(";")):
            zone_id, eq, name = item.partition("=")
            if not item:
                continue
            if not eq or not zone_id.strip() or not name.strip():
                raise ValueError(f"AUDITSTREAM_COMPAT_TURQOA_ZONES: {item!r} is not "
                                 "'id=Name' (pairs are separated by ';')")
            names[zone_id.strip()] = name.strip()
        return cls(names)

    def name(self, zone: str) -> str:
        return self.names.get(zone, zone)

    def spellings(self, zone: str) -> tuple[str, ...]:
        """A zone as given, its name if it is an id, its ids if it is a name."""
        ids = tuple(i for i, n in self.names.items() if n == zone)
        return tuple(dict.fromkeys((zone, *((self.names[zone],) if zone in self.names
                                             else ()), *ids)))


def configure(app: FastAPI, settings: Settings) -> None:
    """Called by ``mount``: read the zone directory (``ValueError`` if malformed)."""
    app.state.turqoa_zones = Zones.parse(settings.compat_turqoa_zones)


def _zone(request: Request) -> Node | None:
    raw = param(request, "zone")
    if raw is None or not values(raw):
        return None
    zones: Zones = request.app.state.turqoa_zones
    given = [v for v in filter_values(raw) if isinstance(v, str)]
    vals = tuple(x for v in given for z in zones.spellings(v) for x in scalars_shown_as(z))
    return Or(tuple(Eq(path, vals) for path in ZONE_PATHS))


def _requires_action(request: Request) -> Node | None:
    raw = param(request, "requires_action")
    if raw is None:
        return None
    word = raw.strip().lower()
    if word in ("true", "1"):
        return Eq("requires_action", (True,))
    if word in ("false", "0"):
        # Records show a missing flag as false, so the filter must agree with them.
        return Not(Eq("requires_action", (True,)))
    raise invalid_filter(f"Invalid requires_action: {raw!r}. Valid values: true, false")


def search_terms(text: str) -> tuple[str, ...]:
    """Words and ``"quoted phrases"`` of a search string, in order."""
    terms = []
    for m in _SEARCH_TERM.finditer(text):
        term = m.group(1) if m.group(1) is not None else m.group(2)
        if term.strip():
            terms.append(term)
    return tuple(terms)


def _time(raw: str, name: str) -> int:
    try:
        return parse_time(raw)
    except (ValueError, OverflowError):  # TimeParseError, or a number beyond any time
        raise invalid_filter(
            f"Invalid {name}: {raw[:40]!r}. Use ISO 8601, e.g. 2026-04-06T08:00:00Z"
        ) from None


def _window(request: Request, now: int) -> list[Node]:
    end_raw = param(request, "end_date")
    if end_raw is None:
        end, end_op = now, "<="
    elif is_date_only(end_raw):
        end, end_op = _time(end_raw, "end_date") + DAY_US, "<"  # through that whole day
    else:
        end, end_op = _time(end_raw, "end_date"), "<="
    start_raw = param(request, "start_date")
    start = _time(start_raw, "start_date") if start_raw is not None else end - DEFAULT_WINDOW_US
    return [Cmp("timestamp", ">=", start), Cmp("timestamp", end_op, end)]  # type: ignore[arg-type]


def events_filter(request: Request, now: int) -> Node:
    """The filter tree of one request (raises ``invalid_filter`` errors)."""
    nodes: list[Node | None] = [
        scope(request, "turqoa", now),
        _enum_list(request, "category", "categories", CATEGORY),
        _enum_list(request, "severity", "severities", SEVERITY),
    ]
    if (raw := param(request, "source_module")) is not None and (
            mods := values(raw)) and ALL not in mods:
        nodes.append(Eq("source.module", filter_values(raw)))
    nodes.append(_zone(request))
    nodes.append(_requires_action(request))
    if (raw := param(request, "incident_id")) is not None:
        nodes.append(Eq("incident_id", (raw,)))
    if (raw := param(request, "search")) is not None and (terms := search_terms(raw)):
        nodes.append(Text(terms))
    return and_(*nodes, *_window(request, now))


def _choice(request: Request, name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = param(request, name)
    if raw is None:
        return default
    if raw not in choices:
        raise invalid_parameter(f"Invalid {name}: {raw!r}. Valid values: {', '.join(choices)}")
    return raw


def _int(request: Request, name: str, default: int, hi: int) -> int:
    raw = param(request, name)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:  # also a number too long to convert
        raise invalid_parameter(f"Invalid {name}: {raw[:40]!r} is not an integer") from None
    if not 1 <= value <= hi:
        shown = str(value) if len(raw) <= 40 else f"{raw[:20]}…"
        raise invalid_parameter(f"Invalid {name}: must be between 1 and {hi}, got {shown}")
    return value


# ------------------------------------------------------------------ records



def event_record(event: dict[str, Any], zones: Zones) -> dict[str, Any]:
    """A canonical event in turqoa's documented record shape (and key order)."""
    source, loc = _obj(event, "source"), _obj(event, "location")
    zone = first_str(loc.get("zone"), loc.get("zone_name"), loc.get("zone_id"))
    return {
        "id": event["id"],
        "timestamp": event["timestamp"],
        "category": CATEGORY.render(event.get("category")),
        "severity": SEVERITY.render(event.get("severity")),
        "source_module": as_str(source.get("module")),
        "source_device": as_str(source.get("device")),
        "title": event.get("title"),
        "description": event.get("description"),
        "location": {"lat": as_number(loc.get("lat")), "lng": as_number(loc.get("lng")),
                     "zone": zones.name(zone) if zone is not None else None},
        "metadata": _obj(event, "metadata"),
        "requires_action": event.get("requires_action") is True,
        "assigned_to": event.get("assigned_to"),
        "incident_id": event.get("incident_id"),
    }


# ------------------------------------------------------------------ route


async def list_events(request: Request, principal: Principal = Depends(reader)) -> Response:
    """``GET /v1/events``: filtered, sorted, page-numbered events."""
    unknown = sorted(k for k in request.query_params if k not in _PARAMS)
    if unknown:
        raise invalid_parameter(f"Unknown parameter: {unknown[0]!r}. Valid parameters: "
                                f"{', '.join(sorted(_PARAMS))}")
    now = now_us()
    where = events_filter(request, now)
    sort = _choice(request, "sort", "timestamp", ("timestamp", "severity"))
    order = _choice(request, "order", "desc", ("asc", "desc"))
    page = _int(request, "page", 1, MAX_DEPTH)
    per_page = _int(request, "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)
    if page * per_page > MAX_DEPTH:
        raise invalid_parameter(
            f"Invalid page: page × per_page may be at most {MAX_DEPTH}, got "
            f"{page * per_page}; narrow the window with start_date/end_date to read further")
    events, total, _ = await offset_page(
        request.app.state.services.store, principal.tenant, where,
        offset=(page - 1) * per_page, limit=per_page,
        sort=sort, order=order,  # type: ignore[arg-type]
    )
    total_pages = math.ceil(total / per_page)
    request_id = "req_" + secrets.token_hex(8)
    return json_response({
        "data": [event_record(e, request.app.state.turqoa_zones) for e in events],
        "meta": {"request_id": request_id, "timestamp": format_us(now - now % US)},
        "pagination": {
            "page": page, "per_page": per_page, "total_items": total,
            "total_pages": total_pages, "has_next": page < total_pages,
            "has_previous": page > 1,
        },
    }, headers={"X-Request-Id": request_id})


# ------------------------------------------------------------------ OpenAPI declarations

_ISO = "ISO 8601 date-time; a date alone means"
EVENTS_DOC = operation(
    ok={200: content("application/json", ref(TurqoaEventPage), "A page of events.", headers={
        "X-Request-Id": {"description": "Also in `meta.request_id`.",
                         "schema": {"type": "string"}}})},
    shape=ErrorShape("application/json", ref(TurqoaError)), scope="events:read", params=(
        Param("category", {"type": "string"},
              f"{', '.join(categories())}; commas: any of."),
        Param("severity", {"type": "string"}, f"{', '.join(SEVERITIES)}; commas: any of."),
        Param("source_module", {"type": "string"}, "Originating module; commas: any of."),
        Param("zone", {"type": "string"}, "Zone name or ID; commas: any of."),
        Param("start_date", {"type": "string"},
              f"{_ISO} its midnight UTC (default: 24 hours before end_date)."),
        Param("end_date", {"type": "string"},
              f"{_ISO} through the end of that day (default: now)."),
        Param("requires_action", {"type": "boolean"},
              "Events that need (true) or do not need (false) operator action."),
        Param("incident_id", {"type": "string"}, "Events linked to this incident."),
        Param("search", {"type": "string"},
              "Full text over title and description; \"quoted phrases\", `word*` prefixes."),
        Param("sort", {"type": "string", "enum": ["timestamp", "severity"],
                       "default": "timestamp"}, "Sort field."),
        Param("order", {"type": "string", "enum": ["asc", "desc"], "default": "desc"},
              "Sort direction."),
        Param("page", {"type": "integer", "minimum": 1, "default": 1}, "Page number."),
        Param("per_page", {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE,
                           "default": DEFAULT_PER_PAGE}, "Items per page."),
    ))


def router() -> APIRouter:
    r = APIRouter(tags=["compat: turqoa"])
    r.add_api_route("/v1/events", list_events, methods=["GET"],
                    summary="turqoa: list events (page/per_page)", **EVENTS_DOC)
    # The reference's heading says GET /api/v1/events, its examples /v1/events: serve both.
    r.add_api_route("/api/v1/events", list_events, methods=["GET"],
                    summary="turqoa: list events (page/per_page)", **EVENTS_DOC)
    from .turqoa_stream import add_routes  # it builds on this module's records and filters

    add_routes(r)  # the WebSocket stream, at both paths too
    return r


def render_error(request: Request, exc: ProblemError) -> Response:
    """``{"type": "error", "code", "message"}`` with the error's status."""
    code = exc.extra.get("code") or _CODES.get(exc.status, "error")
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return json_response({"type": "error", "code": code, "message": error_message(exc)},
                         status=exc.status, headers=headers)


__all__ = ["PREFIX", "router", "render_error"]
