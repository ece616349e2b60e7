"""The per-tenant Merkle log inside the SQLite backend (RFC 9162 tree, signed checkpoints).

Storage: each event row keeps its leaf hash (level 0); ``merkle_nodes`` keeps the perfect
subtree roots of level ``STORED_MIN_LEVEL`` and up, written in the same transaction as the
events that complete them, so appending is O(log n) and a proof reads O(log n) rows. Levels
1–3 are not stored: they would be seven rows for every eight events, and any of them is
recomputed from at most eight leaf rows when a proof needs it. After each commit group the writer
signs one checkpoint per tenant it touched and stores it in ``checkpoints`` (same
transaction): every committed event is covered by a signed checkpoint, which is what lets
``verify`` call any uncovered row a forgery.
"""

from __future__ import annotations

import time
from typing import Any

from ...dbapi import sqlite3
from ...integrity import merkle
from ...integrity.canonical import canonical_bytes
from ...integrity.checkpoint import Signer, format_checkpoint, sign_note
from ...integrity.origin import origin_for
from .bulk import insert_rows

SCHEMA = """
CREATE TABLE IF NOT EXISTS merkle_nodes (
    tenant TEXT NOT NULL,
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (tenant, level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    tenant TEXT NOT NULL,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    note TEXT NOT NULL,
    created INTEGER NOT NULL,
    PRIMARY KEY (tenant, size)
) WITHOUT ROWID;
"""


def idempotency_message(tenant: str, key: str, request_hash: str, response: str,
                        created: int) -> bytes:
    """What the signature of a stored Idempotency-Key answer covers. A retry is answered
    from that row, so it must not be editable by whoever can write the file: repointed
    at other events, made to conflict, or kept past its expiry."""
    return b"auditstream idempotency v1\n" + canonical_bytes(
        [tenant, key, request_hash, response, created])


def leaf_of(event: dict[str, Any]) -> bytes:
    """RFC 9162 leaf hash of the whole canonical event (RFC 8785 bytes)."""
    return merkle.leaf_hash(canonical_bytes(event))


STORED_MIN_LEVEL = 4


class NodeReader:
    """``get_node`` over one connection for one tenant (level 0 from events.leaf)."""

    def __init__(self, conn: sqlite3.Connection, tenant: str):
        self.conn = conn
        self.tenant = tenant

    def __call__(self, level: int, index: int) -> bytes:
        if level == 0:
            row = self.conn.execute(
                "SELECT leaf FROM events WHERE tenant = ? AND seq = ?", (self.tenant, index + 1)
            ).fetchone()
        elif level < STORED_MIN_LEVEL:
            return self._from_leaves(level, index)
        else:
            row = self.conn.execute(
                "SELECT hash FROM merkle_nodes WHERE tenant = ? AND level = ? AND idx = ?",
                (self.tenant, level, index),
            ).fetchone()
        if row is None or row[0] is None:
            raise LookupError(f"merkle node ({level}, {index}) of {self.tenant!r} is missing")
        return bytes(row[0])

    def _from_leaves(self, level: int, index: int) -> bytes:
        first, width = index << level, 1 << level
        rows = self.conn.execute(
            "SELECT leaf FROM events WHERE tenant = ? AND seq > ? AND seq <= ? ORDER BY seq",
            (self.tenant, first, first + width)).fetchall()
        if len(rows) != width or any(r[0] is None for r in rows):
            raise LookupError(f"merkle node ({level}, {index}) of {self.tenant!r} is missing")
        hashes = [bytes(r[0]) for r in rows]
        while len(hashes) > 1:
            hashes = [merkle.node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
        return hashes[0]


class Ledger:
    """Owned by the writer thread: compact ranges per tenant, node rows, checkpoints."""

    def __init__(self, conn: sqlite3.Connection, signer: Signer, deployment: str):
        self.conn = conn
        self.signer = signer
        self.deployment = deployment
        self.ranges: dict[str, merkle.CompactRange] = {}
        conn.executescript(SCHEMA)

    def forget(self) -> None:
        """Drop cached state (another process wrote to the file)."""
        self.ranges.clear()

    def range_for(self, tenant: str, size: int) -> merkle.CompactRange:
        cr = self.ranges.get(tenant)
        if cr is None or cr.size != size:
            cr = merkle.CompactRange.from_nodes(size, NodeReader(self.conn, tenant))
            self.ranges[tenant] = cr
        return cr

    def snapshot(self) -> dict[str, merkle.CompactRange]:
        return {t: cr.copy() for t, cr in self.ranges.items()}

    def restore(self, snap: dict[str, merkle.CompactRange]) -> None:
        self.ranges = snap

    def append(self, tenant: str, size: int, leaves: list[bytes]) -> None:
        """Extend the tenant's tree (currently ``size`` leaves) and store completed nodes."""
        cr = self.range_for(tenant, size)
        rows = [(tenant, lvl, idx, h) for lvl, idx, h in cr.extend(leaves)
                if lvl >= STORED_MIN_LEVEL]
        insert_rows(self.conn, "INSERT INTO merkle_nodes(tenant, level, idx, hash)", rows)

    def sign_idempotency(self, tenant: str, key: str, request_hash: str, response: str,
                         created: int) -> bytes:
        return self.signer.sign(idempotency_message(tenant, key, request_hash, response,
                                                    created))

    def checkpoint(self, tenant: str) -> None:
        """Sign and store the tenant's current tree head."""
        cr = self.ranges[tenant]
        root = cr.root()
        note = sign_note(
            format_checkpoint(origin_for(self.deployment, tenant), cr.size, root), self.signer
        )
        self.conn.execute(
            "INSERT OR REPLACE INTO checkpoints(tenant, size, root, note, created) "
            "VALUES (?, ?, ?, ?, ?)",
            (tenant, cr.size, root, note, int(time.time())),
        )


__all__ = ["Ledger", "NodeReader", "idempotency_message", "leaf_of"]
