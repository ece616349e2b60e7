"""``/v1/stats/summary``: totals of a period by outcome, severity, category, type, ecosystem."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ...auth.principal import Principal
from ...errors import ValidationFailed
from ...model.times import TimeParseError, format_us, now_us, parse_duration
from ...query.filter import Cmp, Node, and_
from ...store.base import AggregateSpec, EventStore
from ..deps import reader
from ..openapi import operation
from . import contract as doc
from .events import json_response

router = APIRouter(prefix="/v1", tags=["stats"])
DIMENSIONS = {
    "outcomes": "outcome", "severities": "severity", "categories": "category",
    "types": "type", "ecosystems": "subject.ecosystem",
}


def period_start(period: str, now: int) -> int:
    try:
        return now - parse_duration(period)
    except TimeParseError as exc:
        raise ValidationFailed("invalid period", errors=[
            {"field": "period", "reason": str(exc)}]) from None


async def summary(store: EventStore, tenant: str, where: Node, top: int,
                  dims: dict[str, str] = DIMENSIONS) -> dict[str, Any]:
    """Total plus one ``{value: count}`` map per dimension (largest first, ``top`` kept)."""
    total_b, *dim_b = await asyncio.gather(
        store.aggregate(tenant, where, AggregateSpec()),
        *(store.aggregate(tenant, where, AggregateSpec(group_by=p, max_groups=top))
          for p in dims.values()),
    )
    out: dict[str, Any] = {"total_events": total_b[0].rows[0].count if total_b else 0}
    for name, buckets in zip(dims, dim_b, strict=True):
        out[name] = {str(r.key): r.count for b in buckets for r in b.rows}
    return out


@router.get("/stats/summary", summary="Totals by outcome, severity, category, type, ecosystem",
            **operation(ok={200: doc.STATS_ANSWER}, params=doc.STATS, scope="events:read"))
async def stats_summary(request: Request, principal: Principal = Depends(reader)) -> Response:
    qp = request.query_params
    period = qp.get("period", "30d")
    now = now_us()
    since = period_start(period, now)
    top = 10
    if "top" in qp:
        from ...query.params import int_param
        top = int_param("top", qp.get("top"), 10, 1, 1000)
    doc = await summary(request.app.state.services.store, principal.tenant,
                        and_(Cmp("timestamp", ">=", since), Cmp("timestamp", "<=", now)), top)
    doc = {"period": period, "since": format_us(since), "until": format_us(now), **doc}
    return json_response(doc)
