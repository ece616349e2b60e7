"""``/v1/events``: ingest, list, get, aggregate."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ...auth.principal import Principal
from ...errors import InvalidRequest, NotFound, PayloadTooLarge
from ...model.times import format_us
from ...query.filter import is_valid_path
from ...query.params import (
    AGGREGATE_PARAMS,
    FILTER_PARAMS,
    PAGE_PARAMS,
    choice_param,
    filter_from_params,
    int_param,
    metric_path_error,
)
from ...query.predicate import compile_predicate
from ...store.base import AggregateSpec, Bucket, CountRow, EventQuery, RawPage
from ..deps import scope_filter, scoped_reader, writer
from ..openapi import operation
from . import contract as doc

router = APIRouter(prefix="/v1", tags=["events"])
JSON = "application/json"
METRIC_FNS = ("sum", "avg", "min", "max", "p50", "p95", "p99")
_START = object()


def json_response(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type=JSON, headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) as soon as it grows past ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes; the limit is {limit}")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body larger than the limit of {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    # Kept in the request's scope for a forwarded append (``api.homes``): the stream is spent.
    request.state.body = body
    return body


@router.post("/events", status_code=201, summary="Ingest one event, a JSON array or NDJSON",
             **operation(ok={201: doc.INGESTED, 200: doc.REPLAYED},
                         errors=(307, 400, 409, 413, 415),
                         params=(doc.IDEMPOTENCY_KEY,), body=doc.INGEST_BODY,
                         scope="events:write"))
async def ingest(request: Request, principal: Principal = Depends(writer)) -> Response:
    svc = request.app.state.services
    body = await read_body(request, svc.settings.max_body_bytes)
    key = request.headers.get("idempotency-key")
    results = await svc.ingest(
        principal, body, request.headers.get("content-type", "application/json"),
        idempotency_key=key,
    )
    created = any(a.created for a in results)
    return json_response(
        {"data": [{"id": a.id, "seq": a.seq} for a in results], "count": len(results)},
        status=201 if created else 200,
    )


def event_query(request: Request, principal: Principal) -> EventQuery:
    qp = request.query_params
    where = scope_filter(principal, filter_from_params(qp.multi_items(), allowed=PAGE_PARAMS))
    return EventQuery(
        filter=where,
        sort=choice_param("sort", qp.get("sort"), "timestamp", ("timestamp", "severity")),  # type: ignore[arg-type]
        order=choice_param("order", qp.get("order"), "desc", ("asc", "desc")),  # type: ignore[arg-type]
        limit=int_param("limit", qp.get("limit"), 50, 1, 1000),
        cursor=qp.get("cursor") or None,
        include_total=choice_param("include_total", qp.get("include_total"), "false",
                                   ("true", "false", "1", "0")) in ("true", "1"),
    )


@router.get("/events", summary="List events: filters, q, sort, keyset cursor",
            **operation(ok={200: doc.PAGE}, params=doc.with_filters(*doc.PAGING),
                        scope="events:read"))
async def list_events(request: Request,
                      principal: Principal = Depends(scoped_reader)) -> Response:
    q = event_query(request, principal)
    page = await request.app.state.services.store.query_raw(principal.tenant, q)
    return page_response(request, page)


def page_response(request: Request, page: RawPage) -> Response:
    """``{"data", "next_cursor", "has_more"[, "total"]}`` and a ``Link`` header, with the
    events' own JSON spliced in (parsing and re-encoding them was most of a page's time)."""
    tail: dict[str, Any] = {"next_cursor": page.next_cursor, "has_more": page.has_more}
    if page.total is not None:
        tail["total"] = page.total
    body = b'{"data":[' + b",".join(page.events) + b"]," + orjson.dumps(tail)[1:]
    headers = {}
    if page.next_cursor:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
        params.append(("cursor", page.next_cursor))
        headers["Link"] = f'<{request.url.path}?{urlencode(params)}>; rel="next"'
    return Response(body, media_type=JSON, headers=headers)


def aggregate_spec(request: Request) -> AggregateSpec:
    qp = request.query_params

    def path_list(name: str) -> tuple[str, ...]:
        raw = qp.get(name)
        if raw is None:
            return ()
        paths = tuple(p.strip() for p in raw.split(",") if p.strip())
        bad = [p for p in paths if not is_valid_path(p) or p == "tags"]
        if bad or not paths:
            raise InvalidRequest(f"invalid {name}", errors=[
                {"field": name, "reason": f"not a field or dotted path: {(bad or [raw])[0]!r}"}])
        return paths

    group = path_list("group_by")
    if len(group) > 1:
        raise InvalidRequest("group_by takes one field", errors=[
            {"field": "group_by", "reason": "one field or dotted path"}])
    interval = qp.get("interval")
    interval = choice_param("interval", interval, "", ("hour", "day", "week")) or None
    metrics = tuple((fn, p) for fn in METRIC_FNS for p in path_list(fn))
    for fn, p in metrics:
        if (reason := metric_path_error(p)) is not None:
            raise InvalidRequest(f"invalid {fn}", errors=[{"field": fn, "reason": reason}])
    return AggregateSpec(
        group_by=group[0] if group else None, interval=interval,  # type: ignore[arg-type]
        count_unique=path_list("count_unique"), metrics=metrics,  # type: ignore[arg-type]
    )


def render_buckets(buckets: list[Bucket], spec: AggregateSpec, ts: Any = format_us) -> list[Any]:
    """Buckets in the authpi shape: ``ts`` only with an interval, ``key`` only with group_by,
    ``uniques`` only with count_unique; one empty bucket when empty without interval."""
    out = []
    for b in buckets:
        rows = []
        for r in b.rows:
            row: dict[str, Any] = {}
            if spec.group_by is not None:
                row["key"] = r.key
            row["count"] = r.count
            if spec.count_unique:
                row["uniques"] = r.uniques
            if spec.metrics:
                row["metrics"] = r.metrics
            rows.append(row)
        bucket: dict[str, Any] = {}
        if spec.interval is not None:
            bucket["ts"] = ts(b.ts)
        bucket["rows"] = rows
        out.append(bucket)
    if not out and spec.interval is None:
        out.append({"rows": []})
    return out


@router.get("/events/aggregate", summary="Counts, distinct counts and numeric rollups",
            **operation(ok={200: doc.AGGREGATE_ANSWER}, params=doc.with_filters(*doc.AGGREGATE),
                        scope="events:read"))
async def aggregate(request: Request,
                    principal: Principal = Depends(scoped_reader)) -> Response:
    spec = aggregate_spec(request)
    where = scope_filter(principal, filter_from_params(request.query_params.multi_items(),
                                                       allowed=AGGREGATE_PARAMS))
    store = request.app.state.services.store
    if spec.count_unique or spec.metrics:
        buckets = await store.aggregate(principal.tenant, where, spec)
        rendered = render_buckets(buckets, spec)
    else:
        rendered = render_counts(await store.aggregate_counts(principal.tenant, where, spec),
                                 spec)
    return json_response({"interval": spec.interval, "group_by": spec.group_by,
                          "buckets": rendered})


def render_counts(rows: list[CountRow], spec: AggregateSpec, ts: Any = format_us
                  ) -> list[Any]:
    """``render_buckets`` of a count-only answer, built straight from its flat rows (a
    30-day hourly answer has tens of thousands: one small dict each, nothing else)."""
    out: list[Any] = []
    last: Any = _START
    bucket: list[Any] = []
    grouped = spec.group_by is not None
    for b, key, n in rows:
        if b != last:
            last, bucket = b, []
            out.append({"ts": ts(b), "rows": bucket} if spec.interval is not None
                       else {"rows": bucket})
        bucket.append({"key": key, "count": n} if grouped else {"count": n})
    if not out and spec.interval is None:
        out.append({"rows": []})
    return out


@router.get("/events/{event_id}", summary="One event by id",
            **operation(ok={200: doc.EVENT}, errors=(400, 404),
                        params=(doc.EVENT_ID, doc.INCLUDE), scope="events:read"))
async def get_event(event_id: str, request: Request,
                    principal: Principal = Depends(scoped_reader)) -> Response:
    svc = request.app.state.services
    include = request.query_params.get("include")
    # A viewer token's filter hides the events outside it: they answer 404, as missing.
    visible = (None if principal.where is None
               else compile_predicate(scope_filter(principal, None)))
    if include is None:
        raw = await svc.store.get_raw(principal.tenant, event_id)
        if raw is None or (visible is not None and not visible(orjson.loads(raw))):
            raise NotFound(f"no event {event_id!r}")
        return Response(raw, media_type=JSON)  # the stored event's own JSON
    ev = await svc.store.get(principal.tenant, event_id)
    if ev is None or (visible is not None and not visible(ev)):
        raise NotFound(f"no event {event_id!r}")
    if include != "proof":
        raise InvalidRequest("invalid include", errors=[
            {"field": "include", "reason": "the only value is 'proof'"}])
    if svc.log is None:
        raise NotFound("integrity is disabled on this deployment")
    ev["proof"] = await svc.log.inclusion(principal.tenant, event_id, None)
    return json_response(ev)


__all__ = ["router", "FILTER_PARAMS"]
