"""``Deliverer``: one integration's loop, in the one process that holds its lock.

Each round reads the integration afresh from the ``StateStore`` (another process may have
paused, changed or deleted it), then does one thing:

1. paused: wait;
2. a dead letter marked for redelivery: send it alone;
3. waiting after a failure: wait until ``retry_at`` (on the injected clock);
4. otherwise read the events after the cursor that match the rule from the event store,
   at most one message's worth, send them, and save the outcome (compare-and-set on the
   cursor, with the attempt and any dead letters, in one step);
5. nothing to send: wait for the commit feed (or a poll interval: another server or the
   CLI may write the same file).

Order and stability: a message holds events in seq order; after a failure its retries send
exactly the same events (``Progress.pending_through``), so its message id, derived from
the integration and the event ids, is the same on every retry. The cursor only moves
after the receiver acknowledged (or the rule passed over) everything up to it: a crash
at any point means the next owner sends again from the cursor (at least once).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from ..query.filter import Cmp, and_
from ..store.base import EventStore
from .clock import Clock
from .integration import Attempt, DeadLetter, Integration, Progress
from .schedule import RetrySchedule
from .sinks import Outcome, Sink, SinkContext
from .state import StateStore

log = logging.getLogger("auditstream.delivery")

#: A deliverer with nothing to do looks at the store and its state at least this often.
POLL_SECONDS = 1.0
#: After a message that took every event there was, wait this long before the next: the
#: events of the commits meanwhile then travel in one message instead of one each (a
#: round per commit cost ingest about a fifth of its rate on 2 cores; bench/push.py).
LINGER_SECONDS = 0.1


def message_id(integration_id: str, event_ids: list[str]) -> str:
    """The id of the message carrying these events for this integration: the same on
    every retry, different for another integration sending the same events."""
    digest = hashlib.sha256("\n".join([integration_id, *event_ids]).encode()).hexdigest()
    return "msg_" + digest[:32]


def build_sink(integration: Integration, context: SinkContext) -> Sink:
    sink = integration.sink
    return sink(sink.Config.model_validate(integration.config), integration.format, context)


class Deliverer:
    def __init__(self, integration: Integration, *, store: EventStore, state: StateStore,
                 context: SinkContext, schedule: RetrySchedule,
                 on_outcome: Callable[[Integration, Outcome, int], None] | None = None):
        self.id = integration.id
        self.tenant = integration.tenant
        self.store = store
        self.state = state
        self.context = context
        self.schedule = schedule
        self.on_outcome = on_outcome
        self.clock: Clock = context.clock
        self.poked = asyncio.Event()
        self.stopping = False
        self._sink: Sink | None = None
        self._sink_key: tuple[Any, ...] | None = None
        #: The last message was accepted and held every matching event there was.
        self._drained = False

    def poke(self) -> None:
        """Look at the state again now (it changed, or the deliverer should stop)."""
        self.poked.set()

    def stop(self) -> None:
        self.stopping = True
        self.poked.set()

    async def run(self) -> None:
        try:
            while not self.stopping:
                integration = await asyncio.to_thread(self.state.get, self.tenant, self.id)
                if integration is None:
                    return  # deleted
                try:
                    await self.round(integration)
                except asyncio.CancelledError:
                    raise
                except Exception:  # a store read failing now may work in a moment
                    log.exception("delivery: integration %s failed a round", self.id)
                    await self._wait(self.clock.sleep_until(self.clock.now() + POLL_SECONDS))
        finally:
            if self._sink is not None:
                await self._sink.aclose()

    async def round(self, integration: Integration) -> bool:
        """One step of the loop; True if it sent something."""
        if not integration.enabled:
            await self._wait(asyncio.sleep(POLL_SECONDS))
            return False
        if await self._redeliver(integration):
            return True
        retry_at = integration.progress.retry_at
        if retry_at is not None and self.clock.now() < retry_at:
            await self._wait(self.clock.sleep_until(min(retry_at, self.clock.now() + POLL_SECONDS)))
            return False
        if await self._deliver(integration):
            if self._drained:
                await self._wait(asyncio.sleep(LINGER_SECONDS))
            return True
        await self._wait(self.store.feed.wait(self.tenant, integration.progress.cursor,
                                              timeout=POLL_SECONDS))
        return False

    async def _wait(self, waiting: Awaitable[Any]) -> None:
        """``waiting``, or less if poked."""
        self.poked.clear()
        tasks = [asyncio.ensure_future(waiting), asyncio.ensure_future(self.poked.wait())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await t

    def _sink_for(self, integration: Integration) -> Sink:
        key = (integration.kind, integration.format, repr(integration.config))
        if self._sink is None or key != self._sink_key:
            old, self._sink = self._sink, build_sink(integration, self.context)
            self._sink_key = key
            if old is not None:
                asyncio.ensure_future(old.aclose())
        return self._sink

    async def _send(self, integration: Integration, events: list[dict[str, Any]],
                    action: str) -> tuple[Outcome, Attempt]:
        sink = self._sink_for(integration)
        mid = message_id(integration.id, [str(e["id"]) for e in events])
        try:
            outcome = await sink.send(events, mid)
        except Exception as exc:  # a sink's bug: shown on the integration, retried
            log.exception("delivery: the %s sink of %s failed", integration.kind, self.id)
            outcome = Outcome(False, error=f"internal error: {type(exc).__name__}: {exc}"[:512])
        if self.on_outcome is not None:
            self.on_outcome(integration, outcome, len(events))
        attempt = Attempt(
            integration_id=integration.id, at=self.clock.now(), action=action,  # type: ignore[arg-type]
            ok=outcome.ok, first_seq=int(events[0]["seq"]), last_seq=int(events[-1]["seq"]),
            events=len(events), status_code=outcome.status_code,
            latency_ms=round(outcome.latency_ms, 3), error=outcome.error, message_id=mid,
            response=outcome.response)
        return outcome, attempt

    async def _deliver(self, integration: Integration) -> bool:
        p = integration.progress
        sink = self._sink_for(integration)
        limit = 1 if p.single > p.cursor else sink.max_batch
        head = await self.store.last_seq(self.tenant)
        through = p.pending_through or head
        where = and_(integration.where(), Cmp("seq", "<=", through))
        events: list[dict[str, Any]] = []
        async for batch in self.store.scan(self.tenant, where, after_seq=p.cursor,
                                           batch=limit):
            events = batch
            break
        if not events:  # nothing up to ``through`` matches (any more): pass over it
            if through > p.cursor:
                await asyncio.to_thread(self.state.save_progress, self.id, p.cursor,
                                        replace(p, cursor=through, pending_through=0))
            return False
        outcome, attempt = await self._send(integration, events, "deliver")
        self._drained = outcome.ok and len(events) < limit
        progress, dead = self._after(p, events, len(events) < limit, through, outcome,
                                     attempt.at)
        await asyncio.to_thread(self.state.save_progress, self.id, p.cursor, progress,
                                attempt=attempt, dead=dead)
        return True

    def _after(self, p: Progress, events: list[dict[str, Any]], exhausted: bool,
               through: int, outcome: Outcome, now: float
               ) -> tuple[Progress, list[DeadLetter]]:
        """The progress after sending ``events`` (``exhausted``: they were every match up
        to ``through``) and the dead letters it makes (see ``delivery.schedule``)."""
        last = int(events[-1]["seq"])
        if outcome.ok:
            cursor = through if exhausted else last
            return Progress(cursor=cursor, single=p.single if p.single > cursor else 0), []
        failures = p.failures + 1
        if outcome.refused and len(events) > 1:  # find the event it refuses, alone
            return Progress(cursor=p.cursor, failures=failures, single=last), []
        refusals = p.refusals + outcome.refused
        if refusals >= self.schedule.max_attempts:
            dead = DeadLetter(self.id, last, str(events[-1]["id"]), failures,
                              outcome.error or "refused", now)
            return Progress(cursor=last, single=p.single if p.single > last else 0), [dead]
        wait = self.schedule.delay(failures, outcome.retry_after)
        return Progress(cursor=p.cursor, failures=failures, retry_at=now + wait,
                        pending_through=last, single=p.single, refusals=refusals), []

    async def _redeliver(self, integration: Integration) -> bool:
        letters = await asyncio.to_thread(self.state.redeliveries, self.id, 1)
        if not letters:
            return False
        letter = letters[0]
        event = await self.store.get(self.tenant, letter.event_id)
        if event is None:
            attempt = Attempt(integration_id=self.id, at=self.clock.now(), action="redeliver",
                              ok=False, first_seq=letter.seq, last_seq=letter.seq,
                              error="the event is no longer stored (purged)")
        else:
            _, attempt = await self._send(integration, [event], "redeliver")
        await asyncio.to_thread(self.state.finish_redelivery, letter, attempt)
        return True


__all__ = ["POLL_SECONDS", "Deliverer", "build_sink", "message_id"]
