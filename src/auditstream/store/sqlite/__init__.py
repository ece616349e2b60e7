"""The embedded SQLite backend (WAL, one group-committing writer, a pool of readers)."""

from .store import SQLiteEventStore

__all__ = ["SQLiteEventStore"]
