"""The raw-SQLite ceiling for ingest: the server's rows, inserted with nothing in between.

The same schema as the server (``schema.migrate`` on a fresh file: the events table, its
indexes, the FTS table and the declared path columns with their partial indexes), the same
connection settings (``schema.connect``, same ``synchronous``), the same INSERT statements,
and rows built the way ``store/sqlite/logstorage.py`` builds them from the same validated,
normalised events. Only ``BEGIN; executemany(events); executemany(fts); COMMIT`` in
10,000-row transactions is timed; building the rows (Python) is timed separately, so the
report can show both the SQLite ceiling and the per-event Python cost of getting there.

With ``integrity`` on (the server's default) each row's body is the RFC 8785 form and
carries its Merkle leaf hash, as the writer's rows do, and the ``merkle_nodes`` rows the
writer adds (about one per event) are inserted in the same transactions but timed apart:
``insert_events_per_s`` is the ceiling as the issue defines it (events + FTS + path
columns), ``insert_with_ledger_events_per_s`` adds the ledger's node rows. The per-commit
signed checkpoint is not included.

``python -m bench.raw_sqlite --events N`` runs it alone on generated events.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from auditstream.dbapi import sqlite3
from auditstream.ingest.pipeline import normalise, parse_body
from auditstream.model.severity import RANK
from auditstream.model.times import now_us, parse_us
from auditstream.settings import Settings
from auditstream.store.sqlite.logstorage import SQLiteLogStorage
from auditstream.store.sqlite.schema import connect, migrate

_SCALARS = (str, int, float)
FTS_SQL = "INSERT INTO events_fts(rowid, title, description) VALUES (?, ?, ?)"
NODES_SQL = "INSERT INTO merkle_nodes(tenant, level, idx, hash) VALUES (?, ?, ?, ?)"


def insert_sql(path_columns: dict[str, str]) -> str:
    """The writer's INSERT (same column order)."""
    cols = ", ".join(path_columns.values())
    marks = ", ".join("?" for _ in path_columns)
    return (
        "INSERT INTO events(rid, tenant, seq, id, ts, received, type, category, severity, "
        "outcome, body, leaf"
        + (", " + cols if cols else "") + ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?"
        + (", " + marks if marks else "") + ")"
    )


class RawLoader:
    """Numbers rows like the writer (per-tenant seq, global rid) and inserts them."""

    def __init__(self, path: str, *, indexed_paths: list[str], synchronous: str,
                 integrity: bool = False):
        self.conn: sqlite3.Connection = connect(path, synchronous=synchronous)
        self.path_columns = migrate(self.conn, indexed_paths)
        self.canonical: Any = None
        self.ranges: dict[str, Any] = {}
        if integrity:
            from auditstream.integrity.merkle import CompactRange, leaf_hash
            from auditstream.store.sqlite.logstorage import SCHEMA as LEDGER_SCHEMA

            try:  # the writer stores the RFC 8785 bytes as the body and hashes them
                from auditstream.integrity.canonical import canonical_json_bytes
            except ImportError:  # older engines: canonical_bytes
                from auditstream.integrity.canonical import canonical_bytes as canonical_json_bytes
            self.conn.executescript(LEDGER_SCHEMA)
            self.canonical = canonical_json_bytes
            self.leaf_hash = leaf_hash
            self.compact_range = CompactRange
        self.path_items = list(self.path_columns.items())
        self.sql = insert_sql(self.path_columns)
        # Same columns as the server's log storage.
        writer_head = SQLiteLogStorage(self.conn, self.path_columns).insert_head
        if not self.sql.startswith(writer_head + " VALUES"):
            raise RuntimeError("bench/raw_sqlite.py is out of date with logstorage.py's INSERT")
        self.next_seq: dict[str, int] = {}
        self.next_rid = 1

    def rows(self, tenant: str, events: list[dict[str, Any]]
             ) -> tuple[list[list[Any]], list[tuple[int, Any, Any]], list[tuple[Any, ...]]]:
        """As the log storage does for events without client ids; plus tree nodes."""
        seq = self.next_seq.get(tenant, 1)
        rid = self.next_rid
        rows: list[list[Any]] = []
        fts: list[tuple[int, Any, Any]] = []
        leaves: list[bytes] = []
        path_items = self.path_items
        canonical = self.canonical
        for ev in events:
            ev["seq"] = seq
            leaf = None
            if canonical is None:
                body = orjson.dumps(ev).decode()
            else:
                data = canonical(ev)
                body = data.decode()
                leaf = self.leaf_hash(data)
                leaves.append(leaf)
            title = ev.get("title")
            desc = ev.get("description")
            row = [
                rid, tenant, seq, ev["id"], parse_us(ev["timestamp"]),
                parse_us(ev["received_at"]), ev["type"],
                ev.get("category"), RANK[ev["severity"]], ev.get("outcome"),
                body, leaf,
            ]
            for path, _col in path_items:
                head, _, rest = path.partition(".")
                val: Any = ev.get(head)
                for seg in rest.split("."):
                    val = val.get(seg) if isinstance(val, dict) else None
                row.append(val if isinstance(val, _SCALARS) and not isinstance(val, bool)
                           else None)
            rows.append(row)
            if title or desc:
                fts.append((rid, title, desc))
            seq += 1
            rid += 1
        self.next_seq[tenant] = seq
        self.next_rid = rid
        nodes: list[tuple[Any, ...]] = []
        if leaves:
            cr = self.ranges.get(tenant)
            if cr is None:
                cr = self.ranges[tenant] = self.compact_range()
            nodes = [(tenant, lvl, idx, h) for lvl, idx, h in cr.extend(leaves) if lvl > 0]
        return rows, fts, nodes

    def insert(self, rows: list[list[Any]], fts: list[tuple[int, Any, Any]],
               nodes: list[tuple[Any, ...]] | None = None) -> tuple[float, float]:
        """One transaction; returns (seconds for events + FTS + commit, seconds for nodes)."""
        conn = self.conn
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(self.sql, rows)
        if fts:
            conn.executemany(FTS_SQL, fts)
        t1 = time.perf_counter()
        if nodes:
            conn.executemany(NODES_SQL, nodes)
        t2 = time.perf_counter()
        conn.execute("COMMIT")
        t3 = time.perf_counter()
        return (t1 - t0) + (t3 - t2), t2 - t1

    def close(self) -> None:
        self.conn.close()


