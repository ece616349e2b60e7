"""``LogStorage``: what the sequencer needs from wherever a log is kept.

Guarantees an implementation gives (the store conformance suite in ``tests/store`` checks
them through each backend's ``EventStore``; ``tests/log/memory.py`` is the smallest
implementation, and asserts each as the sequencer uses it):

* **One user.** Only the writer thread calls it, one transaction at a time; every read and
  write happens between ``begin`` and ``commit``/``rollback``.
* **Atomic.** Nothing written after ``begin`` is visible to readers before ``commit``;
  ``rollback`` undoes everything since ``begin``, ``rollback_to`` everything since the
  last ``savepoint``. Savepoints nest; each is ended by ``release`` or ``rollback_to``
  before ``commit``.
* **Reads see the transaction's own writes**: an entry appended earlier in the same
  transaction (by an earlier request of the group) is found by ``bodies_by_id``,
  ``entries``, ``node``, ``last_seq`` and ``idempotency``.
* **Durable.** When ``commit`` returns, what it committed survives a ``kill -9`` of any
  process (and a power cut, as the backend's settings promise).
* **In order.** A reader that sees a tenant's seq N also sees 1..N.
* **Other writers are noticed.** Another writer may commit to the same log between two
  transactions (the CLI beside a server); ``begin`` then returns True, and the caller
  re-reads what it cached.

A backend that also serves queries (SQLite) writes its index rows in ``append`` and
``replace_content``, in the same transaction.
"""

from __future__ import annotations

import abc

from .prepared import PathSegments, PreparedEvent

#: An entry to store: the prepared event, its seq, its body and its leaf hash (None when
#: the log is not signed).
Entry = tuple[PreparedEvent, int, bytes, bytes | None]


class LogStorage(abc.ABC):
    #: The dotted paths the index keys on (records the writer makes are prepared with them).
    path_segments: PathSegments

    # -- transactions -------------------------------------------------------------------

    @abc.abstractmethod
    def begin(self) -> bool:
        """Start a write transaction; True when someone else wrote since the last one (the
        caller then drops whatever it cached: next seqs, tree ranges)."""

    @abc.abstractmethod
    def commit(self) -> None: ...

    @abc.abstractmethod
    def rollback(self) -> None: ...

    @abc.abstractmethod
    def savepoint(self) -> None: ...

    @abc.abstractmethod
    def release(self) -> None: ...

    @abc.abstractmethod
    def rollback_to(self) -> None:
        """Undo everything since the last ``savepoint`` and release it."""

    def after_commit(self, written: int) -> None:  # noqa: B027 (optional hook)
        """Housekeeping after a commit of ``written`` entries (statistics, say)."""

    # -- reads (inside the transaction) -------------------------------------------------

    @abc.abstractmethod
    def last_seq(self, tenant: str) -> int:
        """The tenant's highest seq (0 for none)."""

    @abc.abstractmethod
    def node(self, tenant: str, level: int, index: int) -> bytes:
        """A perfect subtree hash of the tenant's tree (level 0: a leaf); ``LookupError``
        when it does not exist."""

    @abc.abstractmethod
    def bodies_by_id(self, tenant: str, ids: list[str]) -> dict[str, tuple[int, bytes]]:
        """id → (seq, body) of the tenant's stored events among ``ids``."""

    @abc.abstractmethod
    def entries(
        self, tenant: str, *, event_id: str | None = None, seqs: tuple[int, ...] = (),
    ) -> list[tuple[int, bytes, bytes | None]]:
        """(seq, body, leaf) of the event ``event_id``, or of those at ``seqs``, by seq."""

    @abc.abstractmethod
    def idempotency(self, tenant: str, key: str) -> tuple[str, str, int] | None:
        """(request hash, answer, created µs) stored for the key, if any (expired ones too:
        the sequencer decides what has expired)."""

    # -- writes -------------------------------------------------------------------------

    @abc.abstractmethod
    def append(self, tenant: str, entries: list[Entry]) -> None:
        """Store the entries (consecutive seqs after ``last_seq``; each body is
        ``event.body(seq)``, stored byte for byte: its leaf hashes exactly these bytes)."""

    @abc.abstractmethod
    def put_nodes(self, tenant: str, nodes: list[tuple[int, int, bytes]]) -> None:
        """Subtree hashes the last entries completed ((level, index, hash); level 0 is a
        leaf the entries carry already). A backend may keep only some and recompute the
        rest from the leaves in ``node``."""

    @abc.abstractmethod
    def put_checkpoint(self, tenant: str, size: int, root: bytes, note: str,
                       created_us: int) -> None:
        """Keep the signed checkpoint of the tenant's whole log (``size`` is its
        ``last_seq``), made at ``created_us``; the latest one must always be kept."""

    @abc.abstractmethod
    def put_idempotency(self, tenant: str, key: str, request_hash: str, answer: str,
                        created: int, sig: bytes | None) -> None:
        """Keep an Idempotency-Key's answer, replacing an expired one of the same key."""

    @abc.abstractmethod
    def expire_idempotency(self, before_us: int) -> int:
        """Forget Idempotency-Key answers created before ``before_us``; returns how many."""

    @abc.abstractmethod
    def thin_checkpoints(self) -> int:
        """Drop stored checkpoints but, per tenant, the latest, those whose size is a power
        of two, and the newest of each hour; returns how many went. (Any other size can be
        signed again on demand: the tree is all there.)"""

    @abc.abstractmethod
    def replace_content(self, tenant: str, seq: int, stub: bytes) -> None:
        """Store ``stub`` as the event's body (its leaf stays) and drop its content from
        every index."""


__all__ = ["Entry", "LogStorage"]
