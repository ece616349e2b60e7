"""``/v1/llm``: LLM calls and their usage (tokens, cost, latency).

**What counts as an LLM call.** An event whose ``llm.model`` or ``llm.provider`` is set,
whatever its ``type``: producers name their types differently (``llm.call``,
``ai.completion``, ``chat.request`` …), and a call without a model or provider cannot be
attributed in usage anyway. Both paths are indexed by default, so the selection is an
index lookup, not a scan of every event.

Canonical fields: ``llm.provider``, ``llm.model``, ``llm.input_tokens``,
``llm.output_tokens``, ``llm.latency_ms``, ``llm.cost_usd``. Producers may send the
OpenTelemetry GenAI names inside ``llm`` (``gen_ai.provider.name``,
``gen_ai.request.model``, ``gen_ai.usage.input_tokens``, ``gen_ai.usage.output_tokens``);
ingest renames them, so everything here sees only the canonical names.

``GET /v1/llm/events``
    The native page ``{"data", "next_cursor", "has_more"}`` (newest first by default,
    ``order=asc`` for oldest first) with a ``Link: rel="next"`` header. ``provider`` and
    ``model`` are short for ``llm.provider`` and ``llm.model`` (comma = any of); every
    native filter (``since``, ``until``, ``q``, ``type``, dotted paths …) also applies.

``GET /v1/llm/usage``
    ``group_by`` ``model`` (default: what a bill is itemised by) or ``provider``;
    ``interval`` ``day`` (default), ``hour``, ``week`` or ``none`` (one bucket for the whole
    range); ``since`` defaults to 30 days ago, ``until`` to no bound (``null`` in the answer:
    a call stamped slightly in the future by a skewed clock still counts). Each row: ``key``,
    ``count``, ``input_tokens``, ``output_tokens``, ``cost_usd`` (sums; ``null`` when no call
    in the row reported the field, so "unknown" is never shown as 0) and
    ``latency_ms`` ``{p50, p95, p99}`` (nearest-rank, over the calls that reported it).
    ``totals`` holds the same figures over the whole range and every group. Calls without
    the ``group_by`` field are counted in ``totals`` only.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ...auth.principal import Principal
from ...model.times import format_us, now_us
from ...query.filter import Cmp, Exists, Node, Or, and_
from ...query.params import (
    PAGE_PARAMS,
    choice_param,
    filter_from_params,
    int_param,
    time_bound,
)
from ...store.base import AggregateRow, AggregateSpec, EventQuery
from ..deps import reader
from ..openapi import operation
from . import contract as doc
from .events import json_response, page_response

router = APIRouter(prefix="/v1", tags=["llm"])

#: Short parameter names → canonical dotted paths.
ALIASES = {"provider": "llm.provider", "model": "llm.model"}
#: An event is an LLM call when it names a model or a provider (see the module docstring).
IS_LLM_CALL: Node = Or((Exists("llm.model"), Exists("llm.provider")))
USAGE_PARAMS = frozenset({"group_by", "interval"})
SUMS = ("input_tokens", "output_tokens", "cost_usd")
PERCENTILES = ("p50", "p95", "p99")
DEFAULT_USAGE_WINDOW_US = 30 * 86_400 * 1_000_000


def _filter(request: Request, allowed: frozenset[str]) -> Node:
    items = [(ALIASES.get(k, k), v) for k, v in request.query_params.multi_items()]
    return and_(IS_LLM_CALL, filter_from_params(items, allowed=allowed))


@router.get("/llm/events", summary="LLM calls; filters provider, model, since, until",
            **operation(ok={200: doc.PAGE}, params=doc.with_filters(*doc.LLM_EVENTS),
                        scope="events:read"))
async def llm_events(request: Request, principal: Principal = Depends(reader)) -> Response:
    qp = request.query_params
    q = EventQuery(
        filter=_filter(request, PAGE_PARAMS),
        order=choice_param("order", qp.get("order"), "desc", ("asc", "desc")),  # type: ignore[arg-type]
        limit=int_param("limit", qp.get("limit"), 50, 1, 1000),
        cursor=qp.get("cursor") or None,
    )
    page = await request.app.state.services.store.query_raw(principal.tenant, q)
    return page_response(request, page)


def _usage_row(row: AggregateRow) -> dict[str, Any]:
    out: dict[str, Any] = {"count": row.count}
    for name in SUMS:
        value = row.metrics.get(f"llm.{name}", {}).get("sum")
        # Float sums of prices pick up binary noise (0.1 + 0.2); nano-dollars is plenty.
        out[name] = round(value, 9) if isinstance(value, float) else value
    latency = row.metrics.get("llm.latency_ms", {})
    out["latency_ms"] = {p: latency.get(p) for p in PERCENTILES}
    return out


@router.get("/llm/usage", summary="LLM usage by model or provider per interval",
            **operation(ok={200: doc.LLM_USAGE_ANSWER}, params=doc.llm_usage_params(),
                        scope="events:read"))
async def llm_usage(request: Request, principal: Principal = Depends(reader)) -> Response:
    qp = request.query_params
    group = choice_param("group_by", qp.get("group_by"), "model", ("model", "provider"))
    interval = choice_param("interval", qp.get("interval"), "day",
                            ("hour", "day", "week", "none"))
    now = now_us()
    where = _filter(request, USAGE_PARAMS)
    # Default range: the last 30 days, so an unbounded request does not read all history.
    bounds: list[Node] = []
    since_raw, until_raw = qp.get("since"), qp.get("until")
    since = now - DEFAULT_USAGE_WINDOW_US if since_raw is None else time_bound(
        "since", since_raw, now)
    until = None if until_raw is None else time_bound("until", until_raw, now)
    if since_raw is None:
        bounds.append(Cmp("timestamp", ">=", since))
    where = and_(where, *bounds)
    metrics = tuple(("sum", f"llm.{n}") for n in SUMS) + tuple(
        (p, "llm.latency_ms") for p in PERCENTILES)
    spec = AggregateSpec(
        group_by=ALIASES[group], interval=None if interval == "none" else interval,  # type: ignore[arg-type]
        metrics=metrics,  # type: ignore[arg-type]
    )
    store = request.app.state.services.store
    buckets = await store.aggregate(principal.tenant, where, spec)
    totals = await store.aggregate(principal.tenant, where, AggregateSpec(metrics=metrics))  # type: ignore[arg-type]
    out_buckets = []
    for b in buckets:
        bucket: dict[str, Any] = {}
        if spec.interval is not None and b.ts is not None:
            bucket["ts"] = format_us(b.ts)
        bucket["rows"] = [{"key": r.key, **_usage_row(r)} for r in b.rows]
        out_buckets.append(bucket)
    total_rows = [r for b in totals for r in b.rows]
    total = _usage_row(total_rows[0]) if total_rows else _usage_row(AggregateRow(count=0))
    return json_response({
        "group_by": group, "interval": interval, "since": format_us(since),
        "until": None if until is None else format_us(until),
        "buckets": out_buckets, "totals": total,
    })


__all__ = ["router", "IS_LLM_CALL", "ALIASES"]
