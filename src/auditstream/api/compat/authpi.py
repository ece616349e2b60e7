"""The authpi profile: account-scoped event list, aggregate and get, timestamps in Unix ms.

Routes (relative to ``PREFIX``)::

    GET /v1/accounts/{account_id}/events
    GET /v1/accounts/{account_id}/events/aggregate
    GET /v1/accounts/{account_id}/events/{event_id}

Behaviour where the seed is silent (each choice is also in ``docs/compat-platform-authpi.md``):

* **Accounts.** ``account_id`` is the tenant. It must equal the credential's tenant, else
  403 (checked after authentication, before parameters). An id of another account, or of
  no event, is 404.
* **Auth.** ``Authorization: Bearer <API key or JWT>`` or ``X-API-Key``; the ``events:read``
  scope is required (403 without it).
* **Errors** (``ApiError``): ``{"error": {"type": "<slug>", "code": <HTTP status>,
  "message": "<text>", "param": "<query parameter>"}}``; ``param`` only when one parameter
  is at fault. Slugs: ``invalid_request`` (400), ``unauthorized`` (401), ``forbidden`` (403),
  ``not_found`` (404), otherwise one named after the status.
* **Parameters.** ``limit`` is an integer 1–100 (default 50); ``after``/``before`` are Unix
  milliseconds (fractions allowed), both exclusive: ``timestamp > after`` and
  ``timestamp < before``. A malformed value is a 400 naming the parameter. ``user_id``,
  ``client_id`` and ``issuer_id`` are strings; as records spell ids out as text, a value
  also matches the JSON number or boolean it spells (``42``, ``4.5``, ``true``).
  ``event_types`` is a comma list (any of). Unknown parameters are ignored, as authpi
  clients may send parameters of other endpoints.
* **Scope.** The reference's events are "a complete audit trail of all actions in your
  account", so the profile serves the tenant's whole stream unless
  ``AUDITSTREAM_COMPAT_AUTHPI_SCOPE`` (a ``q`` filter, see ``scope.py``) narrows it; the
  scope applies to list, aggregate and get (an event outside it is a 404).
* **List.** ``{"data": [event…], "next_cursor": str | null, "has_more": bool}``, newest
  first, keyset cursor (stable while events are being added).
* **Event.** See ``to_record``: every key is always present, ``null`` when unknown.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import Response

from ...auth.principal import Principal
from ...errors import InvalidRequest, NotFound, PermissionDenied, ProblemError
from ...model.times import parse_us
from ...query.filter import Cmp, Eq, Node, and_
from ...store.base import AggregateSpec, Bucket, EventQuery
from ..deps import authenticate
from ..openapi import ErrorShape, Param, content, operation, ref
from .fields import as_str as _str
from .fields import first_str as _first
from .fields import obj as _obj
from .fields import scalars_shown_as
from .schemas import ApiError, AuthpiAggregate, AuthpiEvent, AuthpiEventList
from .scope import in_scope, scope

PREFIX = "/compat/authpi"
JSON = "application/json"

#: authpi dimension → canonical path (group_by and count_unique; records read the same paths).
DIMENSIONS: dict[str, str] = {
    "type": "type",
    "auth_type": "context.auth_type",
    "issuer_id": "source.issuer_id",
    "user_id": "context.user_id",
    "client_id": "source.client_id",
    "org_id": "context.org_id",
    "agent_id": "context.agent_id",
}
INTERVALS = ("hour", "day", "week")
LIMIT_DEFAULT, LIMIT_MAX = 50, 100
_ERROR_TYPES = {400: "invalid_request", 401: "unauthorized", 403: "forbidden",
                404: "not_found", 405: "method_not_allowed", 409: "conflict",
                413: "payload_too_large", 503: "service_unavailable"}
# Time bounds are clamped here: SQLite binds 64-bit integers only, and no stored
# timestamp (years 1–9998) comes anywhere near.
_US_BOUND = 2**62
_MS_BOUND = Decimal(10**16)
# A canonical decimal integer of at most 19 digits.
_INTEGER = re.compile(r"^-?(0|[1-9][0-9]{0,18})$")
_INT64 = 2**63


def json_response(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type=JSON, headers=headers)


# -- errors ---------------------------------------------------------------------------


def _api_error(status: int, message: str, param: str | None = None,
               headers: dict[str, str] | None = None) -> Response:
    err: dict[str, Any] = {"type": _ERROR_TYPES.get(status, "api_error"), "code": status,
                           "message": message}
    if param:
        err["param"] = param
    return json_response({"error": err}, status=status, headers=headers)


def render_error(request: Request, exc: ProblemError) -> Response:
    """Any engine error as an authpi ``ApiError``."""
    param = None
    message = exc.detail
    if exc.errors:
        first = exc.errors[0]
        param = first.get("field")
        if first.get("reason"):
            message = f"{exc.detail}: {first['reason']}"
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return _api_error(exc.status, message, param, headers)


def render_validation(request: Request, exc: RequestValidationError) -> Response:
    """FastAPI's own validation (which these routes barely use) as a 400 ``ApiError``."""
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "path", "header")]
    return _api_error(400, str(first.get("msg", "invalid request")), ".".join(loc) or None)


