"""Hourly counts kept at ingest, so common aggregates don't scan events.

``rollup_day`` holds one row per tenant, UTC day and (type, category, severity, outcome)
that occurs that day, with the day's 24 hourly counts in columns ``h00`` … ``h23``; it is
updated in the same transaction as the events. An aggregate whose filter is only a time
range and equality on those four fields, grouped by one of them (or nothing), answers
from whole hours here and scans the events table only for the partial hours at either
end of the range, so the answer is exact.

Why a day row with 24 counts rather than a row per hour: most of a tenant's hours hold a
few events each, so a row per (hour, type, category, severity, outcome) was nearly a row
per event (91,279 rows for 100,000 events) and rows per dimension would be several per
event. Per day the combinations repeat: 143,215 rows for 931,001 events instead of
586,940, and a zero count costs one byte of row header.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from ...dbapi import sqlite3
from ...model.severity import RANK, SEVERITIES
from ...query.filter import INT_BOUND, All, And, Cmp, Eq, Node, clamp_int
from ..base import AggregateSpec

HOUR = 3_600_000_000
DAY = 24 * HOUR
_WEEK_OFFSET = 3 * DAY  # 1970-01-01 was a Thursday; weeks start on Monday
DIMENSIONS = ("type", "category", "severity", "outcome")
#: The count columns: ``h00`` holds the events of the day's first hour (UTC).
HOURS = tuple(f"h{i:02d}" for i in range(24))
KEY = ("tenant", "day", "type", "category", "severity", "outcome")
#: Hour-aligned bounds beyond every time a filter can name (``filter.clamp_int``).
FIRST_HOUR = -(INT_BOUND // HOUR + 1) * HOUR
LAST_HOUR = (INT_BOUND // HOUR + 2) * HOUR

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS rollup_day (
    tenant TEXT NOT NULL,
    day INTEGER NOT NULL,
    type TEXT NOT NULL,
    category TEXT NOT NULL,
    severity INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    {", ".join(f"{h} INTEGER NOT NULL" for h in HOURS)},
    PRIMARY KEY (tenant, day, type, category, severity, outcome)
) WITHOUT ROWID;
"""

UPSERT_HEAD = f"INSERT INTO rollup_day({', '.join(KEY + HOURS)})"
UPSERT_TAIL = " ON CONFLICT DO UPDATE SET " + ", ".join(f"{h} = {h} + excluded.{h}"
                                                         for h in HOURS)


def floor_sql(col: str, width: int, offset: int = 0) -> str:
    """``col`` floored to a multiple of ``width`` (µs), as Python's ``//`` does: SQLite's
    ``/`` and ``%`` truncate toward zero, which would put times before 1970 in the next
    bucket."""
    return f"({col} - ((({col} + {offset}) % {width}) + {width}) % {width})"


def recount_sql() -> str:
    """The rollup's rows as counted from the events table (backfill, and ``verify``)."""
    day = floor_sql("ts", DAY)
    sums = ", ".join(f"SUM(hod = {i})" for i in range(24))
    return (f"SELECT tenant, day, type, category, severity, outcome, {sums} FROM ("
            f"SELECT tenant, {day} AS day, (ts - {day}) / {HOUR} AS hod, type, "
            "IFNULL(category, '') AS category, severity, IFNULL(outcome, '') AS outcome "
            "FROM events) GROUP BY 1, 2, 3, 4, 5, 6")


def migrate(conn: sqlite3.Connection) -> None:
    """Create the table and count what is already stored, once: on a database that predates
    rollups, or that kept them in the earlier row-per-hour table (``rollup_hour``)."""
    if _has_table(conn, "rollup_day"):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if not _has_table(conn, "rollup_day"):  # another process may have just done it
            conn.execute(SCHEMA)  # one statement; executescript would commit first
            conn.execute(f"INSERT INTO rollup_day {recount_sql()}")
            conn.execute("DROP TABLE IF EXISTS rollup_hour")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                        (name,)).fetchone() is not None


