"""Hourly counts kept at ingest, so common aggregates don't scan events.

``rollup_hour`` holds, per tenant and hour, the number of events of each
(type, category, severity, outcome), updated in the same transaction as the events. An
aggregate whose filter is only a time range and equality on those four fields, grouped by
one of them (or nothing), answers from whole hours here and scans the events table only
for the partial hours at either end of the range, so the answer is exact.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from ...dbapi import sqlite3
from ...model.severity import RANK
from ...query.filter import All, And, Cmp, Eq, Node, clamp_int
from ..base import AggregateSpec

HOUR = 3_600_000_000
DAY = 24 * HOUR
_WEEK_OFFSET = 3 * DAY  # 1970-01-01 was a Thursday; weeks start on Monday
DIMENSIONS = ("type", "category", "severity", "outcome")

SCHEMA = """
CREATE TABLE IF NOT EXISTS rollup_hour (
    tenant TEXT NOT NULL,
    hour INTEGER NOT NULL,
    type TEXT NOT NULL,
    category TEXT NOT NULL,
    severity INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (tenant, hour, type, category, severity, outcome)
) WITHOUT ROWID;
"""

UPSERT_HEAD = "INSERT INTO rollup_hour(tenant, hour, type, category, severity, outcome, n)"
UPSERT_TAIL = " ON CONFLICT DO UPDATE SET n = n + excluded.n"


def migrate(conn: sqlite3.Connection) -> None:
    """Create the table; on a database that predates it, count what is already stored."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'rollup_hour'").fetchone()
    if exists:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(SCHEMA)  # one statement; executescript would commit first
        conn.execute(
            "INSERT INTO rollup_hour SELECT tenant, ts / ? * ?, type, IFNULL(category, ''), "
            "severity, IFNULL(outcome, ''), COUNT(*) FROM events GROUP BY 1, 2, 3, 4, 5, 6",
            (HOUR, HOUR))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def count_rows(tenant: str, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Upsert parameters for a batch of event rows (the writer's row layout)."""
    c: Counter[tuple[Any, ...]] = Counter(
        (r[4] // HOUR * HOUR, r[6], r[7] or "", r[8], r[9] or "") for r in rows)
    return [(tenant, *k, n) for k, n in c.items()]


@dataclass(frozen=True)
class Plan:
    lo: int | None  # inclusive, µs
    hi: int | None  # exclusive, µs
    equal: tuple[tuple[str, tuple[Any, ...]], ...]


def plan(where: Node, spec: AggregateSpec) -> Plan | None:
    """A plan when the rollup can answer exactly, else None."""
    if spec.count_unique or spec.metrics:
        return None
    if spec.group_by is not None and spec.group_by not in DIMENSIONS:
        return None
    parts = where.children if isinstance(where, And) else () if isinstance(where, All) \
        else (where,)
    lo: int | None = None
    hi: int | None = None
    equal = []
    for p in parts:
        if isinstance(p, Cmp) and p.path == "timestamp" and type(p.value) is int:
            v = clamp_int(p.value)
            if p.op in (">=", ">"):
                v = v if p.op == ">=" else v + 1
                lo = v if lo is None else max(lo, v)
            else:
                v = v if p.op == "<" else v + 1
                hi = v if hi is None else min(hi, v)
        elif isinstance(p, Eq) and p.path in DIMENSIONS and p.values and all(
            type(v) is str for v in p.values
        ):
            values: tuple[Any, ...] = p.values
            if p.path == "severity":
                values = tuple(RANK[v] for v in p.values if v in RANK)
            equal.append((p.path, values))
        else:
            return None
    return Plan(lo, hi, tuple(equal))


def bucket_sql(interval: str | None, col: str) -> str:
    """Start of the hour/day/week (Monday) bucket of microsecond column ``col``; NULL without.

    Floors, as Python's ``//`` does (SQLite's ``/`` truncates toward zero, which would put
    times before 1970 in the next bucket)."""
    if interval is None:
        return "NULL"
    width = {"hour": HOUR, "day": DAY, "week": 7 * DAY}[interval]
    off = _WEEK_OFFSET if interval == "week" else 0
    return f"({col} - ((({col} + {off}) % {width}) + {width}) % {width})"


def whole_hours(p: Plan) -> tuple[int | None, int | None]:
    """The hour-aligned middle of the range: [ceil(lo), floor(hi))."""
    h1 = None if p.lo is None else -(-p.lo // HOUR) * HOUR
    h2 = None if p.hi is None else p.hi // HOUR * HOUR
    return h1, h2


def counts(conn: sqlite3.Connection, tenant: str, p: Plan, spec: AggregateSpec,
           h1: int | None, h2: int | None) -> dict[tuple[Any, Any], int]:
    """(bucket, key) → count over the whole hours [h1, h2)."""
    where = ["tenant = ?"]
    params: list[Any] = [tenant]
    if h1 is not None:
        where.append("hour >= ?")
        params.append(h1)
    if h2 is not None:
        where.append("hour < ?")
        params.append(h2)
    for col, values in p.equal:
        where.append(f"{col} IN ({','.join('?' * len(values))})")
        params.extend(values)
    key = spec.group_by or "NULL"
    if spec.group_by in ("category", "outcome"):
        where.append(f"{key} != ''")  # rows without the field have no group
    sql = (f"SELECT {bucket_sql(spec.interval, 'hour')}, {key}, SUM(n) FROM rollup_hour "
           f"WHERE {' AND '.join(where)} GROUP BY 1, 2")
    return {(b, k): n for b, k, n in conn.execute(sql, params)}
