"""Idempotent appends (store/base.py): client-chosen ids and Idempotency-Keys, per backend,
with and without integrity (an unsigned store keeps non-canonical bodies, which must not
change what counts as the same event)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from auditstream.errors import Conflict
from auditstream.integrity.checkpoint import Signer
from auditstream.model.times import format_us
from auditstream.query.filter import All
from auditstream.store.base import EventStore

from .backends import HOUR, INDEXED, T0, Backend, ev, put

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["signed", "unsigned"])
async def store(request: pytest.FixtureRequest, backend: Backend, signer: Signer,
                tmp_path: Path) -> AsyncIterator[EventStore]:
    s = backend.open(tmp_path, signer=signer if request.param == "signed" else None,
                     indexed_paths=INDEXED)
    yield s
    await s.close()


def client_event(tenant: str, eid: str, **fields: Any) -> dict[str, Any]:
    e = ev(id=eid, **fields)
    e["tenant"] = tenant
    return e


def received(e: dict[str, Any], us: int) -> dict[str, Any]:
    """The same event as the server would build it again on a retry ``us`` later."""
    return dict(e, received_at=format_us(us))


async def test_a_replayed_client_id_answers_the_stored_seq_and_writes_nothing(
    store: EventStore,
) -> None:
    e = client_event("a", "evt_client_1", title="one", actor={"id": "u1"})
    first = await store.append("a", [dict(e)], client_ids=frozenset({0}))
    assert (first[0].id, first[0].seq, first[0].created) == ("evt_client_1", 1, True)
    # The server's own fields (received_at, seq, tenant) do not make it another event.
    again = await store.append("a", [received(e, T0 + HOUR)], client_ids=frozenset({0}))
    assert (again[0].id, again[0].seq, again[0].created) == ("evt_client_1", 1, False)
    assert await store.last_seq("a") == 1
    assert (await store.get("a", "evt_client_1"))["received_at"] == e["received_at"]  # type: ignore[index]


async def test_new_and_replayed_events_in_one_append(store: EventStore) -> None:
    old = client_event("a", "evt_old")
    await store.append("a", [dict(old)], client_ids=frozenset({0}))
    new = client_event("a", "evt_new")
    plain = ev()
    plain["tenant"] = "a"
    got = await store.append("a", [dict(new), dict(old), plain], client_ids=frozenset({0, 1}))
    assert [(a.id, a.seq, a.created) for a in got] == [
        ("evt_new", 2, True), ("evt_old", 1, False), (plain["id"], 3, True)]


async def test_other_content_under_a_stored_id_is_a_conflict_that_rejects_the_append(
    store: EventStore,
) -> None:
    e = client_event("a", "evt_client_1", title="one")
    await store.append("a", [dict(e)], client_ids=frozenset({0}))
    other = ev(title="new")
    other["tenant"] = "a"
    with pytest.raises(Conflict) as info:
        await store.append("a", [other, dict(e, title="changed")], client_ids=frozenset({1}))
    assert [(x["index"], x["field"]) for x in info.value.errors] == [(1, "id")]
    assert await store.count("a", All()) == 1  # the valid event of the refused append is not
    assert await store.get("a", other["id"]) is None  # stored either
    assert await put(store, "a", ev()) == [2]  # and no seq was burnt


async def test_a_retry_of_an_event_sent_without_timestamp_is_the_same_event(
    store: EventStore,
) -> None:
    """Without a client timestamp the server sets ``timestamp`` to ``received_at``; the
    retry gets a later one of both, and is still recognised."""
    first_try = format_us(T0)
    e = client_event("a", "evt_no_ts", title="one")
    e["timestamp"] = e["received_at"] = first_try
    await store.append("a", [dict(e)], client_ids=frozenset({0}))
    retry_at = format_us(T0 + 5_000_000)
    retry = dict(e, timestamp=retry_at, received_at=retry_at)
    got = await store.append("a", [retry], client_ids=frozenset({0}))
    assert (got[0].seq, got[0].created) == (1, False)
    assert (await store.get("a", "evt_no_ts"))["timestamp"] == first_try  # type: ignore[index]
    # A timestamp the client did send is content: another one is another event.
    sent = client_event("a", "evt_ts", ts=T0)
    await store.append("a", [dict(sent)], client_ids=frozenset({0}))
    with pytest.raises(Conflict):
        await store.append("a", [dict(sent, timestamp=format_us(T0 + 1))],
                           client_ids=frozenset({0}))


async def test_an_id_repeated_within_one_append(store: EventStore) -> None:
    e = client_event("a", "evt_twice", title="same")
    got = await store.append("a", [dict(e), dict(e)], client_ids=frozenset({0, 1}))
    assert [(a.id, a.seq) for a in got] == [("evt_twice", 1), ("evt_twice", 1)]
    assert await store.count("a", All()) == 1
    d = client_event("a", "evt_differs", title="first")
    with pytest.raises(Conflict) as info:
        await store.append("a", [dict(d), dict(d, title="second")], client_ids=frozenset({0, 1}))
    assert [x["index"] for x in info.value.errors] == [1]
    assert await store.get("a", "evt_differs") is None


async def test_client_ids_are_per_tenant(store: EventStore) -> None:
    await store.append("a", [client_event("a", "evt_shared", title="a's")],
                       client_ids=frozenset({0}))
    got = await store.append("b", [client_event("b", "evt_shared", title="b's")],
                             client_ids=frozenset({0}))
    assert (got[0].seq, got[0].created) == (1, True)
    assert (await store.get("a", "evt_shared"))["title"] == "a's"  # type: ignore[index]
    assert (await store.get("b", "evt_shared"))["title"] == "b's"  # type: ignore[index]


async def test_concurrent_retries_of_one_client_id_store_it_once(store: EventStore) -> None:
    e = client_event("a", "evt_racing")
    got = await asyncio.gather(*(
        store.append("a", [received(e, T0 + HOUR + i)], client_ids=frozenset({0}))
        for i in range(8)))
    assert {r[0].seq for r in got} == {1}
    assert sum(r[0].created for r in got) == 1
    assert await store.count("a", All()) == 1


async def test_idempotency_key_answers_the_first_result(store: EventStore) -> None:
    batch = [ev(), ev()]
    for e in batch:
        e["tenant"] = "a"
    r1 = await store.append("a", batch, idempotency_key="k1", request_hash="h1")
    # The stored answer, whatever the events of the repeat (the hash says it is the same).
    r2 = await store.append("a", [ev()], idempotency_key="k1", request_hash="h1")
    assert [(a.id, a.seq) for a in r2] == [(a.id, a.seq) for a in r1]
    assert not any(a.created for a in r2)
    with pytest.raises(Conflict) as info:
        await store.append("a", [ev()], idempotency_key="k1", request_hash="other")
    assert info.value.errors[0]["field"] == "Idempotency-Key"
    assert await store.count("a", All()) == 2
    # Keys are per tenant.
    other = await store.append("b", [dict(ev(), tenant="b")], idempotency_key="k1",
                               request_hash="h1")
    assert (other[0].seq, other[0].created) == (1, True)


async def test_a_refused_request_does_not_take_its_idempotency_key(store: EventStore) -> None:
    e = client_event("a", "evt_taken", title="one")
    await store.append("a", [dict(e)], client_ids=frozenset({0}))
    with pytest.raises(Conflict):
        await store.append("a", [dict(e, title="two")], client_ids=frozenset({0}),
                           idempotency_key="k", request_hash="h")
    fixed = client_event("a", "evt_fixed")
    got = await store.append("a", [fixed], client_ids=frozenset({0}),
                             idempotency_key="k", request_hash="h")
    assert (got[0].id, got[0].seq, got[0].created) == ("evt_fixed", 2, True)


async def test_concurrent_repeats_under_one_idempotency_key_write_once(
    store: EventStore,
) -> None:
    async def send() -> list[tuple[str, int]]:
        batch = [ev(), ev(), ev()]
        for e in batch:
            e["tenant"] = "a"
        got = await store.append("a", batch, idempotency_key="k", request_hash="h")
        return [(a.id, a.seq) for a in got]

    answers = await asyncio.gather(*(send() for _ in range(6)))
    assert all(a == answers[0] for a in answers)
    assert await store.count("a", All()) == 3
