"""``StreamHub``: every live subscription of this process, fed from the store.

Guarantees:

* **No gap, no duplicate.** A subscription delivers every event matching its filter with
  ``seq`` above its start, once each, in seq order, also across catching up, falling
  behind and catching up again, while ingest runs.
* **The store is the replay source.** A subscription first reads what it missed from the
  store (``scan``), then follows the tenant's *tail*; the memory between is a bounded
  queue, a cache of what the tail already read.
* **Ingest never waits for subscribers.** The tail hands events to queues without
  blocking; a full queue turns its subscription back to catching up from the store.
* **One read per commit per tenant.** One tail task per tenant with subscribers wakes on
  the commit feed (and polls once a second, for writers this process does not hear
  from), reads the new events once, and tests each against the subscriptions that can
  match it: indexed by the ``type`` values their filters require, so a filter on other
  types is never even tested.
* **Catch-up reads are limited** (``catchup_reads`` at once per process), so a thousand
  reconnecting clients do not starve other readers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..query.filter import And, Cmp, Eq, Node, and_
from ..query.predicate import compile_predicate
from ..store.base import EventStore

log = logging.getLogger("auditstream")

#: A tail rereads the store at least this often even when the feed is silent (another
#: server or the CLI may write the same file).
POLL_SECONDS = 1.0
SCAN_BATCH = 500


@dataclass(eq=False)
class Item:
    """One committed event, read once and shared by every subscription it matches."""

    seq: int
    event: dict[str, Any]
    _raw: bytes | None = None
    _messages: dict[Callable[[Item], bytes], str] = field(default_factory=dict)

    @property
    def raw(self) -> bytes:
        """The event as JSON, encoded on first use only (once for every subscriber)."""
        if self._raw is None:
            self._raw = orjson.dumps(self.event)
        return self._raw

    def message(self, fmt: Callable[[Item], bytes]) -> str:
        """The event as a text frame of the wire format ``fmt``, built once per format."""
        text = self._messages.get(fmt)
        if text is None:
            text = self._messages[fmt] = fmt(self).decode()
        return text


_COMPILED: dict[str, Callable[[dict[str, Any]], bool]] = {}


def compiled(where: Node) -> Callable[[dict[str, Any]], bool]:
    """One predicate per distinct filter, shared by the subscriptions that use it. Keyed by
    ``repr``, not by the node: nodes compare ``True == 1`` and ``1 == 1.0`` equal, filters
    do not."""
    key = repr(where)
    match = _COMPILED.get(key)
    if match is None:
        if len(_COMPILED) >= 4096:
            _COMPILED.clear()
        match = _COMPILED[key] = compile_predicate(where)
    return match


def required_types(node: Node) -> frozenset[str] | None:
    """The ``type`` values an event must have to match ``node``, or None (any type)."""
    children = node.children if isinstance(node, And) else (node,)
    for child in children:
        if isinstance(child, Eq) and child.path == "type" and all(
                isinstance(v, str) for v in child.values):
            return frozenset(str(v) for v in child.values)
    return None


@dataclass(eq=False)
class Subscription:
    """One client's filter and position. ``cursor``: every matching event up to it has
    been handed out (``next_batch``) or is in ``queue``."""

    tenant: str
    where: Node
    cursor: int
    limit: int = 1000
    queue: deque[Item] = field(default_factory=deque)
    live: bool = False
    closed: bool = False
    overflows: int = 0
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.match = compiled(self.where)
        self.types = required_types(self.where)

    def offer(self, item: Item) -> None:
        """From the tail: queue ``item`` if it matches; if the queue is full, go back to
        catching up from the store (from ``cursor``: nothing is lost)."""
        if item.seq <= self.cursor or not self.match(item.event):
            return
        if len(self.queue) >= self.limit:
            self.live = False
            self.overflows += 1
        else:
            self.queue.append(item)
            self.cursor = item.seq
        self._wake.set()


_ALL = and_()


class TenantTail:
    """Reads a tenant's new events once per commit and offers them to its subscriptions."""

    def __init__(self, hub: StreamHub, tenant: str, position: int):
        self.hub = hub
        self.tenant = tenant
        #: Every event up to here has been offered to the live subscriptions.
        self.position = position
        self.by_type: dict[str, set[Subscription]] = {}
        self.any_type: set[Subscription] = set()
        self.task: asyncio.Task[None] | None = None

    def add(self, sub: Subscription) -> None:
        if sub.types is None:
            self.any_type.add(sub)
        else:
            for t in sub.types:
                self.by_type.setdefault(t, set()).add(sub)

    def remove(self, sub: Subscription) -> None:
        self.any_type.discard(sub)
        for t in sub.types or ():
            subs = self.by_type.get(t)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self.by_type[t]

    def has(self, sub: Subscription) -> bool:
        return sub in self.any_type or any(sub in self.by_type.get(t, ()) for t in
                                           sub.types or ())

    def empty(self) -> bool:
        return not self.any_type and not self.by_type

    async def run(self) -> None:
        store, feed = self.hub.store, self.hub.store.feed
        while True:
            with contextlib.suppress(TimeoutError):
                await feed.wait(self.tenant, self.position, timeout=POLL_SECONDS)
            try:
                async for batch in store.scan(self.tenant, _ALL, after_seq=self.position,
                                              batch=SCAN_BATCH):
                    self.offer(batch)
            except asyncio.CancelledError:
                raise
            except Exception:  # a read failing now may work on the next commit
                log.exception("stream: reading %s after seq %d failed", self.tenant,
                              self.position)
                await asyncio.sleep(POLL_SECONDS)

    def offer(self, batch: list[dict[str, Any]]) -> None:
        """Synchronous on purpose: a subscription that checks ``position`` and goes live
        sees either all of a batch offered or none of it."""
        for event in batch:
            item = Item(int(event["seq"]), event)
            candidates = self.by_type.get(event.get("type"))  # type: ignore[arg-type]
            for sub in (*self.any_type, *(candidates or ())):
                if sub.live:
                    sub.offer(item)
            self.position = item.seq


