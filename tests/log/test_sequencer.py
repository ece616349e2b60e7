"""The backend-neutral ``Sequencer`` (log/sequencer.py) over an in-memory ``LogStorage``:
gap-free seqs, atomic requests (savepoints), failure isolation within a group, idempotency,
redaction records, checkpoints and the notices of each commit."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from auditstream.errors import Conflict, InvalidRequest, StoreUnavailable
from auditstream.integrity import merkle, redaction
from auditstream.integrity.checkpoint import Signer, generate_signer, open_checkpoint
from auditstream.integrity.origin import origin_for
from auditstream.log.prepared import prepare
from auditstream.log.protocol import (
    Appended,
    AppendRequest,
    CheckpointRequest,
    CommitNotice,
    RedactRequest,
    Reply,
    Request,
)
from auditstream.log.sequencer import Sequencer, idempotency_message
from auditstream.model.ids import new_event_id
from auditstream.model.times import format_us

from .memory import MemoryLogStorage

DEPLOYMENT = "test.local"
HOUR = 3_600_000_000
T0 = 1_780_000_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def event(tenant: str, eid: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"id": eid or new_event_id(), "tenant": tenant, "timestamp": format_us(T0),
            "received_at": format_us(T0 + 1), "type": "x", "severity": "info", **fields}


def append(tenant: str, *events: dict[str, Any], client: frozenset[int] = frozenset(),
           key: str | None = None, request_hash: str | None = None) -> AppendRequest:
    evs = list(events) or [event(tenant)]
    prepared = prepare(evs, canonical=True, path_segments=[], client_ids=client)
    return AppendRequest(tenant, tuple(prepared), client, key, request_hash)


@pytest.fixture
def signer() -> Signer:
    return generate_signer(DEPLOYMENT)


@pytest.fixture
def storage() -> MemoryLogStorage:
    return MemoryLogStorage()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def seq(storage: MemoryLogStorage, signer: Signer, clock: Clock) -> Sequencer:
    return Sequencer(storage, signer=signer, deployment=DEPLOYMENT, idempotency_us=HOUR,
                     clock=clock)


def values(replies: list[Reply]) -> list[Any]:
    return [r.result() for r in replies]


def seqs_of(reply: Reply) -> list[int]:
    return [a.seq for a in reply.result()]


def committed_seqs(storage: MemoryLogStorage, tenant: str) -> list[int]:
    return sorted(storage.committed.events.get(tenant, {}))


def check_tree(storage: MemoryLogStorage, tenant: str, signer: Signer) -> None:
    """The latest stored checkpoint is signed, of the whole log, and its root is the tree
    of the stored leaves; every stored interior node is the one the leaves produce."""
    log = storage.committed.events[tenant]
    leaves = [log[s][2] for s in sorted(log)]
    assert all(leaf is not None for leaf in leaves)
    size = len(leaves)
    root, note = storage.committed.checkpoints[tenant, size]
    cp = open_checkpoint(note, signer.verifier())
    assert (cp.origin, cp.size, cp.root) == (origin_for(DEPLOYMENT, tenant), size, root)
    tree = merkle.CompactRange()
    produced = {}
    for leaf in leaves:
        produced.update({(lvl, idx): h for lvl, idx, h in tree.append(leaf)})  # type: ignore[arg-type]
    assert tree.root() == root
    stored = {(lvl, idx): h for (t, lvl, idx), h in storage.committed.nodes.items() if t == tenant}
    assert stored == {k: v for k, v in produced.items() if k[0] > 0}
    for _, body, leaf in log.values():  # a live entry's leaf hashes its stored bytes
        if not redaction.is_stub(orjson.loads(body)):
            assert merkle.leaf_hash(body) == leaf


# -- sequencing ------------------------------------------------------------------------


def test_seqs_are_gap_free_per_tenant_across_groups(
    seq: Sequencer, storage: MemoryLogStorage, signer: Signer,
) -> None:
    replies, notices = seq.apply([append("a", event("a"), event("a")), append("b"),
                                  append("a")])
    assert [seqs_of(r) for r in replies] == [[1, 2], [1], [3]]
    assert notices == [CommitNotice("a", 3), CommitNotice("b", 1)]
    assert storage.commits == 1  # one group, one transaction
    replies, notices = seq.apply([append("b", event("b"), event("b"))])
    assert seqs_of(replies[0]) == [2, 3] and notices == [CommitNotice("b", 3)]
    assert committed_seqs(storage, "a") == [1, 2, 3]
    for tenant in "ab":
        check_tree(storage, tenant, signer)


def test_stored_bodies_carry_their_seq(seq: Sequencer, storage: MemoryLogStorage) -> None:
    seq.apply([append("a", event("a"), event("a"))])
    for s, (_, body, _) in storage.committed.events["a"].items():
        assert orjson.loads(body)["seq"] == s


def test_a_new_sequencer_goes_on_where_the_log_ends(
    storage: MemoryLogStorage, signer: Signer, clock: Clock,
) -> None:
    first = Sequencer(storage, signer=signer, deployment=DEPLOYMENT, idempotency_us=HOUR,
                      clock=clock)
    first.apply([append("a", event("a"), event("a"), event("a"))])
    again = Sequencer(storage, signer=signer, deployment=DEPLOYMENT, idempotency_us=HOUR,
                      clock=clock)
    replies, _ = again.apply([append("a")])
    assert seqs_of(replies[0]) == [4]
    check_tree(storage, "a", signer)


def test_another_writer_in_between_is_noticed(
    storage: MemoryLogStorage, signer: Signer, clock: Clock,
) -> None:
    """Two writers taking turns on one log (the server's, and a CLI's): each re-reads what
    it cached (next seq, tree) when the other wrote, so seqs stay gap-free and the tree
    right."""
    one = Sequencer(storage, signer=signer, deployment=DEPLOYMENT, idempotency_us=HOUR,
                    clock=clock)
    other = Sequencer(MemoryLogStorage(storage.db), signer=signer, deployment=DEPLOYMENT,
                      idempotency_us=HOUR, clock=clock)
    got = []
    for writer, n in [(one, 3), (other, 2), (one, 1), (one, 4), (other, 5)]:
        replies, _ = writer.apply([append("a", *[event("a") for _ in range(n)])])
        got += seqs_of(replies[0])
    assert got == list(range(1, 16))
    check_tree(storage, "a", signer)


# -- atomic requests and isolation ------------------------------------------------------


def test_a_refused_request_is_rolled_back_alone(
    seq: Sequencer, storage: MemoryLogStorage, signer: Signer,
) -> None:
    seq.apply([append("a", event("a", "evt_taken", title="one"), client=frozenset({0}))])
    clash = append("a", event("a"), event("a", "evt_taken", title="two"), client=frozenset({1}))
    replies, notices = seq.apply([append("a"), clash, append("a"), append("b")])
    assert seqs_of(replies[0]) == [2]
    assert replies[1].error is not None and replies[1].error.kind == "Conflict"
    with pytest.raises(Conflict):
        replies[1].result()
    assert seqs_of(replies[2]) == [3]  # no seq was burnt by the refused request
    assert seqs_of(replies[3]) == [1]
    assert notices == [CommitNotice("a", 3), CommitNotice("b", 1)]
    assert committed_seqs(storage, "a") == [1, 2, 3]
    check_tree(storage, "a", signer)


def test_a_poisonous_request_fails_alone(
    seq: Sequencer, storage: MemoryLogStorage, signer: Signer,
) -> None:
    """A failure no savepoint catches (the storage raising) fails the whole group; each
    request is then tried in a transaction of its own, so only the poisonous one fails."""
    def fail(what: str, tenant: str) -> None:
        if what == "append" and tenant == "poison":
            raise RuntimeError("disk says no")

    storage.fail = fail
    group: list[Request] = [append("a"), append("poison"), append("b"), append("a")]
    replies, notices = seq.apply(group)
    assert seqs_of(replies[0]) == [1] and seqs_of(replies[3]) == [2]
    assert seqs_of(replies[2]) == [1]
    assert replies[1].error is not None and replies[1].error.kind == "StoreError"
    assert notices == [CommitNotice("a", 1), CommitNotice("b", 1), CommitNotice("a", 2)]
    assert "poison" not in storage.committed.events
    assert committed_seqs(storage, "a") == [1, 2]
    check_tree(storage, "a", signer)
    storage.fail = lambda what, tenant: None
    assert seqs_of(seq.apply([append("poison")])[0][0]) == [1]  # nothing of it was kept


def test_a_failed_checkpoint_signature_fails_its_tenant_alone(
    storage: MemoryLogStorage, signer: Signer, clock: Clock,
) -> None:
    class Poisoned(Signer):
        def sign(self, message: bytes) -> bytes:
            if b"/poison\n" in message:
                raise RuntimeError("HSM unavailable")
            return super().sign(message)

    poisoned = Poisoned(signer.name, signer._seed)  # noqa: SLF001 (same key, one fault)
    seq = Sequencer(storage, signer=poisoned, deployment=DEPLOYMENT, idempotency_us=HOUR,
                    clock=clock)
    replies, notices = seq.apply([append("a"), append("poison"), append("a")])
    assert [r.error is None for r in replies] == [True, False, True]
    assert [n.tenant for n in notices] == ["a", "a"]
    check_tree(storage, "a", signer)


# -- idempotency -----------------------------------------------------------------------


def test_client_ids_replay_and_conflict(seq: Sequencer, storage: MemoryLogStorage) -> None:
    e = event("a", "evt_c", title="one")
    seq.apply([append("a", dict(e), client=frozenset({0}))])
    replies, notices = seq.apply([append("a", dict(e, received_at=format_us(T0 + HOUR)),
                                         client=frozenset({0}))])
    assert replies[0].result() == [Appended("evt_c", 1, False)]
    assert notices == []  # nothing was written: nothing to tell
    replies, _ = seq.apply([append("a", dict(e, title="two"), client=frozenset({0}))])
    assert replies[0].error is not None
    assert replies[0].error.errors == [
        {"index": 0, "field": "id", "reason": "event evt_c exists with different content"}]
    assert committed_seqs(storage, "a") == [1]


def test_a_client_id_sent_twice_in_one_group_is_stored_once(
    seq: Sequencer, storage: MemoryLogStorage,
) -> None:
    """The second request of the group reads what the first wrote in the same transaction
    (storage reads see the transaction's own writes)."""
    e = event("a", "evt_twice")
    replies, notices = seq.apply([append("a", dict(e), client=frozenset({0})),
                                  append("a", dict(e), client=frozenset({0})),
                                  append("a", key="k", request_hash="h"),
                                  append("a", key="k", request_hash="h")])
    assert [r.result()[0] for r in replies[:2]] == [Appended("evt_twice", 1, True),
                                                    Appended("evt_twice", 1, False)]
    assert seqs_of(replies[2]) == seqs_of(replies[3]) == [2]
    assert notices == [CommitNotice("a", 2)]
    assert committed_seqs(storage, "a") == [1, 2]


def test_idempotency_key_answers_are_signed_and_expire(
    seq: Sequencer, storage: MemoryLogStorage, signer: Signer, clock: Clock,
) -> None:
    first = seq.apply([append("a", key="k", request_hash="h")])[0][0].result()
    request_hash, answer, created, sig = storage.committed.idempotency["a", "k"]
    assert (request_hash, created) == ("h", T0)
    assert sig is not None and signer.verifier().verify(
        idempotency_message("a", "k", "h", answer, created), sig)
    clock.now = T0 + HOUR  # still within the window
    again = seq.apply([append("a", key="k", request_hash="h")])[0][0].result()
    assert again == [Appended(a.id, a.seq, False) for a in first]
    assert seq.apply([append("a", key="k", request_hash="x")])[0][0].error is not None
    clock.now = T0 + HOUR + 1  # expired: the key is free again
    later = seq.apply([append("a", key="k", request_hash="x")])[0][0].result()
    assert [a.seq for a in later] == [2] and later[0].created


# -- redaction -------------------------------------------------------------------------


def test_redaction_blanks_content_and_appends_a_record(
    seq: Sequencer, storage: MemoryLogStorage, signer: Signer, clock: Clock,
) -> None:
    e = event("a", title="secret", actor={"id": "alice"})
    seq.apply([append("a", e, event("a"))])
    _, _, leaf = storage.committed.events["a"][1]
    actor = {"type": "user", "id": "dpo"}
    replies, notices = seq.apply([RedactRequest("a", "gdpr", actor, event_id=e["id"])])
    stub = replies[0].result()
    assert stub["redacted"] == {"at": format_us(T0), "reason": "gdpr", "by": 3}
    assert "title" not in stub and "actor" not in stub
    assert notices == [CommitNotice("a", 3)]
    _, body, kept_leaf = storage.committed.events["a"][1]
    assert kept_leaf == leaf and body == redaction.stub_bytes(stub)
    record = orjson.loads(storage.committed.events["a"][3][1])
    assert redaction.is_record(record) and record["actor"] == actor
    digest = redaction.Digest()
    digest.add(1, leaf, body)  # type: ignore[arg-type]
    assert record["payload"]["redaction"]["digest"] == digest.hexdigest()
    check_tree(storage, "a", signer)

    again, notices = seq.apply([RedactRequest("a", "again", actor, event_id=e["id"])])
    assert again[0].result() == stub and notices == []
    missing, notices = seq.apply([RedactRequest("a", "x", actor, event_id="evt_none")])
    assert missing[0].result() is None and notices == []
    refused, _ = seq.apply([RedactRequest("a", "x", actor, event_id=record["id"])])
    assert refused[0].error is not None and refused[0].error.kind == "Conflict"
    assert committed_seqs(storage, "a") == [1, 2, 3]


def test_a_purge_chunk_is_one_record(
    seq: Sequencer, storage: MemoryLogStorage, signer: Signer,
) -> None:
    seq.apply([append("a", *[event("a", title=f"t{i}") for i in range(6)])])
    chunk = RedactRequest("a", "retention", {"type": "system"}, seqs=(1, 2, 4),
                          before=format_us(T0))
    replies, notices = seq.apply([chunk])
    assert replies[0].result() == {"purged": 3}
    assert notices == [CommitNotice("a", 7)]
    record = orjson.loads(storage.committed.events["a"][7][1])
    detail = record["payload"]["redaction"]
    assert (detail["count"], detail["first_seq"], detail["last_seq"], detail["before"]) == (
        3, 1, 4, format_us(T0))
    # The same chunk again (and the record itself) redacts nothing: no record, no notice.
    replies, notices = seq.apply([RedactRequest("a", "retention", {"type": "system"},
                                                seqs=(1, 2, 4, 7))])
    assert replies[0].result() == {"purged": 0} and notices == []
    check_tree(storage, "a", signer)


# -- checkpoints and unsigned logs -------------------------------------------------------


def test_checkpoints_of_older_sizes(seq: Sequencer, storage: MemoryLogStorage,
                                    signer: Signer) -> None:
    roots = {}
    for _ in range(6):
        seq.apply([append("a")])
        size = max(storage.committed.events["a"])
        roots[size] = storage.committed.checkpoints["a", size][0]
    replies, notices = seq.apply([CheckpointRequest("a", s) for s in [0, 1, 4, 6, 7, -1]])
    assert notices == []  # signing writes nothing
    notes = [r.result() if r.error is None else r.error.kind for r in replies]
    assert notes[4:] == ["InvalidRequest", "InvalidRequest"]
    for size, note in zip([0, 1, 4, 6], notes[:4], strict=True):
        cp = open_checkpoint(note, signer.verifier())
        assert cp.size == size
        assert cp.root == (merkle.EMPTY_ROOT if size == 0 else roots[size])
    with pytest.raises(InvalidRequest):
        replies[4].result()


def test_an_unsigned_log_has_no_tree(storage: MemoryLogStorage, clock: Clock) -> None:
    seq = Sequencer(storage, signer=None, deployment=DEPLOYMENT, idempotency_us=HOUR,
                    clock=clock)
    replies, notices = seq.apply([append("a", event("a"), event("a")), CheckpointRequest("a", 1)])
    assert seqs_of(replies[0]) == [1, 2] and notices == [CommitNotice("a", 2)]
    with pytest.raises(StoreUnavailable):
        replies[1].result()
    assert all(leaf is None for _, _, leaf in storage.committed.events["a"].values())
    assert storage.committed.nodes == {} and storage.committed.checkpoints == {}
