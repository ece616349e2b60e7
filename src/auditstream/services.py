"""The running services of one app instance, built once by ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass

from .auth.catalog import Catalog
from .auth.principal import Principal
from .auth.tokens import TokenVerifier
from .ingest.pipeline import Ingestor
from .integrity.service import LogService
from .metrics import Metrics
from .settings import Settings
from .store.base import Appended, EventStore
from .stream.hub import StreamHub
from .stream.slots import StreamSlots


@dataclass
class Services:
    settings: Settings
    store: EventStore
    catalog: Catalog
    tokens: TokenVerifier
    ingestor: Ingestor
    metrics: Metrics
    hub: StreamHub
    stream_slots: StreamSlots
    log: LogService | None = None

    async def close(self) -> None:
        await self.hub.close()
        await self.store.close()
        self.catalog.close()
        self.stream_slots.close()

    async def ingest(self, principal: Principal, body: bytes, content_type: str,
                     idempotency_key: str | None = None) -> list[Appended]:
        results = await self.ingestor.ingest(
            principal.tenant, body, content_type, idempotency_key=idempotency_key)
        self.metrics.events_ingested.inc(sum(1 for a in results if a.created))
        return results
