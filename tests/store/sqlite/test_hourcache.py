"""Hourly answers kept between requests (``hourcache``) stay exact while events arrive:
also events for hours closed long ago (client timestamps), also when another store on the
same file (another worker process) appends them, also when entries are evicted."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

from test_rollup_exact import DAY, EPOCHS, HOUR, _event, expected

from auditstream.model.times import format_us
from auditstream.query.filter import Cmp, Eq, Node, and_
from auditstream.store.base import AggregateSpec
from auditstream.store.sqlite import SQLiteEventStore
from auditstream.store.sqlite.hourcache import HourCache


class ReadOnly:
    """A channel to no writer: the store only reads (as an HTTP worker process does)."""

    async def request(self, _request: object) -> Any:
        raise AssertionError("this store only reads")

    async def close(self) -> None:
        return None


def _queries(rnd: random.Random) -> list[tuple[Node, int | None, int | None, dict,
                                               AggregateSpec]]:
    out = []
    for group in (None, "type", "severity"):
        for lo in (None, EPOCHS[0] + 5 * HOUR // 2, EPOCHS[1] - DAY, EPOCHS[1] + 7 * HOUR):
            hi = rnd.choice((None, EPOCHS[1] + 3 * DAY + HOUR // 3))
            equal = {"type": ("login", "install")} if rnd.random() < 0.3 else {}
            where = and_(Cmp("timestamp", ">=", lo) if lo is not None else None,
                         Cmp("timestamp", "<", hi) if hi is not None else None,
                         Eq("type", equal["type"]) if equal else None)
            out.append((where, lo, hi, equal, AggregateSpec(
                group_by=group, interval="hour", max_groups=rnd.choice((2, 1000)))))
    return out


def test_cached_hours_follow_every_append(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    rnd = random.Random(21)
    events: list[dict[str, Any]] = []

    async def run() -> tuple[int, int]:
        writer = SQLiteEventStore(db)
        reader = SQLiteEventStore(db, channel=ReadOnly())  # type: ignore[arg-type]
        try:
            for round_ in range(12):
                batch = [_event(rnd, "a") for _ in range(rnd.choice((1, 5, 60)))]
                if round_ % 3 == 2:  # a late event for an hour closed long ago
                    batch.append({**_event(rnd, "a"), "type": "late",
                                  "timestamp": format_us(EPOCHS[1] + 3 * HOUR + 17)})
                await writer.append("a", batch)
                await writer.append("b", [_event(rnd, "b")])  # another tenant's seq moves
                events.extend(batch)
                for store in (reader, writer):
                    for where, lo, hi, equal, spec in _queries(rnd):
                        want = expected(events, lo, hi, equal, spec)
                        assert await store.aggregate_counts("a", where, spec) == want, (
                            round_, lo, hi, equal, spec)
            return reader.hour_cache.hits, reader.hour_cache.refreshed_hours
        finally:
            await reader.close()
            await writer.close()

    hits, refreshed = asyncio.run(run())
    assert hits > 50 and refreshed > 0  # answered from the cache, and brought up to date


def test_a_small_cache_evicts_and_stays_exact(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    rnd = random.Random(3)
    events = [_event(rnd, "a") for _ in range(400)]

    async def run() -> None:
        store = SQLiteEventStore(db)
        store.hour_cache = HourCache(max_rows=50, max_catch_up=10)
        try:
            await store.append("a", events[:200])
            for where, lo, hi, equal, spec in _queries(rnd) * 2:
                want = expected(events[:200], lo, hi, equal, spec)
                assert await store.aggregate_counts("a", where, spec) == want
            await store.append("a", events[200:])  # more than max_catch_up: counted afresh
            for where, lo, hi, equal, spec in _queries(rnd):
                assert await store.aggregate_counts("a", where, spec) == expected(
                    events, lo, hi, equal, spec)
            assert sum(e.size for e in store.hour_cache._entries.values()) <= 50
        finally:
            await store.close()

    asyncio.run(run())


def test_callers_varying_their_filter_cannot_grow_the_cache(tmp_path: Path) -> None:
    """Empty answers are entries too: without a bound on entries, a caller asking for one
    made-up type after another would grow the cache without end."""

    async def run() -> int:
        store = SQLiteEventStore(tmp_path / "g.db")
        store.hour_cache = HourCache(max_entries=8)
        try:
            await store.append("a", [_event(random.Random(1), "a")])
            spec = AggregateSpec(group_by="type", interval="hour")
            for i in range(40):
                assert await store.aggregate_counts("a", Eq("type", (f"nope{i}",)), spec) == []
            return len(store.hour_cache._entries)
        finally:
            await store.close()

    assert asyncio.run(run()) == 8
