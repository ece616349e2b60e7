"""``WriterThread``: the one thread that writes the log, a group of requests per commit.

A commit (with its fsync) costs the same for one row or ten thousand, so the writer takes
whatever is waiting (up to ``MAX_GROUP_EVENTS``), has the ``Sequencer`` apply it in one
transaction, and only then publishes the commit's notices and delivers each request's
reply: nothing is acknowledged before the commit that makes it durable.

The queue is bounded in events: beyond ``max_queue_events`` waiting, ``submit`` refuses
with ``Overloaded`` (ingest answers 503 with Retry-After) instead of letting latency and
memory grow without end. Nothing acknowledged is ever dropped: a refused request was never
accepted.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable

from ..errors import Overloaded, StoreClosed
from .protocol import AppendRequest, CommitNotice, Reply, Request
from .sequencer import Sequencer

Deliver = Callable[[Reply], None]


def _size(request: Request) -> int:
    return len(request.events) if isinstance(request, AppendRequest) else 1


class WriterThread(threading.Thread):
    #: Most events committed in one transaction; bounds the latency of a group.
    MAX_GROUP_EVENTS = 20_000

    def __init__(
        self, sequencer: Sequencer, *, max_queue_events: int,
        on_notices: Callable[[list[CommitNotice]], None],
        on_commit: Callable[[int, int], None] | None = None,
    ):
        super().__init__(name="auditstream-writer", daemon=True)
        self.sequencer = sequencer
        self.max_queue_events = max_queue_events
        self.on_notices = on_notices
        self.on_commit = on_commit
        self._queue: collections.deque[tuple[Request, Deliver]] = collections.deque()
        self._queued_events = 0
        self._cond = threading.Condition()
        self._closed = False

    def submit(self, request: Request, deliver: Deliver) -> None:
        """Queue ``request``; ``deliver(reply)`` is called on this thread after its commit."""
        size = _size(request)
        with self._cond:
            if self._closed:
                raise StoreClosed("the writer is stopped")
            if self._queued_events and self._queued_events + size > self.max_queue_events:
                raise Overloaded(f"the writer has {self._queued_events} events waiting; "
                                 "retry shortly")
            self._queue.append((request, deliver))
            self._queued_events += size
            self._cond.notify()

    def stop(self) -> None:
        """Commit what is queued, then end the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self.is_alive():
            self.join()

    def run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return  # closed and drained
                group: list[tuple[Request, Deliver]] = []
                n = 0
                while self._queue and n < self.MAX_GROUP_EVENTS:
                    item = self._queue.popleft()
                    group.append(item)
                    n += _size(item[0])
                self._queued_events -= n
            replies, notices = self.sequencer.apply([r for r, _ in group])
            written = sum(1 for r in replies if r.error is None and isinstance(r.value, list)
                          for a in r.value if a.created)
            if self.on_commit is not None and written:
                self.on_commit(len(group), written)
            # Notices first: by the time a caller has its reply, its process's feed (and,
            # through the same socket, a worker's) already knows the commit.
            if notices:
                self.on_notices(notices)
            for (_, deliver), reply in zip(group, replies, strict=True):
                deliver(reply)


__all__ = ["WriterThread"]
