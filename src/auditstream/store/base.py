"""The event store interface.

Guarantees every backend gives, and the conformance suite in ``tests/store`` checks:

* **Tenant scoping.** Every method takes the tenant; nothing reads or writes across
  tenants. An id, cursor or aggregate of one tenant never reveals another's events.
* **Atomic appends.** ``append`` writes all of its events or none of them.
* **Gap-free sequence.** Each tenant's events get ``seq`` 1, 2, 3, … in commit order with
  no gaps and no reuse, also across restarts and crashes. A reader never sees seq N+1
  before N: an incremental reader that resumes after the last seq it saw misses nothing.
* **Durable acknowledgement.** When ``append`` returns, the events survive a ``kill -9`` of
  the process (and, with ``synchronous=full``, a power cut).
* **Idempotent ids.** Re-appending an event whose client-supplied ``id`` exists with the
  same content returns the stored ``id``/``seq`` and writes nothing; different content
  raises ``Conflict`` and the whole append is rejected.
* **Stable keyset pages.** Walking ``query`` pages with the returned cursor yields every
  event that matched when the walk began exactly once, whatever is appended meanwhile.
* **Append-only.** Stored events are never changed, except ``redact`` (and ``purge``),
  which blanks an event's content, keeps its id, seq, timestamp and leaf hash, and
  appends a redaction record to the tenant's log that commits to the stubs it made
  (``integrity.redaction``). Redaction records themselves are never redacted.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from ..log.protocol import Appended
from ..query.filter import Node

SortField = Literal["timestamp", "severity"]
Order = Literal["asc", "desc"]
Interval = Literal["hour", "day", "week"]
MetricFn = Literal["sum", "avg", "min", "max", "p50", "p95", "p99"]


@dataclass(frozen=True)
class EventQuery:
    filter: Node
    sort: SortField = "timestamp"
    order: Order = "desc"
    limit: int = 50
    cursor: str | None = None
    include_total: bool = False


@dataclass
class Page:
    events: list[dict[str, Any]]
    next_cursor: str | None
    has_more: bool
    total: int | None = None


@dataclass
class RawPage:
    """A ``Page`` whose events are each one JSON document as bytes (as stored, when the
    backend keeps them so): for answers that only pass them on."""

    events: list[bytes]
    next_cursor: str | None
    has_more: bool
    total: int | None = None


@dataclass(frozen=True)
class AggregateSpec:
    group_by: str | None = None
    interval: Interval | None = None
    count_unique: tuple[str, ...] = ()
    metrics: tuple[tuple[MetricFn, str], ...] = ()
    #: Most groups returned per bucket (largest counts first).
    max_groups: int = 1000


@dataclass
class AggregateRow:
    count: int
    key: Any = None
    uniques: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, dict[str, float | None]] = field(default_factory=dict)


@dataclass
class Bucket:
    ts: int | None  # bucket start in microseconds; None without an interval
    rows: list[AggregateRow]


#: One row of a count-only aggregate: (bucket start or None, group key or None, count).
CountRow = tuple[int | None, Any, int]


@dataclass(frozen=True)
class StoredCheckpoint:
    size: int
    root: bytes
    note: str  # C2SP signed note


class EventStore(abc.ABC):
    """Append-only, tenant-scoped storage of canonical events (see the module docstring)."""

    @abc.abstractmethod
    async def append(
        self,
        tenant: str,
        events: list[dict[str, Any]],
        *,
        client_ids: frozenset[int] = frozenset(),
        idempotency_key: str | None = None,
        request_hash: str | None = None,
    ) -> list[Appended]:
        """Append canonical events (ids, timestamps and ``received_at`` already set).

        ``client_ids`` holds the positions whose ``id`` the client chose (only those can
        collide). With ``idempotency_key`` a repeat of the same request (same
        ``request_hash``) answers the first result; a different request under the same key
        raises ``Conflict``. Returns one ``Appended`` per event, in order.
        """

    @abc.abstractmethod
    async def get(self, tenant: str, event_id: str) -> dict[str, Any] | None:
        """The stored event with ``seq``, or None (also for other tenants' ids)."""

    @abc.abstractmethod
    async def query(self, tenant: str, q: EventQuery) -> Page:
        """One page of matching events in the requested order."""

    async def get_raw(self, tenant: str, event_id: str) -> bytes | None:
        """``get`` as one JSON document (the same content), or None."""
        ev = await self.get(tenant, event_id)
        return None if ev is None else orjson.dumps(ev)

    async def query_raw(self, tenant: str, q: EventQuery) -> RawPage:
        """``query`` with each event as one JSON document (the same content): a backend
        that stores each event's JSON hands it on without parsing it."""
        page = await self.query(tenant, q)
        return RawPage([orjson.dumps(e) for e in page.events], page.next_cursor,
                       page.has_more, page.total)

    @abc.abstractmethod
    async def count(self, tenant: str, where: Node) -> int:
        """How many events match."""

    @abc.abstractmethod
    async def aggregate(self, tenant: str, where: Node, spec: AggregateSpec) -> list[Bucket]:
        """Buckets (by interval, ascending) of rows (by group key, largest first).

        Rows whose group key is null or empty are left out; empty buckets are not filled in.
        """

    async def aggregate_counts(
        self, tenant: str, where: Node, spec: AggregateSpec
    ) -> list[CountRow]:
        """``aggregate`` flattened to ``(bucket, key, count)`` rows in the same order (rows
        by count, largest first, then by ``str(key)``), for answers that are only counts.

        The same content as ``aggregate``; a backend may build it without a row object
        per group (a 30-day hourly answer has tens of thousands)."""
        return [(b.ts, r.key, r.count) for b in await self.aggregate(tenant, where, spec)
                for r in b.rows]

    @abc.abstractmethod
    def scan(
        self, tenant: str, where: Node, *, after_seq: int = 0, batch: int = 1000
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every matching event with ``seq > after_seq`` in seq order, in batches.

        Memory stays bounded by ``batch`` whatever the size of the result.
        """

    @abc.abstractmethod
    async def last_seq(self, tenant: str) -> int:
        """The highest committed seq of the tenant (0 when it has none)."""

    # -- the tamper-evident log (RFC 9162 tree over each tenant's events in seq order) --

    @abc.abstractmethod
    async def merkle_nodes(
        self, tenant: str, ids: list[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        """Stored perfect-subtree hashes ``(level, index) → hash``; level 0 is leaf hashes.

        Raises ``LookupError`` if a requested node is not stored (beyond the tree, or the
        store runs without integrity).
        """

    @abc.abstractmethod
    async def sign_checkpoint(self, tenant: str, size: int) -> str:
        """A signed checkpoint (C2SP note) of the tenant's tree at ``size`` (at most its
        latest), for proofs against a tree older than the latest stored checkpoint."""

    @abc.abstractmethod
    async def checkpoints(
        self, tenant: str, *, size: int | None = None
    ) -> list[StoredCheckpoint]:
        """Signed checkpoints stored at commit: the latest one, or the one of ``size``."""

    @abc.abstractmethod
    async def redact(
        self, tenant: str, event_id: str, reason: str, *, actor: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Blank an event's content (keeping ``redaction.KEEPS`` and its leaf hash) and
        append a redaction record naming ``actor`` and ``reason``, atomically.

        Returns the stub (also when it was redacted before), or None if the tenant has no
        such event. Raises ``Conflict`` for a redaction record.
        """

    @abc.abstractmethod
    async def purge(self, tenant: str, before_us: int, reason: str, *,
                    actor: dict[str, Any] | None = None) -> int:
        """Retention: redact (as ``redact``) every event older than ``before_us``, in
        chunks, each with its own redaction record.

        Leaf hashes, seqs and timestamps stay, so every proof and checkpoint still verifies.
        Returns how many events were newly redacted.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish pending appends and release resources; later calls raise StoreClosed."""
