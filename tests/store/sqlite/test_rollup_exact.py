"""Aggregates served from the hourly rollup equal counting the events one by one.

Random events around 1970 (negative times: SQLite's ``/`` truncates toward zero where the
buckets must floor) and in 2026, random ranges with partial hours and days at either end
(the edge-hour scans), every interval, group and equality filter the rollup serves, and
small ``max_groups`` so the order of rows within a bucket counts too.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from auditstream.model.ids import new_event_id
from auditstream.model.severity import RANK
from auditstream.model.times import format_us
from auditstream.query.filter import Cmp, Eq, Node, and_
from auditstream.store.base import AggregateSpec
from auditstream.store.sqlite import SQLiteEventStore, rollup

HOUR = 3_600_000_000
DAY = 24 * HOUR
WEEK = 7 * DAY
EPOCHS = (-2 * DAY, 1_780_000_000_000_000)  # around 1970, and 2026
TYPES = ("login", "logout", "install", "user.created")
SEVERITIES = tuple(RANK)


def _event(rnd: random.Random, tenant: str) -> dict[str, Any]:
    ts = rnd.choice(EPOCHS) + rnd.randrange(0, 5 * DAY)
    ev: dict[str, Any] = {
        "id": new_event_id(), "tenant": tenant, "timestamp": format_us(ts),
        "received_at": format_us(EPOCHS[1]), "type": rnd.choice(TYPES),
        "severity": rnd.choice(SEVERITIES)}
    if rnd.random() < 0.7:
        ev["category"] = rnd.choice(("auth", "install"))
    if rnd.random() < 0.7:
        ev["outcome"] = rnd.choice(("allow", "block", "success"))
    return ev


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[dict]]]:
    db = tmp_path_factory.mktemp("rollup") / "r.db"
    rnd = random.Random(8)
    events = [_event(rnd, "a") for _ in range(1500)]

    async def fill() -> None:
        store = SQLiteEventStore(db)
        # Batches of different sizes: the same (day, type, …) row is upserted many times.
        i = 0
        while i < len(events):
            n = rnd.choice((1, 7, 100, 400))
            await store.append("a", events[i:i + n])
            i += n
        await store.append("b", [_event(rnd, "b") for _ in range(200)])
        await store.close()

    asyncio.run(fill())
    yield db, events


def _us(ts: str) -> int:
    from auditstream.model.times import parse_us

    return parse_us(ts)


def _bucket(us: int, interval: str | None) -> int | None:
    if interval is None:
        return None
    if interval == "week":
        return (us + 3 * DAY) // WEEK * WEEK - 3 * DAY
    width = HOUR if interval == "hour" else DAY
    return us // width * width


def expected(events: list[dict], lo: int | None, hi: int | None,
             equal: dict[str, tuple[str, ...]], spec: AggregateSpec) -> list[tuple]:
    counts: Counter[tuple[Any, Any]] = Counter()
    for e in events:
        us = _us(e["timestamp"])
        if (lo is not None and us < lo) or (hi is not None and us >= hi):
            continue
        if any(e.get(f) not in values for f, values in equal.items()):
            continue
        key = e.get(spec.group_by) if spec.group_by else None
        if spec.group_by and not key:
            continue
        counts[_bucket(us, spec.interval), key] += 1
    out = []
    for b in sorted({b for b, _ in counts}, key=lambda t: (t is not None, t)):
        rows = sorted(((k, n) for (bb, k), n in counts.items() if bb == b),
                      key=lambda kn: (-kn[1], str(kn[0])))
        out += [(b, k, n) for k, n in rows[: spec.max_groups]]
    return out


def _bound(rnd: random.Random) -> int | None:
    if rnd.random() < 0.15:
        return None
    at = rnd.choice(EPOCHS) + rnd.randrange(-DAY, 6 * DAY)
    # Often exactly on an hour or a day: where the rollup and the edge scans meet.
    return rnd.choice((at, at // HOUR * HOUR, at // DAY * DAY, at // HOUR * HOUR + 1))


def cases(n: int) -> Iterator[tuple[Node, int | None, int | None, dict, AggregateSpec]]:
    rnd = random.Random(13)
    for _ in range(n):
        lo, hi = _bound(rnd), _bound(rnd)
        parts: list[Node | None] = []
        # Inclusive and exclusive forms of the same bounds.
        if lo is not None:
            parts.append(rnd.choice((Cmp("timestamp", ">=", lo), Cmp("timestamp", ">", lo - 1))))
        if hi is not None:
            parts.append(rnd.choice((Cmp("timestamp", "<", hi), Cmp("timestamp", "<=", hi - 1))))
        equal: dict[str, tuple[str, ...]] = {}
        for field, values in (("type", TYPES), ("severity", SEVERITIES),
                              ("outcome", ("allow", "block")), ("category", ("auth",))):
            if rnd.random() < 0.2:
                equal[field] = tuple(rnd.sample(values, rnd.randrange(1, 3) if len(values) > 1
                                                else 1))
                parts.append(Eq(field, equal[field]))
        spec = AggregateSpec(
            group_by=rnd.choice((None, "type", "category", "severity", "outcome")),
            interval=rnd.choice((None, "hour", "day", "week")),
            max_groups=rnd.choice((1, 2, 1000)))
        yield and_(*parts), lo, hi, equal, spec


def test_rollup_answers_equal_counting_every_event(
    loaded: tuple[Path, list[dict]],
) -> None:
    db, events = loaded
    served = 0

    async def run() -> None:
        nonlocal served
        store = SQLiteEventStore(db)
        try:
            for where, lo, hi, equal, spec in cases(300):
                served += rollup.plan(where, spec) is not None
                want = expected(events, lo, hi, equal, spec)
                got = await store.aggregate_counts("a", where, spec)
                assert got == want, (lo, hi, equal, spec)
                buckets = await store.aggregate("a", where, spec)
                assert [(b.ts, r.key, r.count) for b in buckets for r in b.rows] == want
        finally:
            await store.close()

    asyncio.run(run())
    assert served == 300  # every case went through the rollup (and its edge scans)


def test_a_scan_served_aggregate_orders_rows_the_same_way(
    loaded: tuple[Path, list[dict]],
) -> None:
    """A filter the rollup cannot serve (a dotted path) is counted from the events: same
    order and cut as from the rollup."""
    db, events = loaded

    async def run() -> list[Any]:
        store = SQLiteEventStore(db)
        try:
            spec = AggregateSpec(group_by="type", interval="day", max_groups=2)
            where = and_(Cmp("timestamp", ">=", EPOCHS[0]), Cmp("tenant", "!=", "zzz"))
            assert rollup.plan(where, spec) is None
            return await store.aggregate_counts("a", where, spec)
        finally:
            await store.close()

    got = asyncio.run(run())
    assert got == expected(events, EPOCHS[0], None, {}, AggregateSpec(
        group_by="type", interval="day", max_groups=2))


def test_the_partial_hours_at_the_ends_are_all_that_is_scanned(tmp_path: Path) -> None:
    """A range with two upper bounds (``until`` and the end of the last whole hour) must
    scan only the partial hour: with the looser bound SQLite walked the whole range. Work
    is counted in SQLite VM instructions (no clock)."""
    db = tmp_path / "w.db"
    rnd = random.Random(2)
    start = EPOCHS[1]
    # One (type, category, severity, outcome): two rollup rows, so the scans are the work.
    evs = [{**_event(rnd, "a"), "type": "login", "severity": "info", "category": "auth",
            "outcome": "allow", "timestamp": format_us(start + i * (2 * DAY // 3000))}
           for i in range(3000)]

    async def run() -> tuple[int, int]:
        store = SQLiteEventStore(db, readers=1)
        try:
            await store.append("a", evs)
            reader = store._readers.get()
            store._readers.put(reader)
            steps = [0]

            def tick() -> int:
                steps[0] += 1
                return 0

            reader.conn.set_progress_handler(tick, 100)
            until = start + 2 * DAY - HOUR // 2  # the last hour is partial
            spec = AggregateSpec(group_by="type")
            ranged = and_(Cmp("timestamp", ">=", start + HOUR // 3),
                          Cmp("timestamp", "<=", until))
            assert rollup.plan(ranged, spec) is not None
            await store.aggregate_counts("a", ranged, spec)
            served, steps[0] = steps[0], 0
            # The same range counted from every event (a filter the rollup cannot serve).
            await store.aggregate_counts("a", and_(ranged, Cmp("seq", ">", 0)), spec)
            return served, steps[0]
        finally:
            await store.close()

    served, scanned = asyncio.run(run())
    assert served * 5 < scanned, (served, scanned)