def run(
    path: str,
    batches: Iterable[tuple[str, bytes]],
    *,
    txn_rows: int = 10_000,
    indexed_paths: list[str] | None = None,
    synchronous: str | None = None,
    integrity: bool | None = None,
) -> dict[str, Any]:
    """Load ``(tenant, JSON array body)`` batches into a fresh file at ``path``.

    Bodies go through the server's own ``parse_body`` (validation) and ``normalise``, outside
    the timer, so the rows are byte-for-byte the shape the server stores.
    """
    settings = Settings.from_env()
    if indexed_paths is None:
        indexed_paths = settings.indexed_path_list
    if synchronous is None:
        synchronous = settings.synchronous
    if integrity is None:
        integrity = bool(getattr(settings, "integrity", False))
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    loader = RawLoader(path, indexed_paths=indexed_paths, synchronous=synchronous,
                       integrity=integrity)
    insert_s = 0.0
    nodes_s = 0.0
    n_nodes = 0
    build_s = 0.0
    parse_s = 0.0
    commits = 0
    n = 0
    pending_rows: list[list[Any]] = []
    pending_fts: list[tuple[int, Any, Any]] = []
    pending_nodes: list[tuple[Any, ...]] = []
    txn_times: list[float] = []

    def flush() -> None:
        nonlocal insert_s, nodes_s, n_nodes, commits
        dt, dn = loader.insert(pending_rows, pending_fts, pending_nodes)
        txn_times.append(dt)
        insert_s += dt
        nodes_s += dn
        n_nodes += len(pending_nodes)
        commits += 1
        pending_rows.clear()
        pending_fts.clear()
        pending_nodes.clear()

    wall0 = time.perf_counter()
    for tenant, body in batches:
        t0 = time.perf_counter()
        events = parse_body(body, "application/json", 1_000_000)
        events, _ = normalise(events, tenant=tenant, received_us=now_us())
        t1 = time.perf_counter()
        rows, fts, nodes = loader.rows(tenant, events)
        t2 = time.perf_counter()
        parse_s += t1 - t0
        build_s += t2 - t1
        pending_rows.extend(rows)
        pending_fts.extend(fts)
        pending_nodes.extend(nodes)
        n += len(rows)
        if len(pending_rows) >= txn_rows:
            flush()
    if pending_rows:
        flush()
    wall = time.perf_counter() - wall0
    loader.close()
    size = sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s))
    txn_times.sort()
    return {
        "events": n,
        "transactions": commits,
        "txn_rows": txn_rows,
        "synchronous": synchronous,
        "indexed_paths": len(indexed_paths),
        "insert_seconds": round(insert_s, 3),
        "insert_events_per_s": round(n / insert_s) if insert_s else None,
        "integrity": integrity,
        "merkle_node_rows": n_nodes,
        "insert_nodes_seconds": round(nodes_s, 3),
        "insert_with_ledger_events_per_s": round(n / (insert_s + nodes_s)) if n else None,
        "build_rows_seconds": round(build_s, 3),
        "build_rows_us_per_event": round(build_s / n * 1e6, 2) if n else None,
        "validate_normalise_us_per_event": round(parse_s / n * 1e6, 2) if n else None,
        "insert_plus_build_events_per_s": round(n / (insert_s + build_s)) if n else None,
        "txn_ms_p50": round(txn_times[len(txn_times) // 2] * 1000, 1) if txn_times else None,
        "txn_ms_max": round(txn_times[-1] * 1000, 1) if txn_times else None,
        "wall_seconds": round(wall, 3),
        "db_bytes": size,
    }


def _generated(n: int, seed: int, batch: int = 1000) -> Iterator[tuple[str, bytes]]:
    from .gen import bench_events

    buffers: dict[str, list[dict[str, Any]]] = {}
    for tenant, ev in bench_events(n, seed=seed):
        buf = buffers.setdefault(tenant, [])
        buf.append(ev)
        if len(buf) >= batch:
            yield tenant, orjson.dumps(buf)
            buf.clear()
    for tenant, buf in buffers.items():
        if buf:
            yield tenant, orjson.dumps(buf)


def _main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--db", default="/tmp/auditstream-raw-bench.db")
    args = ap.parse_args()
    batches = list(_generated(args.events, args.seed))
    print(orjson.dumps(run(args.db, batches), option=orjson.OPT_INDENT_2).decode())
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(args.db + suffix):
            os.remove(args.db + suffix)


if __name__ == "__main__":
    _main()
