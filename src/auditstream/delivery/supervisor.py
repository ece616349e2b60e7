"""``DeliverySupervisor``: which process delivers which integration, and its deliverers'
lives (start, stop, drain), in the server's lifespan.

Exactly one process delivers a given integration, also with several HTTP workers and
also with two servers on the same files: a deliverer runs only while its process holds
an exclusive ``flock`` on ``<state file>.locks/<integration id>``. The kernel drops the
lock when the process exits, however it exits, and the next supervisor to look (every
``POLL_SECONDS``) takes the integration over from its cursor: no messages between
processes, no lease to expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import Callable
from pathlib import Path

from ..store.base import EventStore
from .deliverer import POLL_SECONDS, Deliverer
from .integration import Integration
from .schedule import RetrySchedule
from .sinks import Outcome, SinkContext
from .state import StateStore

log = logging.getLogger("auditstream.delivery")


class DeliverySupervisor:
    def __init__(self, *, store: EventStore, state: StateStore, context: SinkContext,
                 schedule: RetrySchedule, locks_dir: str | Path,
                 on_outcome: Callable[[Integration, Outcome, int], None] | None = None):
        self.store = store
        self.state = state
        self.context = context
        self.schedule = schedule
        self.locks = Path(locks_dir)
        self.on_outcome = on_outcome
        self.running: dict[str, tuple[Deliverer, asyncio.Task[None], int]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.locks.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._task = asyncio.create_task(self._run(), name="delivery-supervisor")

    def poke(self, integration_id: str | None = None) -> None:
        """An integration changed (here): its deliverer, or the claim loop, looks now."""
        entry = self.running.get(integration_id or "")
        if entry is not None:
            entry[0].poke()
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self.claim()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delivery: claiming integrations failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)

    async def claim(self) -> None:
        """Start a deliverer for each integration no process delivers; forget the ones
        whose deliverer ended (deleted)."""
        for iid, (_, task, held) in list(self.running.items()):
            if task.done():
                del self.running[iid]
                os.close(held)  # releases the lock
        for integration in await asyncio.to_thread(self.state.all):
            if integration.id in self.running:
                continue
            fd = self._lock(integration.id)
            if fd is None:
                continue  # another process delivers it
            deliverer = Deliverer(integration, store=self.store, state=self.state,
                                  context=self.context, schedule=self.schedule,
                                  on_outcome=self.on_outcome)
            task = asyncio.create_task(deliverer.run(), name=f"deliver-{integration.id}")
            self.running[integration.id] = (deliverer, task, fd)

    def _lock(self, integration_id: str) -> int | None:
        fd = os.open(self.locks / integration_id, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    async def stop(self, drain_seconds: float) -> None:
        """Stop claiming; let each deliverer finish the message it is sending (up to
        ``drain_seconds``), then cancel what is left. Nothing is lost either way: an
        unsaved message is sent again from the cursor by the next owner."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for deliverer, _, _ in self.running.values():
            deliverer.stop()
        tasks = [task for _, task, _ in self.running.values()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=drain_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for _, _, fd in self.running.values():
            os.close(fd)
        self.running.clear()


__all__ = ["DeliverySupervisor"]