def count_rows(tenant: str, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Upsert parameters for a batch of event rows (the writer's row layout)."""
    days: defaultdict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0] * 24)
    for r in rows:
        ts = r[4]
        day = ts // DAY * DAY
        days[day, r[6], r[7] or "", r[8], r[9] or ""][(ts - day) // HOUR] += 1
    return [(tenant, *k, *hours) for k, hours in days.items()]


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
    """Start of the hour/day/week (Monday) bucket of microsecond column ``col``; NULL without."""
    if interval is None:
        return "NULL"
    width = {"hour": HOUR, "day": DAY, "week": 7 * DAY}[interval]
    return floor_sql(col, width, _WEEK_OFFSET if interval == "week" else 0)


def severity_name_sql(expr: str) -> str:
    """A severity rank as its name (what answers show, and sort ties by)."""
    return ("CASE " + expr + "".join(f" WHEN {i} THEN '{s}'" for i, s in enumerate(SEVERITIES))
            + f" ELSE {expr} END")


def whole_hours(p: Plan) -> tuple[int | None, int | None]:
    """The hour-aligned middle of the range: [ceil(lo), floor(hi))."""
    h1 = None if p.lo is None else -(-p.lo // HOUR) * HOUR
    h2 = None if p.hi is None else p.hi // HOUR * HOUR
    return h1, h2


def counts_sql(tenant: str, p: Plan, spec: AggregateSpec, h1: int | None, h2: int | None
               ) -> tuple[str, list[Any]]:
    """``SELECT bucket, key, n`` over the whole hours [h1, h2), one row per (bucket, key)
    with n > 0. Keys are stored values (severity as its rank)."""
    where = ["tenant = ?"]
    params: list[Any] = [tenant]
    if h1 is not None:
        where.append(f"day >= {h1 // DAY * DAY}")
    if h2 is not None:
        where.append(f"day < {h2}")
    for col, values in p.equal:
        where.append(f"{col} IN ({','.join('?' * len(values))})")
        params.extend(values)
    key = spec.group_by or "NULL"
    if spec.group_by in ("category", "outcome"):
        where.append(f"{key} != ''")  # rows without the field have no group
    cond = " AND ".join(where)
    if spec.interval == "hour":
        # Sum each hour column per (day, key), then one output row per non-zero hour.
        sums = ", ".join(f"SUM({h}) AS {h}" for h in HOURS)
        pick = "CASE k.column1" + "".join(f" WHEN {i} THEN d.{h}" for i, h in enumerate(HOURS)) \
            + " END"
        at = f"d.day + k.column1 * {HOUR}"
        bounds = (f" AND {at} >= {h1}" if h1 is not None else "") + (
            f" AND {at} < {h2}" if h2 is not None else "")
        hours = ",".join(f"({i})" for i in range(24))
        sql = (f"SELECT {at} AS b, d.key AS k, {pick} AS n FROM (SELECT day, {key} AS key, "
               f"{sums} FROM rollup_day WHERE {cond} GROUP BY 1, 2) AS d, (VALUES {hours}) AS k "
               f"WHERE n > 0{bounds}")
        return sql, params
    # Coarser buckets hold whole days: add up each row's hours that lie within [h1, h2).
    terms = []
    for i, h in enumerate(HOURS):
        lo = None if h1 is None else h1 - i * HOUR
        hi = None if h2 is None else h2 - i * HOUR
        inside = " AND ".join(c for c in ((f"day >= {lo}" if lo is not None else ""),
                                         (f"day < {hi}" if hi is not None else "")) if c)
        terms.append(f"{h} * ({inside})" if inside else h)
    sql = (f"SELECT {bucket_sql(spec.interval, 'day')} AS b, {key} AS k, "
           f"SUM({' + '.join(terms)}) AS n FROM rollup_day WHERE {cond} GROUP BY 1, 2 "
           "HAVING n > 0")
    return sql, params