# -- parameters -----------------------------------------------------------------------


def _bad(param: str, reason: str) -> InvalidRequest:
    return InvalidRequest(f"invalid {param}", errors=[{"field": param, "reason": reason}])


def parse_limit(raw: str | None) -> int:
    """``limit``: an integer 1–100, default 50."""
    if raw is None or raw == "":
        return LIMIT_DEFAULT
    try:
        n = int(raw)
    except ValueError:
        raise _bad("limit", f"must be an integer from 1 to {LIMIT_MAX}") from None
    if not 1 <= n <= LIMIT_MAX:
        raise _bad("limit", f"must be an integer from 1 to {LIMIT_MAX}")
    return n


def parse_ms(param: str, raw: str | None, rounding: str) -> int | None:
    """Unix milliseconds (a number, fractions allowed) → whole microseconds.

    ``rounding`` keeps the exclusive bound exact for fractional microseconds: a lower
    bound floors (``ts > 1.5`` ⇔ ``ts > 1``) and an upper bound ceils (``ts < 1.5`` ⇔
    ``ts < 2``).
    """
    if raw is None or raw == "":
        return None
    try:
        ms = Decimal(raw.strip())
    except InvalidOperation:
        raise _bad(param, "must be a number of Unix milliseconds") from None
    if not ms.is_finite():
        raise _bad(param, "must be a finite number of Unix milliseconds")
    if abs(ms) > _MS_BOUND:
        # Far beyond any storable timestamp: clamp before any arithmetic on huge exponents.
        return _US_BOUND if ms > 0 else -_US_BOUND
    return int((ms * 1000).to_integral_value(rounding=rounding))


def _csv(raw: str | None) -> list[str]:
    return list(dict.fromkeys(p.strip() for p in (raw or "").split(",") if p.strip()))


def build_filter(request: Request) -> Node:
    """The filters shared by list and aggregate: ids, event types, time window."""
    qp = request.query_params
    nodes: list[Node | None] = []
    for name, path in (("issuer_id", "source.issuer_id"), ("user_id", "context.user_id"),
                       ("client_id", "source.client_id")):
        value = qp.get(name)
        if value:
            # Records spell ids out as text: "42" also finds an id stored as 42 (or 4.5,
            # true …, whatever the record shows).
            nodes.append(Eq(path, scalars_shown_as(value)))
    types = _csv(qp.get("event_types"))
    if types:
        raw = qp.get("event_types", "")
        nodes.append(Eq("type", (*types, *((raw,) if raw not in types else ()))))
    after = parse_ms("after", qp.get("after"), ROUND_FLOOR)
    if after is not None:
        nodes.append(Cmp("timestamp", ">", after))
    before = parse_ms("before", qp.get("before"), ROUND_CEILING)
    if before is not None:
        nodes.append(Cmp("timestamp", "<", before))
    return and_(*nodes)


def aggregate_spec(request: Request) -> AggregateSpec:
    """``group_by``, ``interval`` and ``count_unique`` → the engine's spec (400 if unknown)."""
    qp = request.query_params
    choices = " | ".join(DIMENSIONS)
    group_by = qp.get("group_by") or None
    if group_by is not None and group_by not in DIMENSIONS:
        raise _bad("group_by", f"must be one of {choices}")
    interval = qp.get("interval") or None
    if interval is not None and interval not in INTERVALS:
        raise _bad("interval", f"must be one of {' | '.join(INTERVALS)}")
    unique = _csv(qp.get("count_unique"))
    bad = [d for d in unique if d not in DIMENSIONS]
    if bad:
        raise _bad("count_unique", f"unknown dimension {bad[0]!r}; use any of {choices}")
    return AggregateSpec(
        group_by=DIMENSIONS[group_by] if group_by else None,
        interval=interval,  # type: ignore[arg-type]
        count_unique=tuple(DIMENSIONS[d] for d in unique),
    )


# -- records --------------------------------------------------------------------------




