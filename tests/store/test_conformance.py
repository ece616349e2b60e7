"""The EventStore contract (store/base.py), written once and run against every backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from auditstream.errors import Conflict, InvalidRequest
from auditstream.integrity.checkpoint import generate_signer
from auditstream.model.ids import new_event_id
from auditstream.model.times import format_us, now_us
from auditstream.query.filter import All, Cmp, Eq, Not, Text, and_
from auditstream.store.base import AggregateSpec, EventQuery, EventStore
from auditstream.store.sqlite import SQLiteEventStore

pytestmark = pytest.mark.anyio

BACKENDS: dict[str, Callable[[Path], EventStore]] = {
    "sqlite": lambda tmp: SQLiteEventStore(
        tmp / "store.db", indexed_paths=["subject.ecosystem"],
        signer=generate_signer("test.local")),
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=sorted(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventStore]:
    s = BACKENDS[request.param](tmp_path)
    yield s
    await s.close()


HOUR = 3_600_000_000
T0 = 1_780_000_000_000_000  # 2026-05-28, a fixed clock for deterministic buckets


def ev(type_: str = "install", *, ts: int = T0, **fields: Any) -> dict[str, Any]:
    return {"id": new_event_id(), "tenant": "", "timestamp": format_us(ts),
            "received_at": format_us(now_us()), "type": type_,
            "severity": fields.pop("severity", "info"), **fields}


async def put(store: EventStore, tenant: str, *events: dict[str, Any]) -> list[int]:
    for e in events:
        e["tenant"] = tenant
    return [a.seq for a in await store.append(tenant, list(events))]


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


async def test_replay_of_client_id_is_a_noop_and_conflict_rejects_all(store: EventStore) -> None:
    e = ev(id="evt_client_1", title="one")
    e["tenant"] = "a"
    first = await store.append("a", [dict(e)], client_ids=frozenset({0}))
    again = await store.append("a", [dict(e, received_at=format_us(now_us()))],
                               client_ids=frozenset({0}))
    assert (again[0].id, again[0].seq, again[0].created) == ("evt_client_1", first[0].seq, False)
    other = ev(title="new")
    other["tenant"] = "a"
    with pytest.raises(Conflict) as info:
        await store.append("a", [other, dict(e, title="changed")], client_ids=frozenset({1}))
    assert info.value.errors[0]["index"] == 1
    assert await store.count("a", All()) == 1  # the valid event of the rejected batch is not stored
    assert await put(store, "a", ev()) == [2]  # and no seq was burnt


async def test_idempotency_key(store: EventStore) -> None:
    e = ev()
    e["tenant"] = "a"
    r1 = await store.append("a", [e], idempotency_key="k1", request_hash="h1")
    r2 = await store.append("a", [ev()], idempotency_key="k1", request_hash="h1")
    assert [a.seq for a in r2] == [a.seq for a in r1] and not r2[0].created
    with pytest.raises(Conflict):
        await store.append("a", [ev()], idempotency_key="k1", request_hash="other")
    assert await store.count("a", All()) == 1


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


async def test_keyset_walk_is_complete_under_concurrent_appends(store: EventStore) -> None:
    await put(store, "a", *[ev(ts=T0 + i * 1000, title=f"e{i}") for i in range(250)])
    seen: list[str] = []
    cursor = None
    extra = 0
    while True:
        page = await store.query("a", EventQuery(All(), limit=37, cursor=cursor))
        seen += [e["id"] for e in page.events]
        # New events arrive during the walk, some inside the walked range.
        await put(store, "a", ev(ts=T0 + 500), ev(ts=now_us()))
        extra += 2
        if not page.has_more:
            break
        cursor = page.next_cursor
    assert len(seen) == len(set(seen))
    assert len(seen) >= 250


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


async def test_durable_across_reopen(tmp_path: Path) -> None:
    s = SQLiteEventStore(tmp_path / "x.db")
    e = ev()
    e["tenant"] = "a"
    await s.append("a", [e])
    await s.close()
    s2 = SQLiteEventStore(tmp_path / "x.db")
    try:
        assert (await s2.get("a", e["id"]))["seq"] == 1  # type: ignore[index]
        e2 = ev()
        e2["tenant"] = "a"
        assert [a.seq for a in await s2.append("a", [e2])] == [2]
    finally:
        await s2.close()


async def test_exists_matches_any_json_type_on_indexed_paths(store: EventStore) -> None:
    await put(store, "a", ev(subject={"ecosystem": "npm"}), ev(subject={"ecosystem": True}),
              ev(subject={"ecosystem": {"name": "npm"}}), ev(subject={}))
    from auditstream.query.filter import Exists

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
    import random
    from collections import Counter

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
            us = _us(e["timestamp"])
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


def _us(ts: str) -> int:
    from auditstream.model.times import parse_us

    return parse_us(ts)
