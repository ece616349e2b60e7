"""``Sequencer``: apply a group of requests to a tenant log in one transaction.

Backend-neutral: it talks to storage through ``LogStorage`` only. What it guarantees:

* **Gap-free seqs.** Each tenant's entries get 1, 2, 3 … in commit order, also across
  restarts (the next seq comes from storage whenever anything else wrote).
* **Atomic requests.** A request is applied whole or not at all: requests that can be
  refused (client ids, idempotency keys, redactions) run inside a savepoint, so one
  refused request leaves its neighbours in the group untouched. If the group fails for a
  reason no savepoint caught, each request is retried in a transaction of its own, so a
  poisonous request fails alone.
* **Idempotency.** A client id that exists with the same content (``prepared.content_key``)
  answers its stored seq and writes nothing; other content is a ``Conflict``. A repeated
  ``Idempotency-Key`` answers the stored (signed) answer; another request under the same
  key is a ``Conflict``.
* **Tamper evidence** (with a signer). Each entry's leaf is the RFC 9162 hash of its
  stored bytes; the subtree hashes it completes are stored; each commit signs one
  checkpoint per tenant it touched; redactions append a redaction record.
* **Notices.** ``apply`` returns, with the replies, one ``CommitNotice`` per tenant the
  commit touched, to publish only once the commit is durable.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import orjson

from ..errors import Conflict, ProblemError, StoreError
from ..integrity import merkle, redaction
from ..integrity.canonical import canonical_bytes
from ..integrity.checkpoint import Signer, format_checkpoint, sign_note
from ..integrity.origin import origin_for
from ..model.ids import new_event_id
from ..model.times import format_us
from .prepared import content_key, prepare
from .protocol import (
    Appended,
    AppendRequest,
    CheckpointRequest,
    CommitNotice,
    ErrorInfo,
    RedactRequest,
    Reply,
    Request,
)
from .storage import Entry, LogStorage

log = logging.getLogger("auditstream")


def idempotency_message(tenant: str, key: str, request_hash: str, answer: str,
                        created: int) -> bytes:
    """What the signature of a stored Idempotency-Key answer covers. A retry is answered
    from it, so it must not be editable by whoever can write the storage: repointed at
    other events, made to conflict, or kept past its expiry."""
    return b"auditstream idempotency v1\n" + canonical_bytes(
        [tenant, key, request_hash, answer, created])


class Sequencer:
    #: Housekeeping (expired Idempotency-Key answers, thinning checkpoints) runs after
    #: this many commits, or this long after the last run, whichever comes first.
    HOUSEKEEPING_COMMITS = 256
    HOUSEKEEPING_US = 60_000_000

    def __init__(
        self, storage: LogStorage, *, signer: Signer | None, deployment: str,
        idempotency_us: int, clock: Callable[[], int] = lambda: time.time_ns() // 1000,
    ):
        self.storage = storage
        self.signer = signer
        self.deployment = deployment
        self.idempotency_us = idempotency_us
        self.clock = clock
        self._next: dict[str, int] = {}
        self._trees: dict[str, merkle.CompactRange] = {}
        self._commits_since_housekeeping = 0
        self._housekept_at = clock()

    # -- the group ----------------------------------------------------------------------

    def apply(self, group: list[Request]) -> tuple[list[Reply], list[CommitNotice]]:
        """Replies in request order, and the notices to publish (the commit is durable)."""
        saved_next = dict(self._next)
        try:
            replies, touched, written = self._transaction(group)
        except Exception as exc:  # nothing of the group was written
            self._abandon(saved_next)
            if len(group) > 1:
                # Find the request that failed by giving each its own transaction.
                replies, notices = [], []
                for request in group:
                    r, n = self.apply([request])
                    replies += r
                    notices += n
                return replies, notices
            if not isinstance(exc, ProblemError | StoreError):
                log.exception("append failed", exc_info=exc)
            return [Reply(error=ErrorInfo.of(exc))], []
        notices = [CommitNotice(t, self._next[t] - 1) for t in touched]
        try:
            self.storage.after_commit(written)
            self._commits_since_housekeeping += 1
            if self._commits_since_housekeeping >= self.HOUSEKEEPING_COMMITS \
                    or self.clock() - self._housekept_at >= self.HOUSEKEEPING_US:
                self.housekeeping()
        except Exception:  # noqa: BLE001 (committed already: housekeeping can wait)
            log.warning("housekeeping after a commit failed", exc_info=True)
            self._abandon(dict(self._next))
        return replies, notices

    def housekeeping(self) -> tuple[int, int]:
        """Expire Idempotency-Key answers and thin checkpoints, in a transaction of its own;
        returns how many of each went."""
        now = self.clock()
        self._commits_since_housekeeping, self._housekept_at = 0, now
        if self.storage.begin():
            self._next.clear()
            self._trees.clear()
        expired = self.storage.expire_idempotency(now - self.idempotency_us)
        thinned = self.storage.thin_checkpoints()
        self.storage.commit()
        return expired, thinned

    def _abandon(self, saved_next: dict[str, int]) -> None:
        try:
            self.storage.rollback()
        except Exception:  # noqa: BLE001 (the transaction may be gone already)
            log.warning("rollback failed", exc_info=True)
        self._next = saved_next
        self._trees.clear()

    def _transaction(self, group: list[Request]) -> tuple[list[Reply], list[str], int]:
        storage = self.storage
        if storage.begin():
            self._next.clear()
            self._trees.clear()
        replies: list[Reply] = []
        touched: dict[str, None] = {}
        written = 0
        for request in group:
            if isinstance(request, CheckpointRequest):
                replies.append(self._sign(request))
                continue
            if isinstance(request, AppendRequest) and not request.client_ids \
                    and request.idempotency_key is None:
                # Nothing here can refuse it (it was validated and prepared): no savepoint.
                value: Any = self._append(request)
                n = len(request.events)
            else:
                storage.savepoint()
                saved_next, saved_tree = self._next.get(request.tenant), \
                    self._trees.get(request.tenant)
                saved_tree = saved_tree.copy() if saved_tree is not None else None
                try:
                    if isinstance(request, AppendRequest):
                        value = self._append(request)
                        n = sum(1 for a in value if a.created)
                    else:
                        value, n = self._redact(request)
                    storage.release()
                except ProblemError as exc:
                    storage.rollback_to()
                    self._restore(request.tenant, saved_next, saved_tree)
                    replies.append(Reply(error=ErrorInfo.of(exc)))
                    continue
            replies.append(Reply(value=value))
            written += n
            if n:
                touched[request.tenant] = None
        if self.signer is not None:
            for tenant in touched:
                self._checkpoint(tenant)
        storage.commit()
        return replies, list(touched), written

    def _restore(self, tenant: str, next_seq: int | None,
                 tree: merkle.CompactRange | None) -> None:
        self._next.pop(tenant, None)
        self._trees.pop(tenant, None)
        if next_seq is not None:
            self._next[tenant] = next_seq
        if tree is not None:
            self._trees[tenant] = tree

    # -- appends ------------------------------------------------------------------------

    def _seq_after(self, tenant: str) -> int:
        seq = self._next.get(tenant)
        if seq is None:
            seq = self._next[tenant] = self.storage.last_seq(tenant) + 1
        return seq

    def _tree(self, tenant: str, size: int) -> merkle.CompactRange:
        tree = self._trees.get(tenant)
        if tree is None or tree.size != size:
            tree = merkle.CompactRange.from_nodes(
                size, lambda level, index: self.storage.node(tenant, level, index))
            self._trees[tenant] = tree
        return tree

    def _append(self, request: AppendRequest) -> list[Appended]:
        tenant = request.tenant
        now = self.clock()
        key = request.idempotency_key
        if key is not None:
            stored = self.storage.idempotency(tenant, key)
            if stored is not None and stored[2] >= now - self.idempotency_us:
                if stored[0] != (request.request_hash or ""):
                    raise Conflict(
                        "Idempotency-Key was already used for a different request",
                        errors=[{"field": "Idempotency-Key", "reason": "reused with another body"}],
                    )
                return [Appended(i, s, False) for i, s in orjson.loads(stored[1])]
        replay = self._replays(request) if request.client_ids else {}
        result = self._store(tenant, request, replay)
        if key is not None:
            answer = orjson.dumps([(a.id, a.seq) for a in result]).decode()
            request_hash = request.request_hash or ""
            sig = (self.signer.sign(idempotency_message(tenant, key, request_hash, answer, now))
                   if self.signer is not None else None)
            self.storage.put_idempotency(tenant, key, request_hash, answer, now, sig)
        return result

    def _store(self, tenant: str, request: AppendRequest,
               replay: dict[int, Appended]) -> list[Appended]:
        """Give the events (but the replays) the next seqs and store them."""
        seq = first = self._seq_after(tenant)
        signed = self.signer is not None
        entries: list[Entry] = []
        result: list[Appended] = []
        for i, ev in enumerate(request.events):
            if i in replay:
                result.append(replay[i])
                continue
            body = ev.body(seq)
            entries.append((ev, seq, body, merkle.leaf_hash(body) if signed else None))
            result.append(Appended(ev.id, seq, True))
            seq += 1
        if entries:
            self.storage.append(tenant, entries)
            if signed:
                tree = self._tree(tenant, first - 1)
                nodes = tree.extend([e[3] for e in entries])  # type: ignore[misc]
                self.storage.put_nodes(tenant, [n for n in nodes if n[0] > 0])
            self._next[tenant] = seq
        # In-request duplicates point at their first occurrence.
        return [result[-a.seq - 1] if a.seq < 0 else a for a in result]

    def _replays(self, request: AppendRequest) -> dict[int, Appended]:
        """Client-chosen ids that already exist (or repeat within the request)."""
        events = request.events
        keys = {i: events[i].key for i in sorted(request.client_ids)}
        found = self.storage.bodies_by_id(request.tenant, [events[i].id for i in keys])
        replay: dict[int, Appended] = {}
        first_in_request: dict[str, int] = {}
        conflicts = []
        for i, key in keys.items():
            eid = events[i].id
            if eid in found:
                seq, body = found[eid]
                if content_key(orjson.loads(body)) == key:
                    replay[i] = Appended(eid, seq, False)
                else:
                    conflicts.append({"index": i, "field": "id",
                                      "reason": f"event {eid} exists with different content"})
            elif eid in first_in_request:
                j = first_in_request[eid]
                if keys[j] != key:
                    conflicts.append({"index": i, "field": "id",
                                      "reason": f"id {eid} repeats index {j} with other content"})
                else:
                    replay[i] = Appended(eid, -j - 1, False)  # resolved in _store
            else:
                first_in_request[eid] = i
        if conflicts:
            raise Conflict("some events reuse an existing id with different content",
                           errors=conflicts)
        return replay

    # -- redactions ---------------------------------------------------------------------

    def _redact(self, request: RedactRequest) -> tuple[dict[str, Any] | None, int]:
        tenant = request.tenant
        rows = self.storage.entries(tenant, event_id=request.event_id, seqs=request.seqs)
        at = format_us(self.clock())
        by = self._seq_after(tenant)
        digest = redaction.Digest()
        stub: dict[str, Any] | None = None
        for seq, body, leaf in rows:
            ev = orjson.loads(body)
            if redaction.is_record(ev):
                if request.event_id is not None:
                    raise Conflict("a redaction record cannot be redacted: it is what proves "
                                   "the log's erasures")
                continue
            if redaction.is_stub(ev):
                stub = ev  # already redacted: asking again changes nothing
                continue
            stub = redaction.stub_of(ev, at=at, reason=request.reason, by=by)
            raw = redaction.stub_bytes(stub)
            self.storage.replace_content(tenant, seq, raw)
            digest.add(seq, leaf or b"", raw)
        result = stub if request.event_id is not None else {"purged": digest.count}
        if not digest.count:
            return result, 0
        rec = redaction.record(
            event_id=new_event_id(), tenant=tenant, at=at, actor=request.actor,
            reason=request.reason, digest=digest, subject_id=request.event_id,
            before=request.before)
        prepared = prepare([rec], canonical=self.signer is not None,
                           path_segments=self.storage.path_segments)
        self._store(tenant, AppendRequest(tenant, tuple(prepared)), {})
        return result, 1

    # -- checkpoints --------------------------------------------------------------------

    def _sign(self, request: CheckpointRequest) -> Reply:
        """A checkpoint at any size up to the tenant's latest (proofs against older trees)."""
        if self.signer is None:
            return Reply(error=ErrorInfo("StoreUnavailable", "this log is not signed"))
        size = request.size
        if not 0 <= size <= self._seq_after(request.tenant) - 1:
            return Reply(error=ErrorInfo("InvalidRequest", f"the log has no size {size}"))
        tree = merkle.CompactRange.from_nodes(
            size, lambda level, index: self.storage.node(request.tenant, level, index))
        note = sign_note(format_checkpoint(origin_for(self.deployment, request.tenant), size,
                                           tree.root()), self.signer)
        return Reply(value=note)

    def _checkpoint(self, tenant: str) -> None:
        assert self.signer is not None
        tree = self._tree(tenant, self._next[tenant] - 1)
        root = tree.root()
        note = sign_note(
            format_checkpoint(origin_for(self.deployment, tenant), tree.size, root),
            self.signer)
        self.storage.put_checkpoint(tenant, tree.size, root, note, self.clock())


__all__ = ["Sequencer", "idempotency_message"]
