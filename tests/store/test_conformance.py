"""The EventStore contract (store/base.py): sequencing, reads, pages and aggregates, run
against every backend in ``backends.BACKENDS`` through the interface alone.

The other guarantees have modules of their own beside this one: filters and full-text
(``test_store_filters``), idempotency (``test_store_idempotency``), the tamper-evident log,
redaction and purge (``test_store_log``), the commit feed (``test_store_feed``), close and
crashes (``test_store_lifecycle``).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from auditstream.errors import InvalidRequest
from auditstream.integrity.checkpoint import Signer
from auditstream.model.severity import RANK, SEVERITIES
from auditstream.model.times import now_us, parse_us
from auditstream.query.filter import All, Cmp, Eq, Exists, Not, Text, and_
from auditstream.store.base import AggregateSpec, EventQuery, EventStore

from .backends import HOUR, T0, Backend, ev, put

pytestmark = pytest.mark.anyio


async def test_seq_is_gap_free_per_tenant(store: EventStore) -> None:
    assert await put(store, "a", ev(), ev()) == [1, 2]
    assert await put(store, "b", ev()) == [1]
    assert await put(store, "a", ev()) == [3]
    assert await store.last_seq("a") == 3
    assert await store.last_seq("nobody") == 0


async def test_concurrent_appends_get_distinct_contiguous_seqs(store: EventStore) -> None:
    results = await asyncio.gather(*(put(store, "a", ev(), ev(), ev()) for _ in range(40)))
    seqs = sorted(s for r in results for s in r)
    assert seqs == list(range(1, 121))
    for r in results:  # each append's events are contiguous: one atomic unit
        assert r == list(range(r[0], r[0] + 3))


async def test_get_is_tenant_scoped(store: EventStore) -> None:
    e = ev(title="secret")
    await put(store, "a", e)
    got = await store.get("a", e["id"])
    assert got is not None and got["title"] == "secret" and got["seq"] == 1
    assert await store.get("b", e["id"]) is None


async def test_filters(store: EventStore) -> None:
    await put(
        store, "a",
        ev("install", outcome="block", severity="high", subject={"ecosystem": "npm"},
           title="Blocked left-padd"),
        ev("install", outcome="allow", subject={"ecosystem": "pip"}, title="Allowed requests"),
        ev("ais_gap", severity="critical", location={"zone": "lng_terminal"},
           title="AIS gap detected for MV Nordic Star", context={"http_status": 500}),
    )
    await put(store, "b", ev("install", subject={"ecosystem": "npm"}))

    async def n(where: Any) -> int:
        return await store.count("a", where)

    assert await n(Eq("subject.ecosystem", ("npm",))) == 1
    assert await n(Eq("type", ("install", "ais_gap"))) == 3
    assert await n(Cmp("severity", ">=", "high")) == 2
    assert await n(Not(Eq("outcome", ("allow",)))) == 2  # missing outcome counts as "not allow"
    assert await n(Eq("location.zone", ("lng_terminal",))) == 1
    assert await n(Eq("context.http_status", ("500", 500))) == 1
    assert await n(Text(("nordic star",))) == 1
    assert await n(Text(("left",))) == 1
    assert await n(and_(Eq("type", ("install",)), Text(("blocked",)))) == 1


def _sort_key(e: dict[str, Any], sort: str) -> tuple[int, ...]:
    ts = parse_us(e["timestamp"])
    return (RANK[e["severity"]], ts, e["seq"]) if sort == "severity" else (ts, e["seq"])


@pytest.mark.parametrize("sort", ["timestamp", "severity"])
@pytest.mark.parametrize("order", ["desc", "asc"])
async def test_keyset_walk_sees_every_original_event_exactly_once(
    store: EventStore, sort: str, order: str,
) -> None:
    """A walk started before concurrent appends yields each event that matched when it
    began exactly once, in order, whatever lands before, inside or after the walked range
    (including ties with the last event of a page)."""
    rnd = random.Random(11)
    # Few distinct timestamps and severities: many ties, broken by seq.
    originals = [ev(ts=T0 + rnd.randrange(40) * 1000, severity=rnd.choice(SEVERITIES),
                    title=f"e{i}") for i in range(250)]
    await put(store, "a", *originals)
    await put(store, "b", *[ev(ts=T0 + i) for i in range(30)])  # another tenant's events
    want = {e["id"] for e in originals}
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await store.query("a", EventQuery(All(), sort=sort, order=order,  # type: ignore[arg-type]
                                                 limit=37, cursor=cursor))
        seen += page.events
        last = page.events[-1] if page.events else seen[-1]
        await put(store, "a",
                  ev(ts=T0 + 20_000, severity="medium"),  # inside the walked range
                  ev(ts=parse_us(last["timestamp"]), severity=last["severity"]),  # a tie
                  ev(ts=T0 - HOUR, severity="info"), ev(ts=now_us(), severity="critical"))
        if not page.has_more:
            assert page.next_cursor is None
            break
        cursor = page.next_cursor
    ids = [e["id"] for e in seen]
    assert len(ids) == len(set(ids)), "an event was seen twice"
    assert want <= set(ids), f"{len(want - set(ids))} original events were never seen"
    keys = [_sort_key(e, sort) for e in seen]
    assert keys == sorted(keys, reverse=order == "desc")


async def test_sort_by_severity_and_order(store: EventStore) -> None:
    sevs = ["low", "critical", "info", "high", "medium"]
    await put(store, "a", *[ev(severity=s, ts=T0 + i) for i, s in enumerate(sevs)])
    page = await store.query("a", EventQuery(All(), sort="severity", order="desc", limit=2))
    assert [e["severity"] for e in page.events] == ["critical", "high"]
    page2 = await store.query("a", EventQuery(All(), sort="severity", order="desc", limit=10,
                                              cursor=page.next_cursor))
    assert [e["severity"] for e in page2.events] == ["medium", "low", "info"]
    asc = await store.query("a", EventQuery(All(), order="asc", limit=10))
    assert [e["severity"] for e in asc.events] == sevs


async def test_cursor_of_other_sort_is_rejected(store: EventStore) -> None:
    await put(store, "a", ev(), ev())
    page = await store.query("a", EventQuery(All(), limit=1))
    with pytest.raises(InvalidRequest):
        await store.query("a", EventQuery(All(), sort="severity", cursor=page.next_cursor))
    with pytest.raises(InvalidRequest):
        await store.query("a", EventQuery(All(), cursor="not-a-cursor"))
    with pytest.raises(InvalidRequest):  # another order
        await store.query("a", EventQuery(All(), order="asc", cursor=page.next_cursor))
    await put(store, "b", ev(), ev())
    with pytest.raises(InvalidRequest):  # another tenant's
        await store.query("b", EventQuery(All(), cursor=page.next_cursor))


async def test_a_total_counts_every_page(store: EventStore) -> None:
    await put(store, "a", *[ev(severity="high" if i % 3 else "low") for i in range(10)])
    where = Cmp("severity", ">=", "high")
    page = await store.query("a", EventQuery(where, limit=2, include_total=True))
    assert page.total == await store.count("a", where) == 6
    assert len(page.events) == 2 and page.has_more
    assert (await store.query("a", EventQuery(where, limit=2))).total is None


async def test_aggregate(store: EventStore) -> None:
    await put(
        store, "a",
        ev("login", ts=T0, actor={"id": "u1"}, llm={"cost_usd": 1.0}),
        ev("login", ts=T0 + 10, actor={"id": "u2"}, llm={"cost_usd": 3.0}),
        ev("logout", ts=T0 + HOUR, actor={"id": "u1"}),
        ev("login", ts=T0 + HOUR, actor={"id": ""}),
    )
    await put(store, "b", ev("login", ts=T0))
    flat = await store.aggregate("a", All(), AggregateSpec())
    assert len(flat) == 1 and flat[0].ts is None and flat[0].rows[0].count == 4
    by = await store.aggregate("a", All(), AggregateSpec(
        group_by="type", interval="hour", count_unique=("actor.id",),
        metrics=(("sum", "llm.cost_usd"), ("p50", "llm.cost_usd"))))
    assert [b.ts for b in by] == [T0 - T0 % HOUR, T0 - T0 % HOUR + HOUR]
    first = {r.key: r for r in by[0].rows}
    assert first["login"].count == 2 and first["login"].uniques == {"actor.id": 2}
    assert first["login"].metrics["llm.cost_usd"]["sum"] == 4.0
    assert first["login"].metrics["llm.cost_usd"]["p50"] == 1.0
    second = {r.key: r for r in by[1].rows}
    assert second["login"].uniques == {"actor.id": 0}  # empty values are not counted
    grouped = await store.aggregate("a", All(), AggregateSpec(group_by="actor.id"))
    assert {r.key: r.count for r in grouped[0].rows} == {"u1": 2, "u2": 1}  # "" left out
    empty = await store.aggregate("a", Eq("type", ("nope",)), AggregateSpec(interval="day"))
    assert empty == []


async def test_scan_in_seq_order_with_bounded_batches(store: EventStore) -> None:
    await put(store, "a", *[ev(ts=T0 - i) for i in range(25)])
    await put(store, "b", ev())
    batches = [b async for b in store.scan("a", All(), after_seq=5, batch=7)]
    assert [len(b) for b in batches] == [7, 7, 6]
    assert [e["seq"] for b in batches for e in b] == list(range(6, 26))


async def test_scan_over_many_reads(store: EventStore) -> None:
    """A scan long enough for several of a backend's reads (ClickHouse reads a window of
    seqs per query, sized by the batch): each visible event once and in seq order, for
    light and heavy batch sizes, with a selective filter, and with a redacted event whose
    old content matched that filter."""
    n = 6_000
    events = [ev(subject={"ecosystem": "npm" if i % 7 == 0 else "pip"}) for i in range(n)]
    for k in range(0, n, 1_000):
        await put(store, "a", *events[k:k + 1_000])
    await put(store, "b", *[ev(subject={"ecosystem": "npm"}) for _ in range(10)])
    gone = events[4_501]  # seq 4,502, an npm event
    assert await store.redact("a", gone["id"], "erasure") is not None
    npm = Eq("subject.ecosystem", ("npm",))
    want_npm = [i + 1 for i in range(n) if i % 7 == 0 and i != 4_501]
    every = list(range(1, n + 2))  # and the redaction's record
    for where, batch, want in ((All(), 64, every), (All(), 50, every), (npm, 64, want_npm),
                               (npm, 7, want_npm)):
        batches = [b async for b in store.scan("a", where, batch=batch)]
        assert [e["seq"] for b in batches for e in b] == want, (where, batch)
        assert all(0 < len(b) <= batch for b in batches)
    stub = [e async for b in store.scan("a", All(), batch=64) for e in b][4_501]
    assert stub["id"] == gone["id"] and "redacted" in stub and "subject" not in stub


async def test_durable_across_reopen(backend: Backend, signer: Signer,
                                     tmp_path: Path) -> None:
    s = backend.open(tmp_path, signer=signer)
    e = ev()
    await put(s, "a", e)
    await s.close()
    s2 = backend.open(tmp_path, signer=signer)
    try:
        assert (await s2.get("a", e["id"]))["seq"] == 1  # type: ignore[index]
        assert await put(s2, "a", ev()) == [2]
    finally:
        await s2.close()


async def test_exists_matches_any_json_type_on_indexed_paths(store: EventStore) -> None:
    await put(store, "a", ev(subject={"ecosystem": "npm"}), ev(subject={"ecosystem": True}),
              ev(subject={"ecosystem": {"name": "npm"}}), ev(subject={}))
    assert await store.count("a", Exists("subject.ecosystem")) == 3
    assert await store.count("a", Not(Exists("subject.ecosystem"))) == 1


async def test_readers_never_see_a_later_seq_before_an_earlier_one(store: EventStore) -> None:
    async def writer() -> None:
        for _ in range(30):
            await put(store, "a", *[ev() for _ in range(20)])

    task = asyncio.create_task(writer())
    while not task.done():
        last = await store.last_seq("a")
        seqs = [e["seq"] async for b in store.scan("a", All()) for e in b]
        assert seqs[: len(seqs)] == list(range(1, len(seqs) + 1))
        assert len(seqs) >= last
        await asyncio.sleep(0)
    await task


async def test_aggregate_matches_a_direct_count(store: EventStore) -> None:
    """Whatever shortcut a backend takes (rollups), counts equal counting the events."""
    rnd = random.Random(5)
    evs = []
    for _ in range(600):
        e = ev(rnd.choice(["login", "logout", "install"]), ts=T0 + rnd.randrange(0, 50 * HOUR),
               severity=rnd.choice(["info", "high"]))
        if rnd.random() < 0.7:
            e["outcome"] = rnd.choice(["allow", "block"])
        if rnd.random() < 0.5:
            e["category"] = "auth"
        evs.append(e)
    await put(store, "a", *evs)
    await put(store, "b", ev("login", ts=T0 + HOUR))
    week = 7 * 24 * HOUR
    width = {"hour": HOUR, "day": 24 * HOUR, "week": week}
    for _ in range(25):
        lo = T0 + rnd.randrange(-HOUR, 30 * HOUR)
        hi = lo + rnd.randrange(1, 40 * HOUR)
        group = rnd.choice([None, "type", "severity", "outcome", "category"])
        interval = rnd.choice([None, "hour", "day", "week"])
        types = rnd.choice([None, ("login",), ("login", "install")])
        where = and_(Cmp("timestamp", ">=", lo), Cmp("timestamp", "<", hi),
                     Eq("type", types) if types else None)
        got = {(b.ts, r.key): r.count for b in await store.aggregate(
            "a", where, AggregateSpec(group_by=group, interval=interval)) for r in b.rows}
        want: Counter[tuple[Any, Any]] = Counter()
        for e in evs:
            us = parse_us(e["timestamp"])
            if not lo <= us < hi or (types and e["type"] not in types):
                continue
            key = e.get(group) if group else None
            if group and not key:
                continue
            if interval == "week":
                b = (us + 3 * 24 * HOUR) // week * week - 3 * 24 * HOUR
            else:
                b = us // width[interval] * width[interval] if interval else None
            want[b, key] += 1
        assert got == dict(want), (lo, hi, group, interval, types)
