"""``CommitFeed``: each tenant's committed watermark in this process, and who waits on it.

The writer publishes a ``CommitNotice(tenant, last_seq)`` after the commit that made the
tenant's events up to ``last_seq`` durable and visible to readers; in a server of several
processes the writer process sends it to every worker, which publishes it into its own
feed. Guarantees:

* **Never early.** A notice is published only after its commit: whoever wakes on it and
  reads the store sees every event up to ``last_seq``.
* **In order, per tenant.** A tenant's watermark only grows; a waiter never learns of N+1
  before N.
* **Nothing missed after a read.** ``wait(tenant, after_seq)`` returns at once when the
  watermark is already past ``after_seq``, so the pattern "read the store up to N, then
  wait for more than N" loses no commit made in between. (Commits made before this process
  started are not in its feed: read the store first.)

``publish`` may be called from any thread; waiters wake on their own event loops.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from .protocol import CommitNotice

Listener = Callable[[CommitNotice], None]


class CommitFeed:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._marks: dict[str, int] = {}
        self._waiters: dict[str, list[tuple[int, asyncio.AbstractEventLoop,
                                            asyncio.Future[int]]]] = {}
        self._listeners: list[Listener] = []

    def watermark(self, tenant: str) -> int:
        """The highest seq this process has been told is committed (0: none yet)."""
        with self._lock:
            return self._marks.get(tenant, 0)

    def publish(self, notices: list[CommitNotice]) -> None:
        wake = []
        fresh = []
        with self._lock:
            for n in notices:
                if n.last_seq <= self._marks.get(n.tenant, 0):
                    continue  # a repeat (a reconnect, say): never move backwards
                fresh.append(n)
                self._marks[n.tenant] = n.last_seq
                waiting = self._waiters.get(n.tenant)
                if waiting:
                    keep = [w for w in waiting if w[0] >= n.last_seq]
                    wake += [(loop, fut, n.last_seq) for after, loop, fut in waiting
                             if after < n.last_seq]
                    self._waiters[n.tenant] = keep
            listeners = list(self._listeners)
        for loop, fut, seq in wake:
            loop.call_soon_threadsafe(_set, fut, seq)
        for listener in listeners:
            for n in fresh:
                listener(n)

    async def wait(self, tenant: str, after_seq: int, timeout: float | None = None) -> int:
        """The watermark once it is past ``after_seq``; ``TimeoutError`` after ``timeout``."""
        loop = asyncio.get_running_loop()
        with self._lock:
            mark = self._marks.get(tenant, 0)
            if mark > after_seq:
                return mark
            fut: asyncio.Future[int] = loop.create_future()
            self._waiters.setdefault(tenant, []).append((after_seq, loop, fut))
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            # Gone on timeout or cancellation too (wait_for cancels ``fut``): a waiter that
            # gave up must not stay in the list.
            with self._lock:
                waiting = self._waiters.get(tenant)
                if waiting is not None:
                    waiting[:] = [w for w in waiting if w[2] is not fut]
                    if not waiting:
                        del self._waiters[tenant]

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with every notice that moved a watermark (on the publishing
        thread; keep it short).
        Returns the function that stops it."""
        with self._lock:
            self._listeners.append(listener)

        def stop() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return stop


def _set(fut: asyncio.Future[int], value: int) -> None:
    if not fut.done():
        fut.set_result(value)


__all__ = ["CommitFeed"]
