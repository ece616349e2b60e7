"""The tamper-evident log through the store interface, per backend: leaves, Merkle nodes,
checkpoints, proofs, redaction and purge (store/base.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from auditstream.errors import Conflict, InvalidRequest, StoreUnavailable
from auditstream.integrity import merkle, redaction
from auditstream.integrity.canonical import canonical_bytes
from auditstream.integrity.checkpoint import Signer, open_checkpoint
from auditstream.integrity.origin import origin_for
from auditstream.model.times import format_us
from auditstream.query.filter import Eq, Text
from auditstream.store.base import AggregateSpec, EventStore

from .backends import DEPLOYMENT, HOUR, T0, Backend, assert_verified, ev, everything, put

pytestmark = pytest.mark.anyio


async def fill(store: EventStore, tenant: str, *sizes: int) -> list[dict[str, Any]]:
    """Appends of the given sizes (one commit each); the stored events in seq order."""
    for n in sizes:
        await put(store, tenant, *[ev("login", title=f"event {i}", actor={"id": f"u{i % 5}"})
                                   for i in range(n)])
    return await everything(store, tenant)


async def leaves(store: EventStore, tenant: str, n: int) -> list[bytes]:
    nodes = await store.merkle_nodes(tenant, [(0, i) for i in range(n)])
    return [nodes[0, i] for i in range(n)]


def getter(nodes: dict[tuple[int, int], bytes]) -> merkle.NodeGetter:
    return lambda level, index: nodes[level, index]


async def signed_root(store: EventStore, tenant: str, size: int, signer: Signer) -> bytes:
    cp = open_checkpoint(await store.sign_checkpoint(tenant, size), signer.verifier())
    assert (cp.origin, cp.size) == (origin_for(DEPLOYMENT, tenant), size)
    return cp.root


# -- leaves, nodes and checkpoints --------------------------------------------------------


async def test_each_leaf_is_the_hash_of_the_event_as_served(
    store: EventStore, signer: Signer,
) -> None:
    events = await fill(store, "a", 13, 1, 7)
    got = await leaves(store, "a", 21)
    assert got == [merkle.leaf_hash(canonical_bytes(e)) for e in events]
    await assert_verified(store, "a", signer)


async def test_nodes_outside_the_tree_are_a_lookup_error(store: EventStore) -> None:
    await fill(store, "a", 6)
    for node in [(0, 6), (1, 3), (3, 0), (0, -1)]:
        with pytest.raises(LookupError):
            await store.merkle_nodes("a", [node])
    with pytest.raises(LookupError):
        await store.merkle_nodes("nobody", [(0, 0)])
    assert set(await store.merkle_nodes("a", [(1, 2), (2, 0)])) == {(1, 2), (2, 0)}


async def test_every_commit_stores_a_signed_checkpoint_of_the_whole_log(
    store: EventStore, signer: Signer,
) -> None:
    assert await store.checkpoints("a") == []
    sizes = []
    for n in [1, 4, 11, 1, 16]:
        await fill(store, "a", n)
        last = await store.last_seq("a")
        sizes.append(last)
        (cp,) = await store.checkpoints("a")
        note = open_checkpoint(cp.note, signer.verifier())
        assert (note.origin, note.size, note.root) == (origin_for(DEPLOYMENT, "a"), last, cp.root)
        ids = merkle.root_node_ids(last)
        nodes = await store.merkle_nodes("a", ids)
        assert cp.root == merkle.root_hash(last, getter(nodes))
        assert await store.checkpoints("a", size=last) == [cp]
    # Older ones may be thinned out; those kept are of their size and verify.
    for size in sizes:
        for cp in await store.checkpoints("a", size=size):
            assert cp.size == size and open_checkpoint(cp.note, signer.verifier()).size == size
            assert cp.root == await signed_root(store, "a", size, signer)
    assert await store.checkpoints("a", size=2) == []  # no commit ended at 2
    assert await store.checkpoints("b") == []


async def test_proofs_from_the_nodes_verify_against_signed_checkpoints(
    store: EventStore, signer: Signer,
) -> None:
    await fill(store, "a", 13, 8)
    n = 21
    leaf = await leaves(store, "a", n)
    roots = {size: await signed_root(store, "a", size, signer) for size in range(n + 1)}
    assert roots[0] == merkle.EMPTY_ROOT
    assert roots[n] == (await store.checkpoints("a"))[0].root
    for size in [1, 2, 7, 8, 13, 16, 21]:
        for index in range(size):
            ids = merkle.inclusion_node_ids(index, size)
            nodes = await store.merkle_nodes("a", ids)
            path = merkle.inclusion_path(index, size, getter(nodes))
            assert merkle.verify_inclusion(leaf[index], index, size, path, roots[size])
    for first in range(n + 1):
        for second in range(first, n + 1):
            ids = merkle.consistency_node_ids(first, second)
            nodes = await store.merkle_nodes("a", ids)
            path = merkle.consistency_path(first, second, getter(nodes))
            assert merkle.verify_consistency(first, second, roots[first], roots[second], path)
    for size in [-1, n + 1]:
        with pytest.raises(InvalidRequest):
            await store.sign_checkpoint("a", size)


async def test_each_tenant_has_its_own_tree(store: EventStore, signer: Signer) -> None:
    await fill(store, "a", 5)
    before = await leaves(store, "a", 5)
    await fill(store, "b", 9)
    assert await leaves(store, "a", 5) == before
    (a,) = await store.checkpoints("a")
    (b,) = await store.checkpoints("b")
    assert (a.size, b.size) == (5, 9)
    assert open_checkpoint(b.note, signer.verifier()).origin == origin_for(DEPLOYMENT, "b")
    await assert_verified(store, "a", signer)
    await assert_verified(store, "b", signer)


async def test_a_store_without_a_signer_keeps_no_tree(backend: Backend, tmp_path: Path) -> None:
    store = backend.open(tmp_path, signer=None)
    try:
        await fill(store, "a", 3)
        assert await store.checkpoints("a") == []
        with pytest.raises(LookupError):
            await store.merkle_nodes("a", [(0, 0)])
        with pytest.raises(StoreUnavailable):
            await store.sign_checkpoint("a", 1)
    finally:
        await store.close()


# -- redaction ---------------------------------------------------------------------------


def full_event() -> dict[str, Any]:
    return ev("user.created", severity="high", outcome="success", category="auth",
              title="Created Alice Liddell", description="mail alice@example.org",
              subject={"ecosystem": "npm", "id": "alice"}, actor={"id": "admin"},
              context={"ip": "192.0.2.7"}, tags=["pii"], payload={"ssn": "078-05-1120"})


async def test_redact_blanks_the_content_and_records_it_in_the_log(
    backend: Backend, store: EventStore, signer: Signer, tmp_path: Path,
) -> None:
    e = full_event()
    await put(store, "a", e, ev())
    (leaf_before,) = await leaves(store, "a", 1)
    actor = {"type": "user", "id": "dpo"}
    stub = await store.redact("a", e["id"], "erasure request", actor=actor)
    assert stub is not None
    assert set(stub) == {*(k for k in redaction.KEEPS if k in e), "redacted"}
    assert all(stub[k] == e[k] for k in redaction.KEEPS if k in e and k != "seq")
    assert stub["seq"] == 1 and stub["redacted"]["reason"] == "erasure request"
    assert stub["redacted"]["by"] == 3  # the record is the next entry of the log
    assert await store.get("a", e["id"]) == stub

    record = (await everything(store, "a"))[2]
    assert redaction.is_record(record) and record["actor"] == actor
    detail = record["payload"]["redaction"]
    digest = redaction.Digest()
    digest.add(1, leaf_before, redaction.stub_bytes(stub))
    assert (detail["count"], detail["first_seq"], detail["last_seq"], detail["reason"],
            detail["digest"]) == (1, 1, 1, "erasure request", digest.hexdigest())
    assert record["subject"]["id"] == e["id"]

    # The leaf stays, so every proof and checkpoint still verifies ...
    assert (await leaves(store, "a", 1)) == [leaf_before]
    assert (await store.checkpoints("a"))[0].size == 3
    await assert_verified(store, "a", signer)
    # ... and no index finds the content any more; the kept fields still filter.
    assert await store.count("a", Text(("alice",))) == 0
    assert await store.count("a", Eq("subject.ecosystem", ("npm",))) == 0  # indexed path
    assert await store.count("a", Eq("context.ip", ("192.0.2.7",))) == 0  # not indexed
    assert await store.count("a", Eq("tags", ("pii",))) == 0
    assert await store.count("a", Eq("type", ("user.created",))) == 1
    (bucket,) = await store.aggregate("a", Eq("outcome", ("success",)),
                                      AggregateSpec(group_by="category"))
    assert [(r.key, r.count) for r in bucket.rows] == [("auth", 1), ("integrity", 1)]
    await store.close()
    if backend.audit is not None:
        assert backend.audit(tmp_path, signer.verifier()) == []


async def test_redacting_again_changes_nothing(store: EventStore) -> None:
    e = full_event()
    await put(store, "a", e)
    stub = await store.redact("a", e["id"], "first")
    again = await store.redact("a", e["id"], "second")
    assert again == stub
    assert await store.last_seq("a") == 2


async def test_redacting_what_is_not_there_writes_nothing(store: EventStore) -> None:
    e = full_event()
    await put(store, "a", e)
    (cp,) = await store.checkpoints("a")
    assert await store.redact("a", "evt_missing", "x") is None
    assert await store.redact("b", e["id"], "another tenant's id") is None
    assert await store.last_seq("a") == 1 and await store.last_seq("b") == 0
    assert await store.checkpoints("a") == [cp]
    assert (await store.get("a", e["id"]))["title"] == e["title"]  # type: ignore[index]


async def test_a_redaction_record_cannot_be_redacted(store: EventStore, signer: Signer) -> None:
    e = full_event()
    await put(store, "a", e)
    await store.redact("a", e["id"], "x")
    record = (await everything(store, "a"))[1]
    with pytest.raises(Conflict):
        await store.redact("a", record["id"], "hide the erasure")
    assert await store.get("a", record["id"]) == record
    assert await store.last_seq("a") == 2
    await assert_verified(store, "a", signer)


# -- purge -------------------------------------------------------------------------------


async def test_purge_redacts_older_events_in_chunks_each_with_its_record(
    backend: Backend, store: EventStore, signer: Signer, tmp_path: Path,
) -> None:
    store.PURGE_CHUNK = 4  # type: ignore[attr-defined]
    old = [ev(ts=T0 - i * HOUR, title=f"old {i}") for i in range(10)]
    before = T0 - HOUR // 2  # old[0] is at T0: newer than that
    new = [ev(ts=T0 + HOUR, title="new"), ev(ts=before, title="new")]  # not older: kept
    await put(store, "a", *old, *new)
    await put(store, "b", ev(ts=T0 - HOUR, title="old b"))
    await store.redact("a", old[3]["id"], "earlier")  # already a stub: not counted again
    last = await store.last_seq("a")

    assert await store.purge("a", before, "retention", actor={"type": "system"}) == 8
    events = await everything(store, "a")
    records = [e for e in events[last:] if redaction.is_record(e)]
    assert [r["payload"]["redaction"]["count"] for r in records] == [4, 4]
    assert all(r["payload"]["redaction"]["before"] == format_us(before) for r in records)
    stubs = [e for e in events if redaction.is_stub(e)]
    assert {s["id"] for s in stubs} == {e["id"] for e in old[1:]}
    for r in records:  # each stub names the record of its chunk
        detail = r["payload"]["redaction"]
        named = [s["seq"] for s in stubs if s["redacted"]["by"] == r["seq"]]
        assert (named[0], named[-1], len(named)) == (
            detail["first_seq"], detail["last_seq"], detail["count"])
    assert (await store.get("a", old[0]["id"]))["title"] == "old 0"  # type: ignore[index]
    for e in new:
        assert (await store.get("a", e["id"]))["title"] == "new"  # type: ignore[index]
    assert (await store.get("b", (await everything(store, "b"))[0]["id"]))["title"] == "old b"  # type: ignore[index]
    await assert_verified(store, "a", signer)

    # Nothing more to do: no new record. Records themselves are never purged.
    size = await store.last_seq("a")
    assert await store.purge("a", before, "retention") == 0
    assert await store.last_seq("a") == size
    assert await store.purge("a", T0 + 100 * 365 * 24 * HOUR, "everything") == 3
    assert all(redaction.is_record(e) for e in await everything(store, "a")
               if e["type"] == redaction.RECORD_TYPE)
    await assert_verified(store, "a", signer)
    await store.close()
    if backend.audit is not None:
        assert backend.audit(tmp_path, signer.verifier()) == []


async def test_appends_go_on_between_purge_chunks(store: EventStore) -> None:
    """A purge commits chunk by chunk, so an append made meanwhile is acknowledged before
    the purge ends (it never waits for the whole purge)."""
    store.PURGE_CHUNK = 2  # type: ignore[attr-defined]
    await put(store, "a", *[ev(ts=T0 - i) for i in range(40)])
    purge = asyncio.create_task(store.purge("a", T0 + 1, "retention"))
    await store.feed.wait("a", 40)  # type: ignore[attr-defined]  # the first chunk committed
    (seq,) = await put(store, "a", ev(ts=T0 + HOUR))
    assert await purge == 40
    records = [e["seq"] for e in await everything(store, "a") if redaction.is_record(e)]
    assert len(records) == 20
    assert records[0] < seq < records[-1]
