"""Aggregates computed in Python over matching events, with the exact semantics of
``EventIndex.aggregate``: for what ClickHouse cannot answer exactly (distinct counts and
metrics over JSON values whose types matter, filters only the predicate decides)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from ...query.predicate import _getter
from ..base import AggregateRow, AggregateSpec, Bucket
from ..sqlite.rollup import _WEEK_OFFSET, DAY, HOUR

WIDTHS = {"hour": (HOUR, 0), "day": (DAY, 0), "week": (7 * DAY, _WEEK_OFFSET)}
_PERCENTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}


def bucket_of(ts: int, interval: str | None) -> int | None:
    if interval is None:
        return None
    width, offset = WIDTHS[interval]
    return ts - (ts + offset) % width


def typed(value: Any) -> tuple[str, Any] | None:
    """A group key or distinct value as its own type (``7`` and ``7.0`` one value, ``7``,
    ``"7"`` and ``true`` three); None for what never counts (missing, null, ``""``,
    objects, lists)."""
    if value is None or value == "" or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value)
    return ("s", value)


def _is_number(value: Any) -> bool:
    return type(value) is int or type(value) is float


def _nearest_rank(values: list[float], q: float) -> float:
    return values[max(0, math.ceil(q * len(values)) - 1)]


class _Row:
    __slots__ = ("count", "key", "uniques", "values")

    def __init__(self, key: Any, spec: AggregateSpec):
        self.count = 0
        self.key = key
        self.uniques: list[set[tuple[str, Any]]] = [set() for _ in spec.count_unique]
        self.values: dict[str, list[Any]] = {p: [] for _, p in spec.metrics}


def aggregate(events: Iterable[tuple[int, dict[str, Any]]], spec: AggregateSpec
              ) -> list[Bucket]:
    """``events`` as (timestamp µs, event) pairs."""
    group = _getter(spec.group_by) if spec.group_by else None
    uniq = [_getter(p) for p in spec.count_unique]
    paths = list(dict.fromkeys(p for _, p in spec.metrics))
    getters = {p: _getter(p) for p in paths}
    rows: dict[tuple[Any, Any], _Row] = {}
    for ts, ev in events:
        key: Any = None
        tkey: Any = None
        if group is not None:
            tkey = typed(group(ev))
            if tkey is None:
                continue
            key = tkey[1]
        b = bucket_of(ts, spec.interval)
        row = rows.get((b, tkey))
        if row is None:
            row = rows[b, tkey] = _Row(key, spec)
        row.count += 1
        for i, get in enumerate(uniq):
            t = typed(get(ev))
            if t is not None:
                row.uniques[i].add(t)
        for p in paths:
            v = getters[p](ev)
            if _is_number(v):
                row.values[p].append(v)
    buckets: dict[Any, list[AggregateRow]] = {}
    for (b, _t), r in rows.items():
        out = AggregateRow(count=r.count, key=r.key)
        for i, p in enumerate(spec.count_unique):
            out.uniques[p] = len(r.uniques[i])
        for fn, p in spec.metrics:
            vals = r.values[p]
            out.metrics.setdefault(p, {})[fn] = _metric(fn, vals)
        buckets.setdefault(b, []).append(out)
    return [Bucket(b, sorted(buckets[b], key=lambda x: (-x.count, str(x.key)))[:spec.max_groups])
            for b in sorted(buckets, key=lambda t: (t is not None, t))]


def _metric(fn: str, vals: list[Any]) -> float | None:
    if not vals:
        return None
    if fn == "sum":
        return sum(vals)
    if fn == "avg":
        return sum(vals) / len(vals)
    if fn == "min":
        return min(vals)
    if fn == "max":
        return max(vals)
    return _nearest_rank(sorted(vals), _PERCENTILES[fn])


__all__ = ["aggregate", "bucket_of", "typed"]
