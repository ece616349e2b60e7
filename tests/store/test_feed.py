"""The commit feed of a store (``store.feed``, a ``log.feed.CommitFeed``), per backend:
notices come after the commit that makes them true, in commit order per tenant, and by the
time ``append`` returns its own process's feed knows it."""

from __future__ import annotations

import asyncio
import random

import pytest

from auditstream.log.protocol import CommitNotice
from auditstream.query.filter import All
from auditstream.store.base import EventStore

from .backends import HOUR, T0, ev, put

pytestmark = pytest.mark.anyio


async def test_a_waiter_is_woken_by_the_append_it_waits_for(store: EventStore) -> None:
    feed = store.feed  # type: ignore[attr-defined]
    waiter = asyncio.create_task(feed.wait("a", 0))
    other = asyncio.create_task(feed.wait("b", 0))
    await asyncio.sleep(0)
    assert not waiter.done()
    seqs = await put(store, "a", ev(), ev())
    # Published before the reply: the feed knows the commit when append returns.
    assert feed.watermark("a") == seqs[-1] == 2
    assert await waiter == 2
    assert not other.done()  # another tenant's waiter sleeps on
    other.cancel()


async def test_a_woken_reader_sees_every_event_up_to_the_notice(store: EventStore) -> None:
    """Never early, never out of order: whoever wakes on (tenant, N) and reads the store
    sees exactly 1..N, so following the feed misses nothing and sees nothing twice."""
    feed = store.feed  # type: ignore[attr-defined]
    total = 40 * 3

    async def follow() -> list[int]:
        seen: list[int] = []
        last = 0
        while last < total:
            mark = await feed.wait("a", last)
            assert mark > last
            batch = [e["seq"] async for b in store.scan("a", All(), after_seq=last)
                     for e in b]
            assert batch[:mark - last] == list(range(last + 1, mark + 1))
            seen += batch[:mark - last]
            last = mark
        return seen

    follower = asyncio.create_task(follow())
    await asyncio.sleep(0)
    await asyncio.gather(*(put(store, "a", ev(), ev(), ev()) for _ in range(40)))
    assert await follower == list(range(1, total + 1))


async def test_notices_come_in_commit_order_per_tenant(store: EventStore) -> None:
    feed = store.feed  # type: ignore[attr-defined]
    notices: list[CommitNotice] = []
    stop = feed.listen(notices.append)
    tenants = ["a", "b", "c"]
    rnd = random.Random(2)
    acked: dict[str, list[int]] = {t: [] for t in tenants}
    marks: dict[str, list[int]] = {t: [] for t in tenants}

    async def client(tenant: str) -> None:
        for _ in range(15):
            seqs = await put(store, tenant, *[ev() for _ in range(rnd.randint(1, 20))])
            # When the append returns, the feed is at least that far (never behind it).
            for t in tenants:
                marks[t].append(feed.watermark(t))
            assert feed.watermark(tenant) >= seqs[-1]
            acked[tenant] += seqs

    await asyncio.gather(*(client(t) for t in tenants for _ in range(3)))
    stop()
    for t in tenants:
        last = await store.last_seq(t)
        assert sorted(acked[t]) == list(range(1, last + 1))
        published = [n.last_seq for n in notices if n.tenant == t]
        assert published == sorted(set(published)), f"{t}: out of order or repeated"
        assert published[-1] == last == feed.watermark(t)
        assert marks[t] == sorted(marks[t]), f"{t}: the watermark went backwards"


async def test_redactions_and_purges_are_commits_too(store: EventStore) -> None:
    feed = store.feed  # type: ignore[attr-defined]
    e = ev(title="secret")
    await put(store, "a", e, ev())
    await store.redact("a", e["id"], "gdpr")  # appends a redaction record: seq 3
    assert feed.watermark("a") == await store.last_seq("a") == 3
    await store.purge("a", T0 + 100 * 365 * 24 * HOUR, "all")
    assert feed.watermark("a") == await store.last_seq("a") == 4


async def test_a_commit_that_writes_nothing_for_a_tenant_notifies_nothing(
    store: EventStore,
) -> None:
    feed = store.feed  # type: ignore[attr-defined]
    e = ev(id="evt_once")
    e["tenant"] = "a"
    await store.append("a", [dict(e)], client_ids=frozenset({0}))
    notices: list[CommitNotice] = []
    stop = feed.listen(notices.append)
    await store.append("a", [dict(e)], client_ids=frozenset({0}))  # a replay
    await store.redact("a", "evt_missing", "nothing")
    stop()
    assert notices == []
    assert feed.watermark("a") == 1
