"""``verify`` of the ClickHouse index: every row a reader can see is the log's entry.

The log (SQLite) is proven by ``store.sqlite.audit.verify_db`` (leaf hashes, the tree,
signed checkpoints, redaction records). The index holds derived copies, so proving it is
re-deriving it: for every tenant, the rows that ``FINAL`` serves up to the watermark must
be exactly one per seq 1..watermark, each byte for byte the row ``transfer.index_row``
makes from the log's verified body (body, columns, search words). An edited body, type,
timestamp or word list, a deleted or added row, or a watermark beyond the log is found.

Where the log dropped a body (``logstorage.drop_bodies``), the index's is the only copy:
it must hash to the log's leaf, and ``dropped_bodies`` hands it to the log's ``verify``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from ...dbapi import sqlite3
from ...homes import TenantHomes
from ...integrity import merkle
from ...integrity.logcheck import Problem
from ..sqlite.logstorage import has_dropped_bodies
from . import rollup
from .engine import READ_SETTINGS, Engine, path_columns, path_expr
from .transfer import COLUMNS, index_row

_RAW = {"body": "bytes"}


def verify_index(engine: Engine, log_path: str, *, homes: TenantHomes | None = None,
                 limit: int = 100) -> list[Problem]:
    """Problems found (at most ``limit``), none when the index is the log's.

    Only the tenants of this node's log, and those ``homes`` says it owns, are checked:
    another node's tenants are that node's to prove (their log is there). The hourly
    counts (``rollup``) are recounted from the log, in every block size the index has."""
    homes = homes or TenantHomes()
    problems: list[Problem] = []
    conn = sqlite3.connect(f"file:{log_path}?mode=ro", uri=True)
    try:
        tails = dict(conn.execute("SELECT tenant, MAX(seq) FROM events GROUP BY tenant"))
        with engine.client() as c:
            marks = dict(c.query(f"SELECT tenant, max(seq) FROM {engine.db}.watermarks "
                                 "GROUP BY tenant").result_rows)
            blocks = [int(name.rpartition("_")[2]) for (name,) in c.query(
                "SELECT name FROM system.tables WHERE database = {d:String} AND "
                "match(name, '^hourly_[0-9]+$')", parameters={"d": engine.db}).result_rows]
            if not blocks:
                problems.append(Problem(None, None, "the index has no hourly counts table "
                                        "(auditstream migrate makes it)"))
            problems += _path_columns(c, engine.db)
            if has_dropped_bodies(conn):
                problems += _durable_inserts(c, engine.db)
            for tenant in sorted(set(tails) | {t for t in marks if homes.owns(t)}):
                wm, tail = int(marks.get(tenant, 0)), int(tails.get(tenant, 0))
                if wm > tail:
                    problems.append(Problem(tenant, None, f"index watermark {wm} is beyond "
                                            f"the log ({tail})"))
                _tenant(c, engine.db, conn, tenant, min(wm, tail), problems, limit)
                for block in blocks:
                    _counts(c, engine.db, conn, tenant, min(wm, tail), block, problems)
                if len(problems) >= limit:
                    break
    finally:
        conn.close()
    return problems[:limit]


def dropped_bodies(engine: Engine) -> Callable[[str, int], Iterator[tuple[int, bytes]]]:
    """``verify_db``'s source of the bodies the log dropped: the index's rows as readers
    see them, seq 1..upto in order."""
    def read(tenant: str, upto: int) -> Iterator[tuple[int, bytes]]:
        with engine.client() as c, c.query_rows_stream(
                f"SELECT seq, body FROM {engine.db}.events FINAL WHERE tenant = {{t:String}} "
                "AND seq <= {u:UInt64} ORDER BY seq", parameters={"t": tenant, "u": upto},
                column_formats=_RAW, settings=READ_SETTINGS) as stream:
            for seq, body in stream:
                yield int(seq), bytes(body)

    return read


def _tenant(c: Any, db: str, conn: sqlite3.Connection, tenant: str, wm: int,
            problems: list[Problem], limit: int) -> None:
    expected = 1
    cols = ", ".join(COLUMNS)
    log_rows = conn.execute(
        "SELECT seq, CAST(body AS BLOB), leaf FROM events WHERE tenant = ? AND seq <= ? "
        "ORDER BY seq", (tenant, wm))
    with c.query_rows_stream(
            f"SELECT {cols} FROM {db}.events FINAL WHERE tenant = {{t:String}} AND "
            "seq <= {wm:UInt64} ORDER BY seq", parameters={"t": tenant, "wm": wm},
            column_formats=_RAW, settings=READ_SETTINGS) as stream:
        for row in stream:
            seq = int(row[1])
            if seq != expected:
                problems.append(Problem(tenant, expected, f"the index has seq {seq} here (a "
                                        "row is missing or added)"))
                return
            logged = next(log_rows, None)
            if logged is None or logged[0] != seq:
                problems.append(Problem(tenant, seq, "in the index but not in the log"))
                return
            got = [*row[:10], bytes(row[10]), row[11]]
            body = bytes(logged[1])
            if not body:  # dropped: the index's copy is the body, if the leaf says so
                body = got[10]
                if logged[2] is None or merkle.leaf_hash(body) != bytes(logged[2]):
                    problems.append(Problem(tenant, seq, "the index's copy of a body the log "
                                            "dropped does not match its leaf (edited)"))
                    if len(problems) >= limit:
                        return
                    expected += 1
                    continue
            want = index_row(tenant, seq, body, ver=int(row[4]))
            if got != want:
                diff = [name for name, a, b in zip(COLUMNS, got, want, strict=True) if a != b]
                problems.append(Problem(tenant, seq, "the index row differs from the log "
                                        f"({', '.join(diff)})"))
                if len(problems) >= limit:
                    return
            expected += 1
    if expected - 1 != wm:
        problems.append(Problem(tenant, expected, f"the index holds seqs 1..{expected - 1} "
                                f"of 1..{wm}"))


def _durable_inserts(c: Any, db: str) -> list[Problem]:
    """Once the log dropped bodies, the index's copy is the only one: ``events`` must
    fsync its inserts (``Engine.fsync_inserts``). Turning that off changes no byte, so
    nothing else here would see it; a power cut would lose acknowledged events."""
    rows = c.query("SELECT create_table_query FROM system.tables WHERE database = {d:String} "
                   "AND name = 'events'", parameters={"d": db}).result_rows
    query = rows[0][0] if rows else ""
    missing = [s for s in ("fsync_after_insert = 1", "fsync_part_directory = 1")
               if s not in query]
    if not missing:
        return []
    return [Problem(None, None, "the log dropped bodies that only the index holds, and the "
                    f"index's events table lacks {', '.join(missing)}: its inserts are not "
                    "durable when acknowledged (auditstream serve with "
                    "AUDITSTREAM_DROP_INDEXED_BODIES sets them back)")]


def _path_columns(c: Any, db: str) -> list[Problem]:
    """Each path column readers filter by (``engine.PATH_COLUMN``) holds, row by row, the
    path's string in the row's body: an altered expression, or values materialized under
    another one and the expression put back, would make filters see what no body says."""
    problems = []
    stored = dict(c.query("SELECT name, default_expression FROM system.columns WHERE "
                          "database = {d:String} AND table = 'events'",
                          parameters={"d": db}).result_rows)
    for path, col in sorted(path_columns(c, db).items()):
        expr = path_expr(path)
        if stored.get(col) != expr:  # rows inserted from now on would get other values
            problems.append(Problem(None, None, f"the index's column of {path!r} ({col}) "
                                    "is computed by another expression than auditstream's"))
            continue
        rows = c.query(
            f"SELECT tenant, seq FROM {db}.events FINAL WHERE ({col} IS NULL) != "
            f"(({expr}) IS NULL) OR ifNull({col} != {expr}, 0) ORDER BY tenant, seq LIMIT 1",
            settings=READ_SETTINGS).result_rows
        if rows:
            problems.append(Problem(rows[0][0], int(rows[0][1]), f"the index's column of "
                                    f"{path!r} ({col}) differs from the body"))
    return problems


def _counts(c: Any, db: str, conn: sqlite3.Connection, tenant: str, wm: int, block: int,
            problems: list[Problem]) -> None:
    """The rollup rows readers use (complete blocks at or below the watermark)."""
    want = rollup.recount(conn, tenant, wm, block)
    got: Counter[tuple[int, rollup.Key]] = Counter()
    for blk, hour, type_, category, sev, outcome, n in c.query(
            f"SELECT block, hour, type, category, sev, outcome, n FROM {db}."
            f"{rollup.table(block)} FINAL WHERE tenant = {{t:String}} AND block < {{b:UInt64}}",
            parameters={"t": tenant, "b": wm // block}).result_rows:
        got[int(blk), (int(hour), type_, category, int(sev), outcome)] = int(n)
    if got != want:
        blk, key = min(k for k in set(got) | set(want) if got[k] != want[k])
        problems.append(Problem(tenant, blk * block + 1, f"the hourly counts of block {blk} "
                                f"differ from the log at {key}: {got[blk, key]} counted, "
                                f"{want[blk, key]} in the log"))


__all__ = ["dropped_bodies", "verify_index"]
