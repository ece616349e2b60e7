"""The cleanest rollback someone with the file can do (shared by the tamper tests)."""

from __future__ import annotations

from auditstream.dbapi import sqlite3
from auditstream.store.sqlite.rollup import recount_sql


def roll_back(conn: sqlite3.Connection, keep: int, tenant: str = "acme") -> None:
    """Remove the tenant's events after seq ``keep`` with everything that mentions them,
    consistently: rows, full-text rows, tree nodes, checkpoints and rollup counts."""
    conn.execute("DELETE FROM events_fts WHERE rowid IN "
                 "(SELECT rid FROM events WHERE tenant=? AND seq > ?)", (tenant, keep))
    conn.execute("DELETE FROM events WHERE tenant=? AND seq > ?", (tenant, keep))
    conn.execute("DELETE FROM merkle_nodes WHERE tenant=? AND (idx + 1) << level > ?",
                 (tenant, keep))
    conn.execute("DELETE FROM checkpoints WHERE tenant=? AND size > ?", (tenant, keep))
    conn.execute("DELETE FROM idempotency WHERE tenant=?", (tenant,))
    conn.execute("DELETE FROM rollup_day")
    conn.execute(f"INSERT INTO rollup_day {recount_sql()}")
