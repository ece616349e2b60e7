"""The embedded SQLite backend (WAL, one group-committing writer, a pool of readers)."""

from .store import SQLiteEventStore, open_log

__all__ = ["SQLiteEventStore", "open_log"]