def _num(value: Any) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    integral = isinstance(value, float) and value.is_integer()
    if integral or (isinstance(value, str) and _INTEGER.match(value.strip())):
        value = int(value)
    # Beyond 64 bits a JSON integer is not portable (orjson cannot even write it).
    return value if isinstance(value, int) and -_INT64 <= value < _INT64 else None


def _or_null(d: dict[str, Any]) -> dict[str, Any] | None:
    return d if any(v is not None for v in d.values()) else None


def to_ms(stored: str) -> int:
    """A stored RFC 3339 timestamp as Unix milliseconds (floored)."""
    return parse_us(stored) // 1000


def to_record(ev: dict[str, Any]) -> dict[str, Any]:
    """A canonical event as an authpi event.

    ``{id, type, timestamp, account_id, user_id, client_id, issuer_id, org_id, agent_id,
    auth_type, ip_address, user_agent, outcome, actor{type,id,name}|null,
    resource{type,id}|null, request{id,method,path,status,duration_ms}|null,
    error_message, data, metadata}``. Ids are strings; ``timestamp`` is Unix ms.
    """
    actor, subject = _obj(ev, "actor"), _obj(ev, "subject")
    source, ctx = _obj(ev, "source"), _obj(ev, "context")
    return {
        "id": ev["id"],
        "type": ev["type"],
        "timestamp": to_ms(ev["timestamp"]),
        "account_id": ev.get("tenant"),
        "user_id": _str(ctx.get("user_id")),
        "client_id": _str(source.get("client_id")),
        "issuer_id": _str(source.get("issuer_id")),
        "org_id": _str(ctx.get("org_id")),
        "agent_id": _str(ctx.get("agent_id")),
        "auth_type": _str(ctx.get("auth_type")),
        "ip_address": _first(source.get("ip"), actor.get("ip"), ctx.get("ip")),
        "user_agent": _first(ctx.get("user_agent"), actor.get("user_agent")),
        "outcome": _str(ev.get("outcome")),
        "actor": _or_null({"type": _str(actor.get("type")), "id": _str(actor.get("id")),
                           "name": _str(actor.get("name"))}),
        "resource": _or_null({"type": _str(subject.get("type")),
                              "id": _str(subject.get("id"))}),
        "request": _or_null({
            "id": _str(ctx.get("request_id")),
            "method": _str(ctx.get("http_method")),
            "path": _str(ctx.get("path")),
            "status": _int(ctx.get("http_status")),
            "duration_ms": _num(ctx.get("latency_ms")),
        }),
        "error_message": _str(ev.get("error_message")),
        "data": ev.get("payload"),
        "metadata": ev.get("metadata"),
    }


def render_aggregate(buckets: list[Bucket], spec: AggregateSpec,
                     unique_names: tuple[str, ...]) -> list[dict[str, Any]]:
    """Buckets as documented: ``ts`` (Unix ms) only with an interval, ``key`` only with
    group_by, ``uniques`` (keyed by authpi dimension) only with count_unique, no backfill;
    an empty result is ``[{"rows": []}]`` without an interval and ``[]`` with one."""
    out: list[dict[str, Any]] = []
    for b in buckets:
        rows = []
        for r in b.rows:
            row: dict[str, Any] = {}
            if spec.group_by is not None:
                row["key"] = _str(r.key)
            row["count"] = r.count
            if spec.count_unique:
                row["uniques"] = {name: r.uniques.get(path, 0)
                                  for name, path in zip(unique_names, spec.count_unique,
                                                        strict=True)}
            rows.append(row)
        bucket: dict[str, Any] = {}
        if spec.interval is not None and b.ts is not None:
            bucket["ts"] = b.ts // 1000
        bucket["rows"] = rows
        out.append(bucket)
    if not out and spec.interval is None:
        out.append({"rows": []})
    return out


# -- routes ---------------------------------------------------------------------------


def account_principal(
    request: Request, account_id: Annotated[str, Path(description="The account id")],
) -> Principal:
    """The caller, who must read events (403) of this very account (403)."""
    principal = authenticate(request)
    principal.require("events:read")
    if account_id != principal.tenant:
        raise PermissionDenied("this credential does not belong to the account")
    return principal


Caller = Annotated[Principal, Depends(account_principal)]
# Declared as optional strings so they appear in the OpenAPI document; they are parsed by
# hand because this API answers bad values with a 400 ApiError, not FastAPI's 422.
Str = Annotated[str | None, Query()]


# -- OpenAPI declarations -------------------------------------------------------------

ERRORS = ErrorShape(JSON, ref(ApiError))
_DIMENSION = {"type": "string", "enum": list(DIMENSIONS)}
_ACCOUNT = Param("account_id", {"type": "string"},
                 "The account: the credential's tenant.", location="path")
