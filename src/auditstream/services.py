"""The running services of one app instance, built once by ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass

from .auth.catalog import Catalog
from .auth.principal import Principal
from .auth.tokens import TokenVerifier
from .delivery.service import IntegrationService
from .delivery.supervisor import DeliverySupervisor
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
    #: None where the delivery state cannot be opened (a read-only server, say).
    integrations: IntegrationService | None = None
    #: The deliverers of this process; None where nothing is delivered from it.
    delivery: DeliverySupervisor | None = None

    async def close(self) -> None:
        if self.delivery is not None:
            await self.delivery.stop(self.settings.push_drain_seconds)
        if self.integrations is not None:
            self.integrations.state.close()
        await self.hub.close()
        await self.store.close()
        self.catalog.close()

    async def ingest(self, principal: Principal, body: bytes, content_type: str,
                     idempotency_key: str | None = None) -> list[Appended]:
        results = await self.ingestor.ingest(
            principal.tenant, body, content_type, idempotency_key=idempotency_key)
        self.metrics.events_ingested.inc(sum(1 for a in results if a.created))
        return results
