"""``Clock``: the time delivery reads and waits on, injected so that retry tests do not
sleep (arroyo's pattern)."""

from __future__ import annotations

import asyncio
import time


class Clock:
    """Wall-clock seconds, and waiting for a point on the same time line.

    Waits take an absolute time, not a duration: a duration turned into a deadline only
    when the waiting coroutine first runs would move if the clock moved in between."""

    def now(self) -> float:
        return time.time()

    async def sleep_until(self, when: float) -> None:
        await asyncio.sleep(max(0.0, when - self.now()))


class ManualClock(Clock):
    """A clock that moves only when ``advance`` is called."""

    def __init__(self, start: float = 1_800_000_000.0):
        self._now = start
        self._moved = asyncio.Condition()

    def now(self) -> float:
        return self._now

    async def sleep_until(self, when: float) -> None:
        async with self._moved:
            await self._moved.wait_for(lambda: self._now >= when)

    async def advance(self, seconds: float) -> None:
        self._now += seconds
        async with self._moved:
            self._moved.notify_all()
        # Let the sleepers that woke run before the caller goes on.
        for _ in range(5):
            await asyncio.sleep(0)


__all__ = ["Clock", "ManualClock"]
