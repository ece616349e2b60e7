"""The event index on ClickHouse (clickhouse-connect: a server, a cluster, or embedded chdb),
with the event log on SQLite: see ``store.ClickHouseEventStore``."""

from .store import ClickHouseEventStore

__all__ = ["ClickHouseEventStore"]
