"""``WriterThread`` (log/writer.py) over the in-memory log: group commit, notices before
replies, a bounded queue that refuses instead of growing, and a stop that drains."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from auditstream.errors import Overloaded, StoreClosed
from auditstream.log.protocol import AppendRequest, CommitNotice, Reply
from auditstream.log.sequencer import Sequencer
from auditstream.log.writer import WriterThread

from .memory import MemoryLogStorage
from .test_sequencer import DEPLOYMENT, HOUR, append, event


class Gate:
    """Holds the writer before its next transaction until ``open``."""

    def __init__(self) -> None:
        self.held = threading.Event()
        self.opened = threading.Event()

    def __call__(self) -> None:
        self.held.set()
        self.opened.wait()

    def open(self) -> None:
        self.opened.set()


class Run:
    def __init__(self, max_queue_events: int = 1000) -> None:
        self.storage = MemoryLogStorage()
        self.gate = Gate()
        self.events: list[object] = []  # notices and replies, in the order they happened
        self.commits: list[tuple[int, int]] = []
        self.writer = WriterThread(
            Sequencer(self.storage, signer=None, deployment=DEPLOYMENT, idempotency_us=HOUR),
            max_queue_events=max_queue_events, on_notices=self.events.extend,
            on_commit=lambda requests, written: self.commits.append((requests, written)))
        self.replies: dict[int, Reply] = {}
        self.done = threading.Semaphore(0)

    def submit(self, n: int, request: AppendRequest) -> None:
        def deliver(reply: Reply) -> None:
            self.events.append(("reply", n))
            self.replies[n] = reply
            self.done.release()

        self.writer.submit(request, deliver)

    def wait(self, replies: int) -> None:
        for _ in range(replies):  # the timeout only turns a hang into a failure
            assert self.done.acquire(timeout=60), "a reply never came"

    def hold(self) -> None:
        """Start the writer and hold it inside its first transaction's ``begin``."""
        self.storage.gate = self.gate
        self.submit(-1, append("a"))
        self.writer.start()
        assert self.gate.held.wait(timeout=60), "the writer never began"
        self.storage.gate = lambda: None


@pytest.fixture
def run() -> Iterator[Run]:
    r = Run()
    yield r
    r.gate.open()
    r.writer.stop()


def test_waiting_requests_are_committed_together(run: Run) -> None:
    run.hold()
    for n in range(10):
        run.submit(n, append("a" if n % 2 else "b"))
    run.gate.open()
    run.wait(11)
    assert run.storage.commits == 2  # the held one, then the ten queued behind it
    assert run.commits == [(1, 1), (10, 10)]
    assert [run.replies[n].result()[0].seq for n in range(10)] == [
        1, 2, 2, 3, 3, 4, 4, 5, 5, 6]


def test_notices_are_published_before_any_reply_of_their_commit(run: Run) -> None:
    run.hold()
    for n in range(4):
        run.submit(n, append("a"))
    run.gate.open()
    run.wait(5)
    assert run.events == [
        CommitNotice("a", 1), ("reply", -1),
        CommitNotice("a", 5), ("reply", 0), ("reply", 1), ("reply", 2), ("reply", 3)]


def test_a_full_queue_refuses_and_loses_nothing_it_accepted() -> None:
    run = Run(max_queue_events=10)
    try:
        run.hold()
        accepted = 0
        with pytest.raises(Overloaded):
            for n in range(100):
                run.submit(n, append("a", *[event("a") for _ in range(3)]))
                accepted += 1
        assert accepted == 3  # 9 events wait; 3 more would pass 10
        run.gate.open()
        run.wait(accepted + 1)
        assert sorted(run.storage.committed.events["a"]) == list(range(1, 3 * accepted + 2))
        run.submit(99, append("a"))  # and it accepts again once drained
        run.wait(1)
    finally:
        run.gate.open()
        run.writer.stop()


def test_one_request_larger_than_the_queue_is_taken_when_the_queue_is_empty() -> None:
    run = Run(max_queue_events=2)
    run.writer.start()
    try:
        run.submit(0, append("a", *[event("a") for _ in range(5)]))
        run.wait(1)
        assert [a.seq for a in run.replies[0].result()] == [1, 2, 3, 4, 5]
    finally:
        run.writer.stop()


def test_stop_commits_what_is_queued_then_refuses(run: Run) -> None:
    run.hold()
    for n in range(5):
        run.submit(n, append("a"))
    stopper = threading.Thread(target=run.writer.stop)
    stopper.start()
    run.gate.open()
    stopper.join()
    assert sorted(run.replies) == [-1, 0, 1, 2, 3, 4]
    assert all(r.error is None for r in run.replies.values())
    with pytest.raises(StoreClosed):
        run.submit(9, append("a"))


def test_a_group_is_bounded(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(WriterThread, "MAX_GROUP_EVENTS", 4)
    run.hold()
    for n in range(6):
        run.submit(n, append("a", event("a"), event("a")))
    run.gate.open()
    run.wait(7)
    assert [requests for requests, _ in run.commits] == [1, 2, 2, 2]
