"""Batched ingest that flushes in the background and on close, and never drops silently.

Events added to a batcher are sent in batches of at most ``max_events`` events (and about
``max_bytes`` of JSON), as soon as a batch is full or ``max_interval`` seconds after the
oldest waiting event was added, and at ``flush()`` / ``close()`` / the end of its ``with``
block. Guarantees:

* **In order, at most once.** A batch, once formed, is frozen: it is retried with the same
  bytes and the same ``Idempotency-Key``, so a retry after a lost answer is a no-op on the
  server (keys are honoured for 24 h), not a second copy. Batches go one at a time, in the
  order their events were added.
* **Transient failures are retried** (connection errors, 408, 429, 5xx such as the 503 of
  a full writer queue) in the background with the 1, 2, 4 … 30 s backoff. ``flush()`` and
  ``close()`` make one attempt per batch and raise ``BatchError`` with every event still
  unsent; those stay buffered, so a later ``flush()`` sends them.
* **Refusals are raised, not retried.** A batch the server refuses as invalid (400, 409,
  413 …) is removed, and the next ``add``, ``flush`` or ``close`` raises ``BatchError``
  whose ``events`` are that batch (the only copy) and whose cause is the server's answer.
* **Bounded.** At most ``max_buffer`` events wait; ``add`` raises ``BatchError`` beyond
  that (the server has been unreachable), with the last failure as its cause.

Whenever ``add`` raises, the event it was given was not buffered.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import orjson

from .backoff import Backoff
from .errors import APIError, BatchError, ClientError
from .types import Event, Ingested

__all__ = ["AsyncBatcher", "Batcher"]

#: A little under the server's default 10 MiB body limit.
MAX_BATCH_BYTES = 8 * 1024 * 1024
OnIngested = Callable[[list[Ingested]], None]


@dataclass(frozen=True, slots=True)
class _Batch:
    events: list[Event]
    body: bytes
    key: str


def _retryable(exc: ClientError) -> bool:
    return not isinstance(exc, APIError) or exc.retryable


class _Queue:
    """The buffer both batchers share: loose events, frozen batches, refusals."""

    def __init__(self, max_events: int, max_interval: float, max_bytes: int,
                 max_buffer: int) -> None:
        if max_events < 1 or max_buffer < 1 or max_interval < 0 or max_bytes < 1:
            raise ValueError("max_events, max_bytes and max_buffer must be positive, "
                             "max_interval not negative")
        self.max_events, self.max_interval = max_events, max_interval
        self.max_bytes, self.max_buffer = max_bytes, max_buffer
        self.loose: deque[tuple[Event, bytes]] = deque()
        self.pending: deque[_Batch] = deque()
        self.refused: deque[BatchError] = deque()
        self.count = 0
        self.first_at = 0.0
        self.last_error: ClientError | None = None
        self.closed = False

    def add(self, event: Event, now: float) -> None:
        if self.closed:
            raise ClientError("the batcher is closed")
        self.raise_refused()
        if self.count >= self.max_buffer:
            raise BatchError(f"{self.count} events are waiting to be sent; not buffering "
                             "more", []) from self.last_error
        raw = orjson.dumps(event)  # a value JSON cannot hold fails here, in the caller
        if not self.loose:
            self.first_at = now
        self.loose.append((event, raw))
        self.count += 1

    def raise_refused(self) -> None:
        if self.refused:
            raise self.refused.popleft()

    def due(self, now: float) -> bool:
        return bool(self.pending) or len(self.loose) >= self.max_events or bool(
            self.loose) and now - self.first_at >= self.max_interval

    def wait_time(self, now: float) -> float | None:
        if self.pending:
            return 0.0
        if self.loose:
            return max(0.0, self.max_interval - (now - self.first_at))
        return None

    def front(self) -> _Batch | None:
        if not self.pending and self.loose:
            events: list[Event] = []
            parts: list[bytes] = []
            size = 2
            while self.loose and len(events) < self.max_events:
                raw = self.loose[0][1]
                if events and size + len(raw) + 1 > self.max_bytes:
                    break
                event, raw = self.loose.popleft()
                events.append(event)
                parts.append(raw)
                size += len(raw) + 1
            self.pending.append(_Batch(events, b"[" + b",".join(parts) + b"]",
                                       f"auditstream-batch-{uuid.uuid4()}"))
        return self.pending[0] if self.pending else None

    def sent(self, batch: _Batch) -> None:
        self.pending.popleft()
        self.count -= len(batch.events)
        self.last_error = None

    def failed(self, batch: _Batch, exc: ClientError) -> bool:
        """Record a failed send; True when the batch stays (a transient failure)."""
        if _retryable(exc):
            self.last_error = exc
            return True
        self.pending.popleft()
        self.count -= len(batch.events)
        err = BatchError(f"the server refused a batch of {len(batch.events)} events: {exc}",
                         batch.events)
        err.__cause__ = exc
        self.refused.append(err)
        return False

    def unsent(self) -> list[Event]:
        return [e for b in self.pending for e in b.events] + [e for e, _ in self.loose]


class Batcher:
    """Batched ingest for ``Client`` (see the module docstring); make one with
    ``Client.batcher()``.

    >>> with client.batcher(max_events=500, max_interval=1.0) as batch:  # doctest: +SKIP
    ...     for line in source:
    ...         batch.add({"type": "login", "actor": {"id": line.user}})
    """

    def __init__(self, send: Callable[[bytes, str], list[Ingested]], *,
                 max_events: int = 1000, max_interval: float = 1.0,
                 max_bytes: int = MAX_BATCH_BYTES, max_buffer: int = 100_000,
                 on_ingested: OnIngested | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._send = send
        self._q = _Queue(max_events, max_interval, max_bytes, max_buffer)
        self._on_ingested = on_ingested
        self._clock = clock
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="auditstream-batcher",
                                        daemon=True)
        self._thread.start()

    @property
    def waiting(self) -> int:
        """Events added but not yet acknowledged by the server."""
        return self._q.count

    def add(self, event: Event | dict[str, Any]) -> None:
        """Buffer one event (raises ``BatchError`` for an earlier refused batch)."""
        with self._cond:
            self._q.add(event, self._clock())  # type: ignore[arg-type]
            if self._q.due(self._clock()):
                self._cond.notify()

    def extend(self, events: Iterable[Event | dict[str, Any]]) -> None:
        """``add`` each event in turn."""
        for event in events:
            self.add(event)

    def _run(self) -> None:
        backoff = Backoff()
        while True:
            with self._cond:
                while not self._q.closed and not self._q.due(self._clock()):
                    self._cond.wait(self._q.wait_time(self._clock()))
                if self._q.closed:
                    return
            if self._send_pending():
                backoff.reset()
            else:
                with self._cond:
                    self._cond.wait_for(lambda: self._q.closed, backoff.next())

    def _send_pending(self) -> bool:
        """Send every formed or due batch; False after a transient failure."""
        with self._send_lock:
            while True:
                with self._cond:
                    batch = self._q.front()
                if batch is None:
                    return True
                try:
                    result = self._send(batch.body, batch.key)
                except ClientError as exc:
                    with self._cond:
                        if self._q.failed(batch, exc):
                            return False
                    continue
                with self._cond:
                    self._q.sent(batch)
                if self._on_ingested is not None:
                    self._on_ingested(result)

    def flush(self) -> None:
        """Send everything buffered now; raise ``BatchError`` if any of it is not sent."""
        if not self._send_pending():
            with self._cond:
                unsent, cause = self._q.unsent(), self._q.last_error
            raise BatchError(f"{len(unsent)} events could not be sent (still buffered): "
                             f"{cause}", unsent) from cause
        with self._cond:
            self._q.raise_refused()

    def close(self) -> None:
        """Stop the background thread and flush; raise ``BatchError`` for what is left."""
        with self._cond:
            self._q.closed = True
            self._cond.notify_all()
        self._thread.join()
        self.flush()

    def __enter__(self) -> Batcher:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class AsyncBatcher:
    """Batched ingest for ``AsyncClient`` (see the module docstring); make one with
    ``AsyncClient.batcher()`` and use it as ``async with``.

    >>> async with client.batcher(max_events=500) as batch:  # doctest: +SKIP
    ...     batch.add({"type": "login"})
    """

    def __init__(self, send: Callable[[bytes, str], Awaitable[list[Ingested]]], *,
                 max_events: int = 1000, max_interval: float = 1.0,
                 max_bytes: int = MAX_BATCH_BYTES, max_buffer: int = 100_000,
                 on_ingested: OnIngested | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._send = send
        self._q = _Queue(max_events, max_interval, max_bytes, max_buffer)
        self._on_ingested = on_ingested
        self._clock = clock
        self._wake = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        """Events added but not yet acknowledged by the server."""
        return self._q.count

    def start(self) -> None:
        """Start the background flush task (``async with`` does it)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def add(self, event: Event | dict[str, Any]) -> None:
        """Buffer one event (raises ``BatchError`` for an earlier refused batch)."""
        self._q.add(event, self._clock())  # type: ignore[arg-type]
        if self._q.due(self._clock()):
            self._wake.set()

    def extend(self, events: Iterable[Event | dict[str, Any]]) -> None:
        """``add`` each event in turn."""
        for event in events:
            self.add(event)

    async def _sleep(self, seconds: float | None) -> None:
        """Until woken (an add made a batch due, or close) or ``seconds`` pass."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _run(self) -> None:
        backoff = Backoff()
        while not self._q.closed:
            if not self._q.due(self._clock()):
                await self._sleep(self._q.wait_time(self._clock()))
                continue
            if await self._send_pending():
                backoff.reset()
            else:
                await self._sleep(backoff.next())

    async def _send_pending(self) -> bool:
        async with self._send_lock:
            while (batch := self._q.front()) is not None:
                try:
                    result = await self._send(batch.body, batch.key)
                except ClientError as exc:
                    if self._q.failed(batch, exc):
                        return False
                    continue
                self._q.sent(batch)
                if self._on_ingested is not None:
                    self._on_ingested(result)
            return True

    async def flush(self) -> None:
        """Send everything buffered now; raise ``BatchError`` if any of it is not sent."""
        if not await self._send_pending():
            unsent, cause = self._q.unsent(), self._q.last_error
            raise BatchError(f"{len(unsent)} events could not be sent (still buffered): "
                             f"{cause}", unsent) from cause
        self._q.raise_refused()

    async def close(self) -> None:
        """Stop the background task and flush; raise ``BatchError`` for what is left."""
        self._q.closed = True
        self._wake.set()
        if self._task is not None:
            task, self._task = self._task, None
            await task
        await self.flush()

    async def __aenter__(self) -> AsyncBatcher:
        self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()
