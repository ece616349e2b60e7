"""``LogStorage`` on a SQLite file: the log and the index in one transaction.

An entry is one ``events`` row (body, leaf, and the index columns ``row_values``
derived), its full-text row and its hourly rollup count. Merkle subtree hashes are stored
from level ``STORED_MIN_LEVEL`` up: levels 1–3 would be seven rows for every eight events,
and any of them is recomputed from at most eight leaves when a proof needs it.

With a ``BodySource`` (the clickhouse backend's index), ``drop_bodies`` forgets the
bodies of entries the index has confirmed: the row keeps its seq, id, columns and leaf,
its body becomes ``''`` (never a stored body: those are JSON objects) and its full-text
row and path columns go; ``dropped_bodies`` records up to which seq, so that ``verify``
tells a dropped body from an erased one. Whatever the sequencer reads of a dropped entry
(a re-sent client id, a redaction) is read back from the source and checked against the
entry's leaf.

The writer numbers rows (``rid``) itself, so full-text rows get the same rowid without
reading anything back; another process writing the file (the CLI) is noticed through
``PRAGMA data_version`` at the next ``begin``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ...dbapi import sqlite3
from ...errors import StoreError
from ...integrity import merkle
from ...integrity.redaction import RECORD_TYPE
from ...log.prepared import segments
from ...log.storage import Entry, LogStorage
from . import rollup
from .bulk import insert_rows

log = logging.getLogger("auditstream")

SCHEMA = """
CREATE TABLE IF NOT EXISTS merkle_nodes (
    tenant TEXT NOT NULL,
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (tenant, level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dropped_bodies (
    tenant TEXT NOT NULL PRIMARY KEY,
    upto INTEGER NOT NULL
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

STORED_MIN_LEVEL = 4

#: Where a log reads the bodies it dropped: ``(tenant, seqs)`` → seq → stored bytes.
BodySource = Callable[[str, list[int]], dict[int, bytes]]
#: What a dropped entry stores as its body.
DROPPED = ""


def dropped_upto(conn: sqlite3.Connection, tenant: str) -> int:
    """The last seq whose body the log dropped (``drop_bodies``), 0 for none."""
    try:
        row = conn.execute("SELECT upto FROM dropped_bodies WHERE tenant = ?",
                           (tenant,)).fetchone()
    except sqlite3.OperationalError:  # a file from before dropped bodies, opened read-only
        return 0
    return int(row[0]) if row and isinstance(row[0], int) else 0


def has_dropped_bodies(conn: sqlite3.Connection) -> bool:
    """Whether the log dropped any body (``drop_bodies``)."""
    try:
        return conn.execute("SELECT 1 FROM dropped_bodies LIMIT 1").fetchone() is not None
    except sqlite3.OperationalError:  # no such table: a file from before dropped bodies
        return False


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


class SQLiteLogStorage(LogStorage):
    """Owned by the writer thread (``check_same_thread`` is off for its hand-over)."""

    def __init__(self, conn: sqlite3.Connection, path_columns: dict[str, str], *,
                 dropped: BodySource | None = None):
        """``dropped``: where the bodies ``drop_bodies`` forgot are read back from."""
        self.conn = conn
        self.dropped = dropped
        self.path_items = list(path_columns.items())
        self.path_segments = segments([p for p, _ in self.path_items])
        cols = "".join(", " + col for _, col in self.path_items)
        self.insert_head = (
            "INSERT INTO events(rid, tenant, seq, id, ts, received, type, category, severity, "
            f"outcome, body, leaf{cols})")
        self.blank_paths = "".join(f", {col} = NULL" for _, col in self.path_items)
        self.next_rid = self._max_rid() + 1
        self.data_version = conn.execute("PRAGMA data_version").fetchone()[0]
        self._rid_at_begin = self.next_rid
        #: (next rid, entries appended) at each open savepoint
        self._saved: list[tuple[int, int]] = []
        #: Called after each commit with what it appended, ``(tenant, entries)`` in order
        #: (the clickhouse backend's indexer takes them rather than reading them back).
        self.on_committed: Callable[[list[tuple[str, list[Entry]]]], None] | None = None
        self._appended: list[tuple[str, list[Entry]]] = []
        # Planner statistics: without them SQLite picks the time index over a selective
        # one on cursor pages (100x slower at 1M rows). Re-analysed as the table grows.
        self.rows_at_analyze = 0
        self.written_since_analyze = 0
        self.analyze()

    def _max_rid(self) -> int:
        return int(self.conn.execute("SELECT MAX(rid) FROM events").fetchone()[0] or 0)

    # -- transactions -------------------------------------------------------------------

    def begin(self) -> bool:
        self.conn.execute("BEGIN IMMEDIATE")
        # data_version changes only when *another* connection commits, and we hold the
        # write lock now, so what we read stays true until our commit.
        version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        changed = version != self.data_version
        if changed:
            self.data_version = version
            self.next_rid = self._max_rid() + 1
        self._rid_at_begin = self.next_rid
        self._appended = []
        return changed

    def commit(self) -> None:
        self.conn.execute("COMMIT")
        appended, self._appended = self._appended, []
        if appended and self.on_committed is not None:
            try:
                self.on_committed(appended)
            except Exception:  # noqa: BLE001 (committed: a raise here would have the
                # sequencer take the group as unwritten and append it again)
                log.exception("handing a commit's entries over failed; they are read "
                              "back from the log")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        self.next_rid = self._rid_at_begin
        self._saved.clear()
        self._appended = []

    def savepoint(self) -> None:
        self.conn.execute("SAVEPOINT job")
        self._saved.append((self.next_rid, len(self._appended)))

    def release(self) -> None:
        self.conn.execute("RELEASE job")
        self._saved.pop()

    def rollback_to(self) -> None:
        self.conn.execute("ROLLBACK TO job")
        self.conn.execute("RELEASE job")
        self.next_rid, appended = self._saved.pop()
        del self._appended[appended:]

    def after_commit(self, written: int) -> None:
        self.written_since_analyze += written
        if self.written_since_analyze >= max(5_000, self.rows_at_analyze // 2):
            self.analyze()

    def analyze(self) -> None:
        """Refresh statistics (sampled: ``analysis_limit`` keeps it to milliseconds). A full
        disk only means they wait."""
        try:
            self.conn.execute("PRAGMA analysis_limit=1000")
            self.conn.execute("ANALYZE")
        except sqlite3.OperationalError as exc:
            log.warning("ANALYZE failed (%s); planner statistics not refreshed", exc)
            return
        self.rows_at_analyze = self._max_rid()
        self.written_since_analyze = 0

    # -- reads --------------------------------------------------------------------------

    def last_seq(self, tenant: str) -> int:
        row = self.conn.execute("SELECT MAX(seq) FROM events WHERE tenant = ?", (tenant,))
        return int(row.fetchone()[0] or 0)

    def node(self, tenant: str, level: int, index: int) -> bytes:
        return NodeReader(self.conn, tenant)(level, index)

    def bodies_by_id(self, tenant: str, ids: list[str]) -> dict[str, tuple[int, bytes]]:
        rows: list[tuple[str, int, str, bytes | None]] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            rows += self.conn.execute(
                f"SELECT id, seq, body, leaf FROM events WHERE tenant = ? AND id IN ({marks})",
                (tenant, *chunk)).fetchall()
        bodies = self._bodies(tenant, [(seq, body, leaf) for _, seq, body, leaf in rows])
        return {eid: (seq, bodies[seq]) for eid, seq, _, _ in rows}

    def entries(
        self, tenant: str, *, event_id: str | None = None, seqs: tuple[int, ...] = (),
    ) -> list[tuple[int, bytes, bytes | None]]:
        if event_id is not None:
            rows = self.conn.execute(
                "SELECT seq, body, leaf FROM events WHERE tenant = ? AND id = ?",
                (tenant, event_id)).fetchall()
        else:
            marks = ",".join("?" * len(seqs))
            rows = self.conn.execute(
                f"SELECT seq, body, leaf FROM events WHERE tenant = ? AND seq IN ({marks}) "
                "ORDER BY seq", (tenant, *seqs)).fetchall()
        bodies = self._bodies(tenant, rows)
        return [(seq, bodies[seq], bytes(leaf) if leaf is not None else None)
                for seq, _, leaf in rows]

    def _bodies(self, tenant: str, rows: list[tuple[int, str, bytes | None]]
                ) -> dict[int, bytes]:
        """seq → body of ``(seq, stored body, leaf)`` rows, dropped ones read back."""
        out = {seq: body.encode() if isinstance(body, str) else bytes(body)
               for seq, body, _ in rows if body != DROPPED}
        gone = {seq: leaf for seq, body, leaf in rows if body == DROPPED}
        if not gone:
            return out
        if self.dropped is None:
            raise StoreError(f"tenant {tenant!r}: seq {min(gone)}'s body was dropped from the "
                             "log, and this store has no index to read it from")
        back = self.dropped(tenant, sorted(gone))
        for seq, leaf in gone.items():
            # The index is not the log: a copy that does not hash to the leaf is refused.
            body = back.get(seq)
            if body is None or leaf is None or merkle.leaf_hash(body) != bytes(leaf):
                raise StoreError(f"tenant {tenant!r}: the index's copy of seq {seq}, whose "
                                 "body the log dropped, is missing or does not match its "
                                 "leaf (auditstream verify)")
            out[seq] = body
        return out

    def idempotency(self, tenant: str, key: str) -> tuple[str, str, int] | None:
        row = self.conn.execute(
            "SELECT request_hash, response, created FROM idempotency WHERE tenant = ? "
            "AND key = ?", (tenant, key)).fetchone()
        return (row[0], row[1], row[2]) if row else None

    # -- writes -------------------------------------------------------------------------

    def append(self, tenant: str, entries: list[Entry]) -> None:
        rid = self.next_rid
        rows = []
        text = []
        width = len(self.path_items)
        for ev, seq, body, leaf in entries:
            if len(ev.paths) != width:
                raise StoreError("an event was prepared for other declared paths than the "
                                 "writer's (AUDITSTREAM_INDEXED_PATHS differs between "
                                 "processes): restart the server")
            rows.append((rid, tenant, seq, *ev.columns, body.decode(), leaf, *ev.paths))
            title, description = ev.text
            if title or description:
                text.append((rid, title, description))
            rid += 1
        insert_rows(self.conn, self.insert_head, rows)
        insert_rows(self.conn, rollup.UPSERT_HEAD, rollup.count_rows(tenant, rows),
                    rollup.UPSERT_TAIL)
        insert_rows(self.conn, "INSERT INTO events_fts(rowid, title, description)", text)
        self.next_rid = rid
        if self.on_committed is not None:
            self._appended.append((tenant, entries))

    def put_nodes(self, tenant: str, nodes: list[tuple[int, int, bytes]]) -> None:
        insert_rows(self.conn, "INSERT INTO merkle_nodes(tenant, level, idx, hash)",
                    [(tenant, lvl, idx, h) for lvl, idx, h in nodes if lvl >= STORED_MIN_LEVEL])

    def put_checkpoint(self, tenant: str, size: int, root: bytes, note: str,
                       created_us: int) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO checkpoints(tenant, size, root, note, created) "
            "VALUES (?, ?, ?, ?, ?)", (tenant, size, root, note, created_us // 1_000_000))

    def put_idempotency(self, tenant: str, key: str, request_hash: str, answer: str,
                        created: int, sig: bytes | None) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO idempotency(tenant, key, request_hash, response, created, "
            "sig) VALUES (?, ?, ?, ?, ?, ?)", (tenant, key, request_hash, answer, created, sig))

    def expire_idempotency(self, before_us: int) -> int:
        return self.conn.execute("DELETE FROM idempotency WHERE created < ?",
                                 (before_us,)).rowcount

    def thin_checkpoints(self) -> int:
        return self.conn.execute("""
            DELETE FROM checkpoints WHERE (tenant, size) IN (
              SELECT tenant, size FROM checkpoints c
              WHERE (size & (size - 1)) != 0
                AND size < (SELECT MAX(size) FROM checkpoints m WHERE m.tenant = c.tenant)
                AND size < (SELECT MAX(size) FROM checkpoints h WHERE h.tenant = c.tenant
                            AND h.created / 3600 = c.created / 3600))""").rowcount

    def replace_content(self, tenant: str, seq: int, stub: bytes) -> None:
        (rid,) = self.conn.execute("SELECT rid FROM events WHERE tenant = ? AND seq = ?",
                                   (tenant, seq)).fetchone()
        self.conn.execute(f"UPDATE events SET body = ?{self.blank_paths} WHERE rid = ?",
                          (stub.decode(), rid))
        self.conn.execute("DELETE FROM events_fts WHERE rowid = ?", (rid,))

    # -- dropped bodies (not part of ``LogStorage``: the clickhouse backend's) ------------

    def dropped_upto(self, tenant: str) -> int:
        return dropped_upto(self.conn, tenant)

    def drop_bodies(self, tenant: str, upto: int) -> int:
        """Forget the bodies of the tenant's entries up to ``upto`` (which the index holds);
        in a transaction of its own, between the writer's. Signed entries only (the leaf
        is what proves the index's copy), and neither redaction stubs nor records: they
        are small, and they are what proves the log's erasures. Returns how many."""
        rows = ("SELECT rid FROM events WHERE tenant = ? AND seq > ? AND seq <= ? AND "
                "leaf IS NOT NULL AND type != ? AND CASE WHEN body = '' THEN 0 "
                "ELSE json_type(body, '$.redacted') IS NULL END")
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            # Read under the write lock: another writer of the file may have dropped since.
            after = self.dropped_upto(tenant)
            if upto <= after:
                self.conn.execute("ROLLBACK")
                return 0
            args = (tenant, after, upto, RECORD_TYPE)
            # Rows taken out and put back slim, rather than updated in place: an update
            # leaves each page as large as it was (SQLite rebalances pages that empty,
            # not pages that shrink), so the file would keep the bodies' space unused.
            self.conn.execute("DROP TABLE IF EXISTS temp.slim")
            self.conn.execute(f"CREATE TEMP TABLE slim AS SELECT * FROM events "
                              f"WHERE rid IN ({rows})", args)
            self.conn.execute(f"UPDATE temp.slim SET body = ?{self.blank_paths}", (DROPPED,))
            self.conn.execute("DELETE FROM events_fts WHERE rowid IN (SELECT rid FROM "
                              "temp.slim)")
            self.conn.execute("DELETE FROM events WHERE rid IN (SELECT rid FROM temp.slim)")
            n = self.conn.execute("INSERT INTO events SELECT * FROM temp.slim").rowcount
            self.conn.execute("DROP TABLE temp.slim")
            self.conn.execute("INSERT OR REPLACE INTO dropped_bodies(tenant, upto) "
                              "VALUES (?, ?)", (tenant, upto))
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        return n


__all__ = ["DROPPED", "SCHEMA", "STORED_MIN_LEVEL", "BodySource", "NodeReader",
           "SQLiteLogStorage", "dropped_upto", "has_dropped_bodies"]
