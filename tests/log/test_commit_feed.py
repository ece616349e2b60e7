"""``CommitFeed`` (log/feed.py) on its own: watermarks that never go back, waiters woken
across threads, a read-then-wait pattern that misses nothing, listeners."""

from __future__ import annotations

import asyncio
import threading

import pytest

from auditstream.log.feed import CommitFeed
from auditstream.log.protocol import CommitNotice

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_the_watermark_only_grows() -> None:
    feed = CommitFeed()
    assert feed.watermark("a") == 0
    feed.publish([CommitNotice("a", 3), CommitNotice("b", 1)])
    feed.publish([CommitNotice("a", 2)])  # a late repeat (a reconnect): ignored
    feed.publish([CommitNotice("a", 3)])
    assert (feed.watermark("a"), feed.watermark("b")) == (3, 1)
    feed.publish([CommitNotice("a", 5), CommitNotice("a", 4)])
    assert feed.watermark("a") == 5


async def test_wait_returns_at_once_when_the_watermark_is_past() -> None:
    """Read the store up to N, then wait for more than N: a commit made in between is not
    missed, because wait answers at once."""
    feed = CommitFeed()
    feed.publish([CommitNotice("a", 7)])
    assert await feed.wait("a", 3) == 7
    assert await feed.wait("a", 6) == 7


async def test_a_waiter_wakes_only_past_its_seq_and_only_for_its_tenant() -> None:
    feed = CommitFeed()
    feed.publish([CommitNotice("a", 2)])
    waiter = asyncio.create_task(feed.wait("a", 4))
    await asyncio.sleep(0)
    feed.publish([CommitNotice("b", 9), CommitNotice("a", 3)])
    feed.publish([CommitNotice("a", 4)])
    await asyncio.sleep(0)
    assert not waiter.done()
    feed.publish([CommitNotice("a", 6)])
    assert await waiter == 6


async def test_publish_from_another_thread_wakes_waiters_on_their_loop() -> None:
    feed = CommitFeed()
    waiters = [asyncio.create_task(feed.wait("a", n)) for n in range(5)]
    await asyncio.sleep(0)
    writer = threading.Thread(target=lambda: [feed.publish([CommitNotice("a", s)])
                                              for s in range(1, 11)])
    writer.start()
    got = await asyncio.gather(*waiters)
    writer.join()
    assert all(n < mark <= 10 for n, mark in enumerate(got))
    assert feed.watermark("a") == 10


async def test_a_waiter_may_give_up() -> None:
    feed = CommitFeed()
    with pytest.raises(TimeoutError):
        await feed.wait("a", 0, timeout=0.01)
    cancelled = asyncio.create_task(feed.wait("a", 0))
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    feed.publish([CommitNotice("a", 1)])  # waking nobody that left is harmless
    assert await feed.wait("a", 0) == 1


@pytest.mark.parametrize("give_up", ["timeout", "cancel"])
async def test_a_waiter_that_gives_up_is_forgotten(give_up: str) -> None:
    feed = CommitFeed()
    for _ in range(3):
        if give_up == "timeout":
            with pytest.raises(TimeoutError):
                await feed.wait("a", 10**12, timeout=0.001)
        else:
            task = asyncio.create_task(feed.wait("a", 10**12))
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert feed._waiters.get("a", []) == []  # noqa: SLF001 (nothing kept for nobody)


def test_listeners_hear_every_notice_until_stopped() -> None:
    feed = CommitFeed()
    heard: list[CommitNotice] = []
    stop = feed.listen(heard.append)
    feed.publish([CommitNotice("a", 1), CommitNotice("b", 1)])
    feed.publish([CommitNotice("a", 2)])
    stop()
    stop()  # twice is harmless
    feed.publish([CommitNotice("a", 3)])
    assert heard == [CommitNotice("a", 1), CommitNotice("b", 1), CommitNotice("a", 2)]


def test_listeners_never_hear_a_repeat_or_an_older_notice() -> None:
    feed = CommitFeed()
    heard: list[CommitNotice] = []
    feed.listen(heard.append)
    feed.publish([CommitNotice("a", 2)])
    feed.publish([CommitNotice("a", 2), CommitNotice("a", 1)])
    assert heard == [CommitNotice("a", 2)]