_FILTERS = (
    Param("issuer_id", {"type": "string"}, "Filter by issuer ID."),
    Param("user_id", {"type": "string"}, "Filter by user ID."),
    Param("client_id", {"type": "string"}, "Filter by client ID."),
    Param("event_types", {"type": "string"},
          "Comma-separated event types (`user.created,session.created`)."),
    Param("after", {"type": "number"}, "Events after this time (Unix milliseconds)."),
    Param("before", {"type": "number"}, "Events before this time (Unix milliseconds)."),
)
LIST_DOC = operation(
    ok={200: content(JSON, ref(AuthpiEventList), "Newest first.")}, shape=ERRORS,
    scope="events:read", params=(
        _ACCOUNT,
        Param("limit", {"type": "integer", "minimum": 1, "maximum": LIMIT_MAX,
                        "default": LIMIT_DEFAULT}, "Maximum number of items to return."),
        Param("cursor", {"type": "string"}, "Pagination cursor from the previous response."),
        *_FILTERS,
    ))
AGGREGATE_DOC = operation(
    ok={200: content(JSON, ref(AuthpiAggregate), "Aggregate result.")}, shape=ERRORS,
    scope="events:read", params=(
        _ACCOUNT, *_FILTERS,
        Param("group_by", _DIMENSION, "Group rows by one dimension."),
        Param("interval", {"type": "string", "enum": list(INTERVALS)},
              "Time buckets; without it, one bucket spans the window."),
        Param("count_unique", {"type": "string"},
              f"Comma-separated dimensions to count distinct values of ({', '.join(DIMENSIONS)})."),
    ))
GET_DOC = operation(
    ok={200: content(JSON, ref(AuthpiEvent), "The event.")}, errors=(404,), shape=ERRORS,
    scope="events:read", params=(
        _ACCOUNT, Param("event_id", {"type": "string"}, "The event's id.", location="path")))


def router() -> APIRouter:
    """The profile's routes, relative to ``PREFIX``."""
    r = APIRouter(tags=["authpi"])

    @r.get("/v1/accounts/{account_id}/events", summary="List Events", **LIST_DOC)
    async def list_events(
        request: Request, principal: Caller, limit: Str = None, cursor: Str = None,
        issuer_id: Str = None, user_id: Str = None, client_id: Str = None,
        event_types: Str = None, after: Str = None, before: Str = None,
    ) -> Response:
        """Newest first, ``limit`` per page, ``next_cursor`` until ``has_more`` is false."""
        q = EventQuery(filter=and_(scope(request, "authpi"), build_filter(request)),
                       sort="timestamp", order="desc", limit=parse_limit(limit),
                       cursor=cursor or None)
        page = await request.app.state.services.store.query(principal.tenant, q)
        return json_response({"data": [to_record(e) for e in page.events],
                              "next_cursor": page.next_cursor, "has_more": page.has_more})

    # Declared before /events/{event_id}, which would otherwise take "aggregate" as an id.
    @r.get("/v1/accounts/{account_id}/events/aggregate", summary="Aggregate Events",
           **AGGREGATE_DOC)
    async def aggregate_events(
        request: Request, principal: Caller, issuer_id: Str = None, user_id: Str = None,
        client_id: Str = None, event_types: Str = None, after: Str = None,
        before: Str = None, group_by: Str = None, interval: Str = None,
        count_unique: Str = None,
    ) -> Response:
        """``{"interval", "group_by", "buckets": [{"ts"?, "rows": [{"key"?, "count",
        "uniques"?}]}]}`` with the documented omissions and empty-result rules."""
        spec = aggregate_spec(request)
        where = and_(scope(request, "authpi"), build_filter(request))
        buckets = await request.app.state.services.store.aggregate(principal.tenant, where,
                                                                   spec)
        names = tuple(_csv(request.query_params.get("count_unique")))
        return json_response({
            "interval": spec.interval,
            "group_by": request.query_params.get("group_by") or None,
            "buckets": render_aggregate(buckets, spec, names),
        })

    @r.get("/v1/accounts/{account_id}/events/{event_id}", summary="Get Event", **GET_DOC)
    async def get_event(request: Request, principal: Caller, event_id: str) -> Response:
        """One event of the account, or 404."""
        ev = await request.app.state.services.store.get(principal.tenant, event_id)
        if ev is None or not in_scope(request, "authpi", ev):
            raise NotFound(f"no event {event_id!r} in this account")
        return json_response(to_record(ev))

    return r
