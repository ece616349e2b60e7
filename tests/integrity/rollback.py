"""The cleanest rollback someone with the file can do (shared by the tamper tests)."""

from __future__ import annotations

from auditstream.dbapi import sqlite3

HOUR = 3_600_000_000


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
    conn.execute("DELETE FROM rollup_hour")
    h = HOUR
    conn.execute(f"INSERT INTO rollup_hour SELECT tenant, ts - ((ts % {h}) + {h}) % {h}, type, "
                 "IFNULL(category, ''), severity, IFNULL(outcome, ''), COUNT(*) FROM events "
                 "GROUP BY 1, 2, 3, 4, 5, 6")
