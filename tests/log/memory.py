"""``MemoryLogStorage``: a whole ``LogStorage`` in a few dicts, for the backend-neutral tests.

It is an implementation of the interface (``log/storage.py``), not a stand-in for the
SQLite one: transactions copy the state on ``begin`` and publish it on ``commit``,
savepoints are snapshots, and everything the interface promises is asserted as it is used
(one transaction at a time, reads and writes only inside one, consecutive seqs, nodes that
exist). A ``Database`` is the shared log; each ``MemoryLogStorage`` is one writer's
connection to it (two of them are two writers taking turns, as the server and a CLI do).
``committed`` is what a reader sees.

Two hooks make the faults the tests need: ``fail`` runs before every write (raise from it
to make that write fail), ``gate`` before every ``begin`` (block in it to hold the writer).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

from auditstream.log.prepared import PathSegments, segments
from auditstream.log.storage import Entry, LogStorage


@dataclass
class State:
    #: tenant → seq → (id, body, leaf)
    events: dict[str, dict[int, tuple[str, bytes, bytes | None]]] = field(default_factory=dict)
    nodes: dict[tuple[str, int, int], bytes] = field(default_factory=dict)
    checkpoints: dict[tuple[str, int], tuple[bytes, str]] = field(default_factory=dict)
    checkpoint_times: dict[tuple[str, int], int] = field(default_factory=dict)
    idempotency: dict[tuple[str, str], tuple[str, str, int, bytes | None]] = field(
        default_factory=dict)

    def last_seq(self, tenant: str) -> int:
        return max(self.events.get(tenant, {}), default=0)


@dataclass
class Database:
    committed: State = field(default_factory=State)
    commits: int = 0  # by every writer; it is also the version a writer compares


class MemoryLogStorage(LogStorage):
    def __init__(self, db: Database | None = None, paths: tuple[str, ...] = ()) -> None:
        self.db = db or Database()
        self.path_segments: PathSegments = segments(list(paths))
        self.fail: Callable[[str, str], None] = lambda what, tenant: None
        self.gate: Callable[[], None] = lambda: None
        self._txn: State | None = None
        self._saved: list[State] = []
        self._seen = self.db.commits

    @property
    def committed(self) -> State:
        return self.db.committed

    @property
    def commits(self) -> int:
        return self.db.commits

    # -- transactions -------------------------------------------------------------------

    def begin(self) -> bool:
        self.gate()
        assert self._txn is None, "begin inside a transaction"
        self._txn = copy.deepcopy(self.committed)
        changed = self.db.commits != self._seen
        self._seen = self.db.commits
        return changed

    def commit(self) -> None:
        assert self._txn is not None and not self._saved, "commit outside a transaction"
        self.db.committed = self._txn
        self._txn = None
        self.db.commits += 1
        self._seen = self.db.commits

    def rollback(self) -> None:
        self._txn = None
        self._saved.clear()

    def savepoint(self) -> None:
        self._saved.append(copy.deepcopy(self.txn))

    def release(self) -> None:
        self._saved.pop()

    def rollback_to(self) -> None:
        self._txn = self._saved.pop()

    @property
    def txn(self) -> State:
        assert self._txn is not None, "used outside a transaction"
        return self._txn

    # -- reads --------------------------------------------------------------------------

    def last_seq(self, tenant: str) -> int:
        return self.txn.last_seq(tenant)

    def node(self, tenant: str, level: int, index: int) -> bytes:
        if level == 0:
            entry = self.txn.events.get(tenant, {}).get(index + 1)
            if entry is None or entry[2] is None:
                raise LookupError((tenant, level, index))
            return entry[2]
        try:
            return self.txn.nodes[tenant, level, index]
        except KeyError:
            raise LookupError((tenant, level, index)) from None

    def bodies_by_id(self, tenant: str, ids: list[str]) -> dict[str, tuple[int, bytes]]:
        wanted = set(ids)
        return {eid: (seq, body) for seq, (eid, body, _) in self.txn.events.get(tenant, {}).items()
                if eid in wanted}

    def entries(
        self, tenant: str, *, event_id: str | None = None, seqs: tuple[int, ...] = (),
    ) -> list[tuple[int, bytes, bytes | None]]:
        log = self.txn.events.get(tenant, {})
        return [(seq, body, leaf) for seq, (eid, body, leaf) in sorted(log.items())
                if (eid == event_id if event_id is not None else seq in seqs)]

    def idempotency(self, tenant: str, key: str) -> tuple[str, str, int] | None:
        stored = self.txn.idempotency.get((tenant, key))
        return stored[:3] if stored else None

    # -- writes -------------------------------------------------------------------------

    def append(self, tenant: str, entries: list[Entry]) -> None:
        self.fail("append", tenant)
        log = self.txn.events.setdefault(tenant, {})
        expected = self.txn.last_seq(tenant) + 1
        for ev, seq, body, leaf in entries:
            assert seq == expected, f"{tenant}: seq {seq} after {expected - 1}"
            assert ev.body(seq) == body
            log[seq] = (ev.id, body, leaf)
            expected += 1

    def put_nodes(self, tenant: str, nodes: list[tuple[int, int, bytes]]) -> None:
        self.fail("put_nodes", tenant)
        for level, index, h in nodes:
            assert level > 0 and (tenant, level, index) not in self.txn.nodes
            self.txn.nodes[tenant, level, index] = h

    def put_checkpoint(self, tenant: str, size: int, root: bytes, note: str,
                       created_us: int) -> None:
        self.fail("put_checkpoint", tenant)
        assert size == self.txn.last_seq(tenant)
        self.txn.checkpoints[tenant, size] = (root, note)
        self.txn.checkpoint_times[tenant, size] = created_us

    def put_idempotency(self, tenant: str, key: str, request_hash: str, answer: str,
                        created: int, sig: bytes | None) -> None:
        self.fail("put_idempotency", tenant)
        self.txn.idempotency[tenant, key] = (request_hash, answer, created, sig)

    def expire_idempotency(self, before_us: int) -> int:
        gone = [k for k, v in self.txn.idempotency.items() if v[2] < before_us]
        for k in gone:
            del self.txn.idempotency[k]
        return len(gone)

    def thin_checkpoints(self) -> int:
        cps = self.txn.checkpoints
        latest = {t: max(s for u, s in cps if u == t) for t, _ in cps}
        hourly: dict[tuple[str, int], int] = {}
        for (t, s), created in self.txn.checkpoint_times.items():
            hour = created // 3_600_000_000
            hourly[t, hour] = max(hourly.get((t, hour), 0), s)
        keep = {(t, s) for t, s in cps if s == latest[t] or s & (s - 1) == 0} | {
            (t, s) for (t, _h), s in hourly.items()}
        gone = [k for k in cps if k not in keep]
        for k in gone:
            del cps[k]
            self.txn.checkpoint_times.pop(k, None)
        return len(gone)

    def replace_content(self, tenant: str, seq: int, stub: bytes) -> None:
        self.fail("replace_content", tenant)
        eid, _, leaf = self.txn.events[tenant][seq]
        self.txn.events[tenant][seq] = (eid, stub, leaf)
