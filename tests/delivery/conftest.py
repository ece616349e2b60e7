"""Fixtures of the delivery tests: a real event store, state store and receiver, a
manual clock, and the supervisor that delivers from them."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from auditstream.delivery.clock import ManualClock
from auditstream.delivery.guard import DestinationPolicy
from auditstream.delivery.integration import Integration
from auditstream.delivery.schedule import RetrySchedule
from auditstream.delivery.service import IntegrationService
from auditstream.delivery.sinks import SinkContext
from auditstream.delivery.sqlite_state import SQLiteStateStore
from auditstream.delivery.supervisor import DeliverySupervisor
from auditstream.model.ids import new_event_id
from auditstream.model.times import format_us, now_us
from auditstream.store.sqlite import SQLiteEventStore

from .receiver import Answer, Received, Receiver

__all__ = ["Answer", "Harness", "Receiver", "Received"]

MAX_ATTEMPTS = 3


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


@dataclass
class Harness:
    store: SQLiteEventStore
    state: SQLiteStateStore
    clock: ManualClock
    service: IntegrationService
    supervisor: DeliverySupervisor
    tmp: Path

    async def ingest(self, tenant: str, n: int, **fields: Any) -> list[int]:
        events = [{"id": new_event_id(), "tenant": tenant, "timestamp": format_us(now_us()),
                   "received_at": format_us(now_us()), "type": fields.get("type", "user.login"),
                   "severity": fields.get("severity", "info"), "title": f"event {i}",
                   **{k: v for k, v in fields.items() if k not in ("type", "severity")}}
                  for i in range(n)]
        return [a.seq for a in await self.store.append(tenant, events)]

    async def create(self, tenant: str, url: str, **doc: Any) -> dict[str, Any]:
        config = doc.pop("config", {})
        return await self.service.create(tenant, {
            "name": "test", "kind": "webhook", "config": {"url": url, **config}, **doc})

    def get(self, tenant: str, integration_id: str) -> Integration:
        found = self.state.get(tenant, integration_id)
        assert found is not None
        return found


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    store = SQLiteEventStore(tmp_path / "events.db")
    state = SQLiteStateStore(tmp_path / "events.db.delivery")
    clock = ManualClock()
    context = SinkContext(policy=DestinationPolicy("127.0.0.1"), clock=clock, timeout=2.0)
    supervisor = DeliverySupervisor(
        store=store, state=state, context=context,
        schedule=RetrySchedule(1.0, 600.0, MAX_ATTEMPTS, rng=random.Random(7)),
        locks_dir=tmp_path / "locks")
    service = IntegrationService(state, store, context, supervisor)
    supervisor.start()
    yield Harness(store, state, clock, service, supervisor, tmp_path)
    await supervisor.stop(2.0)
    state.close()
    await store.close()
