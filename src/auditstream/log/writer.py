"""``WriterThread``: the one thread that writes the log, a group of requests per commit.

A commit (with its fsync) costs the same for one row or ten thousand, so the writer takes
whatever is waiting (up to ``MAX_GROUP_EVENTS``), has the ``Sequencer`` apply it in one
transaction, and only then publishes the commit's notices and delivers each request's
reply: nothing is acknowledged before the commit that makes it durable.

The queue is bounded in events: beyond ``max_queue_events`` waiting, ``submit`` refuses
with ``Overloaded`` (ingest answers 503 with Retry-After) instead of letting latency and
memory grow without end. Nothing acknowledged is ever dropped: a refused request was never
accepted.

When publishing is slow work of its own (the clickhouse backend puts each commit into its
index there), ``publish_behind=N`` hands it to a second thread: the writer commits the
next group while the last one is published, at most N commits ahead of it. Commits are
published in their order, and replies still follow their commit's publication.
"""

from __future__ import annotations

import collections
import queue
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
        publish_behind: int = 0, between: Callable[[], None] | None = None,
    ):
        """``publish_behind``: commits the writer may be ahead of publishing (0: it
        publishes each itself before the next). ``between``: called on this thread after
        each commit and after each ``wake`` (work on the log's connection that publishing
        asks for)."""
        super().__init__(name="auditstream-writer", daemon=True)
        self.sequencer = sequencer
        self.max_queue_events = max_queue_events
        self.on_notices = on_notices
        self.on_commit = on_commit
        self.between = between
        self._published: queue.Queue[_Published | None] | None = None
        self._publisher: threading.Thread | None = None
        if publish_behind > 0:
            self._published = queue.Queue(maxsize=publish_behind)
            self._publisher = threading.Thread(target=self._publish_all, daemon=True,
                                               name="auditstream-publisher")
        self._queue: collections.deque[tuple[Request, Deliver]] = collections.deque()
        self._queued_events = 0
        self._cond = threading.Condition()
        self._closed = False
        self._woken = False

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

    def wake(self) -> None:
        """Have ``between`` run soon, on this thread, even if nothing is queued."""
        with self._cond:
            self._woken = True
            self._cond.notify()

    def stop(self) -> None:
        """Commit what is queued, then end the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self.is_alive():
            self.join()

    def run(self) -> None:
        if self._publisher is None:
            self._run()
            return
        self._publisher.start()
        try:
            self._run()
        finally:
            assert self._published is not None
            self._published.put(None)
            self._publisher.join()
            if self.between is not None:  # for what the last publications asked
                self.between()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed and not self._woken:
                    self._cond.wait()
                self._woken = False
                if not self._queue and self._closed:
                    return  # closed and drained
                group: list[tuple[Request, Deliver]] = []
                n = 0
                while self._queue and n < self.MAX_GROUP_EVENTS:
                    item = self._queue.popleft()
                    group.append(item)
                    n += _size(item[0])
                self._queued_events -= n
            if group:
                self._commit(group)
            if self.between is not None:
                self.between()

    def _commit(self, group: list[tuple[Request, Deliver]]) -> None:
        replies, notices = self.sequencer.apply([r for r, _ in group])
        written = sum(1 for r in replies if r.error is None and isinstance(r.value, list)
                      for a in r.value if a.created)
        if self.on_commit is not None and written:
            self.on_commit(len(group), written)
        done = (notices, [(deliver, reply) for (_, deliver), reply
                          in zip(group, replies, strict=True)])
        if self._published is None:
            self._publish(*done)
        else:
            self._published.put(done)  # waits while publishing is that far behind

    def _publish_all(self) -> None:
        assert self._published is not None
        while (done := self._published.get()) is not None:
            self._publish(*done)

    def _publish(self, notices: list[CommitNotice],
                 deliveries: list[tuple[Deliver, Reply]]) -> None:
        # Notices first: by the time a caller has its reply, its process's feed (and,
        # through the same socket, a worker's) already knows the commit.
        if notices:
            self.on_notices(notices)
        for deliver, reply in deliveries:
            deliver(reply)


#: A commit's notices, and the replies to deliver once they are published.
_Published = tuple[list[CommitNotice], list[tuple[Deliver, Reply]]]


__all__ = ["WriterThread"]
