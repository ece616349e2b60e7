"""``Clock``: the time delivery reads and sleeps on, injected so that retry tests do not
sleep (arroyo's pattern)."""

from __future__ import annotations

import asyncio
import time


class Clock:
    """Wall-clock seconds and a sleep on the same time line."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ManualClock(Clock):
    """A clock that moves only when ``advance`` is called: ``sleep`` returns once the clock
    has been advanced past its deadline."""

    def __init__(self, start: float = 1_800_000_000.0):
        self._now = start
        self._moved = asyncio.Condition()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        deadline = self._now + max(0.0, seconds)
        async with self._moved:
            await self._moved.wait_for(lambda: self._now >= deadline)

    async def advance(self, seconds: float) -> None:
        self._now += seconds
        async with self._moved:
            self._moved.notify_all()
        # Let the sleepers that woke run before the caller goes on.
        for _ in range(5):
            await asyncio.sleep(0)


__all__ = ["Clock", "ManualClock"]