class StreamHub:
    """The subscriptions of one process; a connection reads its own with ``next_batch``."""

    def __init__(self, store: EventStore, *, catchup_reads: int = 4,
                 queue_limit: int = 1000):
        self.store = store
        self.queue_limit = queue_limit
        self.catchup = asyncio.Semaphore(catchup_reads)
        self.tails: dict[str, TenantTail] = {}
        self.subscriptions = 0
        #: Times a subscription ended, fell behind, or its client stopped reading (closed).
        self.ended = 0
        self.overflows = 0
        self.stalled = 0

    async def subscribe(self, tenant: str, where: Node, after_seq: int | None) -> Subscription:
        """A subscription starting after ``after_seq`` (None: after the newest event)."""
        tail = self.tails.get(tenant)
        newest = await self.store.last_seq(tenant) if after_seq is None or tail is None else 0
        if after_seq is None:
            after_seq = newest
        if tail is None:
            position = newest
            tail = self.tails.get(tenant)  # another subscriber may have made it meanwhile
            if tail is None:
                tail = self.tails[tenant] = TenantTail(self, tenant, position)
                tail.task = asyncio.create_task(tail.run(), name=f"stream-tail-{tenant}")
        sub = Subscription(tenant, where, after_seq, limit=self.queue_limit)
        tail.add(sub)
        self.subscriptions += 1
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop ``sub``; a ``next_batch`` waiting on it returns ``[]``."""
        tail = self.tails.get(sub.tenant)
        sub.live, sub.closed = False, True
        sub.queue.clear()
        sub._wake.set()
        if tail is None or not tail.has(sub):
            return
        tail.remove(sub)
        self.subscriptions -= 1
        self.ended += 1
        self.overflows += sub.overflows
        if tail.empty():
            del self.tails[sub.tenant]
            if tail.task is not None:
                tail.task.cancel()

    async def next_batch(self, sub: Subscription, timeout: float | None = None) -> list[Item]:
        """The next events of ``sub`` in seq order (waits for them; ``[]`` after
        ``timeout``, or once unsubscribed)."""
        while not sub.closed:
            if sub.queue:
                items = list(sub.queue)
                sub.queue.clear()
                return items
            if not sub.live:
                items = await self._catch_up(sub)
                if items:
                    return items
                continue
            sub._wake.clear()
            try:
                await asyncio.wait_for(sub._wake.wait(), timeout)
            except TimeoutError:
                return []
        return []

    async def _catch_up(self, sub: Subscription) -> list[Item]:
        """One read from the store between ``sub.cursor`` and the tail's position; when
        nothing is left below it, the subscription goes live (no await in between, so the
        tail cannot move past it unseen)."""
        tail = self.tails.get(sub.tenant)
        if tail is None or sub.closed:
            return []
        target = tail.position
        if sub.cursor < target:
            where = and_(sub.where, Cmp("seq", "<=", target))
            async with self.catchup:
                batch: list[dict[str, Any]] = []
                async for found in self.store.scan(sub.tenant, where, after_seq=sub.cursor,
                                                   batch=SCAN_BATCH):
                    batch = found
                    break
            if len(batch) == SCAN_BATCH:
                sub.cursor = int(batch[-1]["seq"])
            else:  # nothing else matches up to the target
                sub.cursor = max(sub.cursor, target)
            items = [Item(int(e["seq"]), e) for e in batch]
            if items or sub.closed:
                return items
        if sub.cursor >= tail.position:
            sub.live = True
        return []

    async def close(self) -> None:
        tasks = [t.task for t in self.tails.values() if t.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.tails.clear()


__all__ = ["Item", "StreamHub", "Subscription", "required_types"]
