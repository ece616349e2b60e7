"""The event store interface: an **event log** and an **event index** behind one facade.

``EventStore`` is what call sites use. Its methods fall in two groups, which a backend may
keep in different places (SQLite keeps both in one file and one transaction; at scale the
index may live in ClickHouse while the log stays transactional):

* the **event log** -- ``append``, ``last_seq``, ``merkle_nodes``, ``checkpoints``,
  ``sign_checkpoint``, ``redact``/``purge`` (their records), the commit feed
  (``feed``, a ``log.feed.CommitFeed``): sequencing, idempotency, leaf hashes, the Merkle
  tree, signed checkpoints, each tenant's committed watermark;
* the **event index** -- ``get``, ``query``, ``count``, ``aggregate``, ``scan``, and the
  content side of ``redact``/``purge`` (what readers can still find).

Guarantees every backend gives, and the conformance suite in ``tests/store`` checks
through this interface alone, for every backend (``tests/store/backends.py``):

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
  raises ``Conflict`` and the whole append is rejected. The server's own fields
  (``seq``, ``tenant``, ``received_at``) are not content, nor is a ``timestamp`` the
  server filled in (equal to ``received_at``), so the retry of an event sent without a
  timestamp is the same event. Ids are per tenant.
* **Stable keyset pages.** Walking ``query`` pages with the returned cursor yields every
  event that matched when the walk began exactly once, whatever is appended meanwhile.
* **Append-only.** Stored events are never changed, except ``redact`` (and ``purge``),
  which blanks an event's content, keeps its id, seq, timestamp and leaf hash, and
  appends a redaction record to the tenant's log that commits to the stubs it made
  (``integrity.redaction``). Redaction records themselves are never redacted.
* **Tamper evidence** (a store opened with a signer). Leaf ``i`` of a tenant's tree is the
  RFC 9162 leaf hash of the RFC 8785 bytes of the event at seq ``i + 1`` (as first
  stored: a redaction keeps it); every commit that adds entries stores a checkpoint of
  the whole log, signed for the origin ``<deployment>/<tenant>``; the nodes
  ``merkle_nodes`` serves give inclusion and consistency proofs that verify against
  those checkpoints.
* **The commit feed.** ``feed`` publishes ``CommitNotice(tenant, last_seq)`` after the
  commit that made the tenant's entries up to ``last_seq`` visible to readers (appends,
  redaction records, purge chunks; nothing for a commit that wrote nothing for the
  tenant), in commit order per tenant, and before ``append`` (``redact``, ``purge``)
  returns: by then this process's ``feed.watermark(tenant)`` is at least the seqs it
  answered, and the waiters on them are being woken. Whoever wakes on ``(tenant, N)``
  and reads sees 1..N.
* **Closing.** ``close`` finishes the appends already accepted; every later call raises
  ``StoreClosed`` (closing twice is harmless).

Filters (``query``, ``count``, ``aggregate``, ``scan``) select exactly the events the
Python predicate of the same tree selects (``query.predicate`` defines the semantics:
types, missing paths, ``Not``), whichever paths a deployment indexes. Full-text search
(``filter.Text``) in particular:

* it searches ``title`` and ``description``; every term must match (terms are ANDed), each
  in either field;
* words are maximal runs of Unicode letters and digits (anything else, ``_`` and ``-``
  included, separates them), compared case-insensitively and with the diacritics of
  Latin letters removed (FTS5 ``unicode61`` with ``remove_diacritics=1``: ``cafe`` and
  ``CAFÉ`` both match "Café");
* a term of several words is a phrase: those words, adjacent and in order, within one
  field; a term ending in ``*`` makes its last word a prefix (``"deploy fail*"``);
* nothing in a term is query syntax (quotes, ``AND``, ``OR``, ``NEAR``, ``-`` are words
  or separators); a term without words matches every event.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from ..log.feed import CommitFeed
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


class EventIndex(abc.ABC):
    """What readers query: events by id, filter, page, aggregate and scan (see the module
    docstring for the guarantees and the filter semantics)."""

    @abc.abstractmethod
    async def get(self, tenant: str, event_id: str) -> dict[str, Any] | None:
        """The stored event with ``seq`` (a redaction stub once redacted), or None (also for
        other tenants' ids)."""

    @abc.abstractmethod
    async def query(self, tenant: str, q: EventQuery) -> Page:
        """One page of matching events in the requested order.

        Events are ordered by ``(timestamp, seq)``, or by ``(severity rank, timestamp,
        seq)`` for ``sort="severity"``, ascending or descending as a whole. ``next_cursor``
        (None on the last page) resumes after the page's last event; a cursor of another
        sort, order or tenant, or not one this store made, raises ``InvalidRequest``.
        ``include_total`` counts every match in the same snapshot as the page.
        """

    @abc.abstractmethod
    async def count(self, tenant: str, where: Node) -> int:
        """How many events match (as ``query`` would return, all pages together)."""

    @abc.abstractmethod
    async def aggregate(self, tenant: str, where: Node, spec: AggregateSpec) -> list[Bucket]:
        """Buckets (by interval, ascending) of rows (by group key, largest first).

        * **Buckets.** ``interval`` buckets by the event ``timestamp`` in UTC: ``ts`` is
          the bucket's start in microseconds; weeks start on Monday 00:00 UTC. Without an
          interval there is one bucket with ``ts`` None. Empty buckets are not filled in;
          no matching event at all is ``[]``.
        * **Groups.** ``group_by`` a path: one row per distinct value, as stored (a string
          and a number are different keys; severity keys are names). Rows whose key is
          missing, null or empty are left out. At most ``max_groups`` rows per bucket, the
          largest counts first.
        * **Distinct counts.** ``count_unique`` paths: how many distinct values other than
          missing, null and ``""`` each row's events hold (``7`` and ``7.0`` are one value,
          ``7`` and ``"7"`` two).
        * **Metrics** over a path's **numeric** JSON values only (missing, strings and
          booleans are not numbers: they are counted in ``count``, never measured):
          ``sum``, ``avg``, ``min``, ``max``, and the percentiles ``p50``, ``p95``,
          ``p99`` by **nearest rank**: the value at rank ``ceil(q·n)`` (1-based) of the
          row's ``n`` sorted values, always a value that occurred, never interpolated.
          Every metric of a row without numeric values is None.
        """

    @abc.abstractmethod
    def scan(
        self, tenant: str, where: Node, *, after_seq: int = 0, batch: int = 1000
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every matching event with ``seq > after_seq`` in seq order, in batches of at
        most ``batch`` (all full but the last).

        Memory stays bounded by ``batch`` whatever the size of the result (a backend may
        also read ahead a bounded number of bytes: ClickHouse's READ_AHEAD_BYTES). Events
        committed while the scan runs may or may not be included; each one at most once.
        """

    async def scan_raw(
        self, tenant: str, where: Node, *, after_seq: int = 0, batch: int = 1000
    ) -> AsyncIterator[list[bytes]]:
        """``scan`` with each event as one JSON document (the same content): a backend
        that stores each event's JSON hands it on without parsing it."""
        async for events in self.scan(tenant, where, after_seq=after_seq, batch=batch):
            yield [orjson.dumps(e) for e in events]

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

    async def aggregate_counts(
        self, tenant: str, where: Node, spec: AggregateSpec
    ) -> list[CountRow]:
        """``aggregate`` flattened to ``(bucket, key, count)`` rows in the same order (rows
        by count, largest first, then by ``str(key)``), for answers that are only counts.

        The same content as ``aggregate``; a backend may build it without a row object
        per group (a 30-day hourly answer has tens of thousands)."""
        return [(b.ts, r.key, r.count) for b in await self.aggregate(tenant, where, spec)
                for r in b.rows]


class EventLog(abc.ABC):
    """The tamper-evident, gap-free log of each tenant and its commit feed (see the module
    docstring). ``append``, ``redact`` and ``purge`` return once durable."""

    #: Commit notices of this process (``log.feed.CommitFeed``).
    feed: CommitFeed
    #: Events blanked per transaction by ``purge`` (each chunk is one redaction record).
    PURGE_CHUNK: int = 5_000

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
    async def last_seq(self, tenant: str) -> int:
        """The highest committed seq of the tenant (0 when it has none)."""

    @abc.abstractmethod
    async def merkle_nodes(
        self, tenant: str, ids: list[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        """Perfect-subtree hashes ``(level, index) → hash`` of the tenant's tree (RFC 9162;
        node ``(level, i)`` covers leaves ``[i·2^level, (i+1)·2^level)``); level 0 is the
        leaf hashes.

        A backend may store only some levels and compute the others from the leaves.
        Raises ``LookupError`` if a requested node lies beyond the tree (or the store runs
        without integrity).
        """

    @abc.abstractmethod
    async def sign_checkpoint(self, tenant: str, size: int) -> str:
        """A signed checkpoint (C2SP note) of the tenant's tree at ``size`` (0 up to its
        latest), for proofs against a tree older than the latest stored checkpoint.

        Raises ``InvalidRequest`` for a size outside the log, ``StoreUnavailable`` when the
        store has no signer. Writes nothing (no notice).
        """

    @abc.abstractmethod
    async def checkpoints(
        self, tenant: str, *, size: int | None = None
    ) -> list[StoredCheckpoint]:
        """Signed checkpoints stored at commit: the latest one (always kept: its size is
        the tenant's ``last_seq``), or the one of ``size`` if it is kept (older ones may be
        thinned out); ``[]`` when there is none."""

    @abc.abstractmethod
    async def redact(
        self, tenant: str, event_id: str, reason: str, *, actor: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Blank an event's content (keeping ``redaction.KEEPS`` and its leaf hash) and
        append a redaction record naming ``actor`` and ``reason``, atomically.

        Returns the stub (also when it was redacted before: then nothing is written), or
        None if the tenant has no such event. Raises ``Conflict`` for a redaction record.
        The content is gone from every index: no filter, search or aggregate matches it
        any more, but the kept fields still do.
        """

    @abc.abstractmethod
    async def purge(self, tenant: str, before_us: int, reason: str, *,
                    actor: dict[str, Any] | None = None) -> int:
        """Retention: redact (as ``redact``) every event with ``timestamp < before_us``
        but redaction records, in chunks of at most ``PURGE_CHUNK`` events (a class
        attribute of the backend), each committed on its own with its own redaction record,
        so appends are acknowledged between chunks.

        Leaf hashes, seqs and timestamps stay, so every proof and checkpoint still verifies.
        Returns how many events were newly redacted (stubs are not redacted again; a purge
        with nothing to do writes nothing).
        """


class EventStore(EventLog, EventIndex):
    """The facade call sites use: one tenant-scoped log and its index."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish pending appends and release resources; later calls raise StoreClosed."""
