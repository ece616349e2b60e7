"""``auditstream verify --db``: prove a SQLite file against its signed logs.

Reads the file read-only and trusts nothing in it but the public key. Whoever can write
the file is the adversary, so everything a reader can see must be either in the signed
log or derivable from it, and re-derived here:

1. **Schema.** Every table, index and the full-text table is defined exactly as this
   code creates it (no trigger, no view, no altered column, collation or index), so the
   checks below mean what they say.
2. **B-trees and the full-text index.** ``PRAGMA integrity_check``: every index holds
   exactly its table's rows, and the FTS5 inverted index is exactly its content.
3. **The log** (``integrity.logcheck``): each tenant's entries, leaves, redactions, tree,
   signed checkpoints, stored Merkle nodes, and checkpoints kept elsewhere.
4. **Derived data.** Each row's columns (``ts``, ``type``, ``severity`` …, declared path
   columns) and its full-text content equal what ``prepared.row_values`` derives from the
   verified body; the hourly rollups equal the counts of the rows; idempotency answers
   name stored events.

A body the log dropped once the clickhouse index held it (``logstorage.drop_bodies``) is
read from there (``bodies``) and checked like a stored one, against the row's leaf; its
row must have no path columns and no full-text row left.

At 1M events this takes about 30 s (bench/RESULTS.md); step 2 runs on its own thread,
overlapping steps 3 and 4.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ...dbapi import sqlite3
from ...integrity import redaction
from ...integrity.checkpoint import Checkpoint, NoteVerificationError, Verifier, open_checkpoint
from ...integrity.logcheck import LogChecker, Problem, Report
from ...integrity.origin import origin_for
from ...log.prepared import row_values, segments
from ...log.sequencer import idempotency_message
from ...query.filter import is_valid_path
from . import rollup
from .logstorage import DROPPED, STORED_MIN_LEVEL, dropped_upto
from .schema import column_for, expected_schema

#: Tables whose content ``verify`` does not vouch for: the catalog of tenants, keys,
#: users, console sessions and viewer tokens, and the planner's statistics.
UNCHECKED_TABLES = frozenset({"tenants", "api_keys", "users", "sessions", "viewer_tokens",
                              "sqlite_stat1", "sqlite_stat4"})
#: Tables a file made by an earlier version lacks until a server opens it for writing.
OPTIONAL_TABLES = frozenset({"dropped_bodies"})

#: The bodies a log dropped, from the index that holds them: ``(tenant, upto)`` →
#: ``(seq, body)`` for seqs 1..upto, in seq order.
DroppedBodies = Callable[[str, int], Iterator[tuple[int, bytes]]]


def verify_db(
    db: str | Path, verifier: Verifier, deployment: str | None = None,
    progress: Callable[[int], None] | None = None, external: Iterable[Checkpoint] = (),
    bodies: DroppedBodies | None = None,
) -> Report:
    """Check the whole file; ``external`` are checkpoints kept elsewhere (any tenants);
    ``bodies``: where the bodies the log dropped are."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        report = Report()
        problems = report.problems
        paths = conn.execute("SELECT path, col FROM indexed_paths ORDER BY rowid").fetchall()
        problems += check_schema(conn, paths)
        if problems:
            return report  # nothing below means anything on a schema we did not make
        # The B-tree and FTS5 check runs in SQLite's C code, which releases the GIL: on its
        # own connection and thread it overlaps the per-event loop below.
        btrees: list[Problem] = []
        checker = threading.Thread(target=_integrity_check, args=(db, btrees))
        checker.start()
        outside = _by_tenant(external, report)
        tenants = {r[0] for r in conn.execute(
            "SELECT DISTINCT tenant FROM events UNION SELECT DISTINCT tenant FROM checkpoints")}
        for tenant in sorted(tenants | set(outside)):
            report.tenants += 1
            _verify_tenant(conn, tenant, verifier, deployment, paths, report,
                           outside.get(tenant, []), progress, bodies)
        problems += check_rollups(conn)
        problems += _orphan_text(conn)
        problems += _idempotency(conn, verifier)
        checker.join()
        problems[:0] = btrees  # the file's structure is the first thing to report
        return report
    finally:
        conn.close()


def _integrity_check(db: str | Path, out: list[Problem]) -> None:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        out += [Problem(None, None, f"integrity_check: {msg}")
                for (msg,) in conn.execute("PRAGMA integrity_check(100)") if msg != "ok"]
    finally:
        conn.close()


def parse_external(notes: Iterable[str], verifier: Verifier) -> list[Checkpoint]:
    """Open signed checkpoint notes kept elsewhere; ``ValueError`` names a bad one."""
    out = []
    for i, note in enumerate(notes):
        try:
            out.append(open_checkpoint(note, verifier))
        except ValueError as exc:
            raise ValueError(f"checkpoint {i + 1} is not validly signed by this key: {exc}") \
                from None
    return out


def _by_tenant(external: Iterable[Checkpoint], report: Report) -> dict[str, list[Checkpoint]]:
    out: dict[str, list[Checkpoint]] = {}
    for cp in external:
        # Origins are "<deployment>/<tenant>", and tenant names have no "/".
        out.setdefault(cp.origin.rsplit("/", 1)[-1], []).append(cp)
        report.external += 1
    return out


def check_schema(conn: sqlite3.Connection, paths: list[tuple[str, str]]) -> list[Problem]:
    want = expected_schema(paths)
    have: dict[str, tuple[str, str]] = {}
    # lower(type): SQLite also loads a schema row typed 'TRIGGER'.
    for kind, name, table, sql in conn.execute(
            "SELECT lower(type), name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL"):
        if table not in UNCHECKED_TABLES or kind in ("trigger", "view"):
            have[name] = (kind, sql)
    problems = [Problem(None, None, f"schema: declared path {path!r} is mapped to column "
                        f"{col!r}, not {column_for(path)!r}") for path, col in paths
                if not is_valid_path(path) or col != column_for(path)]
    for name, (kind, sql) in sorted(want.items()):
        if name not in have and name not in OPTIONAL_TABLES:
            problems.append(Problem(None, None, f"schema: {kind} {name} is missing"))
        elif name in have and have[name] != (kind, sql):
            problems.append(Problem(None, None, f"schema: {kind} {name} was altered"))
    for name, (kind, _sql) in sorted(have.items()):
        if name not in want:
            problems.append(Problem(None, None, f"schema: unexpected {kind} {name}"))
    return problems


def _verify_tenant(
    conn: sqlite3.Connection, tenant: str, verifier: Verifier, deployment: str | None,
    paths: list[tuple[str, str]], report: Report, external: list[Checkpoint],
    progress: Callable[[int], None] | None, bodies: DroppedBodies | None,
) -> None:
    checkpoints: dict[int, bytes] = {}
    bad_cp: list[Problem] = []
    for size, root, note in conn.execute(
        "SELECT size, root, note FROM checkpoints WHERE tenant = ? ORDER BY size", (tenant,)
    ):
        report.checkpoints += 1
        try:
            cp = open_checkpoint(note, verifier)
        except (NoteVerificationError, ValueError) as exc:
            bad_cp.append(Problem(tenant, size, f"checkpoint of size {size} is not validly "
                                  f"signed by the deployment key: {exc}"))
            continue
        if cp.size != size or cp.root != bytes(root) or (
            deployment is not None and cp.origin != origin_for(deployment, tenant)
        ) or not cp.origin.endswith("/" + tenant):
            bad_cp.append(Problem(tenant, size, f"checkpoint of size {size} does not match "
                                  "its stored size, root or origin"))
            continue
        checkpoints[size] = cp.root
    if bad_cp:
        report.problems += bad_cp[:1]
        return
    nodes = {(lvl, idx): bytes(h) for lvl, idx, h in conn.execute(
        "SELECT level, idx, hash FROM merkle_nodes WHERE tenant = ?", (tenant,))}
    checker = LogChecker(tenant, report, checkpoints=checkpoints, external=external,
                         nodes=nodes, min_node_level=STORED_MIN_LEVEL)
    segs = segments([p for p, _ in paths])
    cols = "".join(f", e.{c}" for _, c in paths)
    rows = conn.execute(
        "SELECT e.seq, e.body, e.leaf, e.id, e.ts, e.received, e.type, e.category, "
        f"e.severity, e.outcome{cols}, f.c0, f.c1, f.id IS NOT NULL FROM events e "
        "LEFT JOIN events_fts_content f ON f.id = e.rid WHERE e.tenant = ? ORDER BY e.seq",
        (tenant,))
    received: dict[str, int] = {}
    upto = dropped_upto(conn, tenant)
    index = bodies(tenant, upto) if bodies is not None and upto else iter(())
    n = 0
    try:
        for row in rows:
            seq, body, leaf = row[0], row[1], row[2]
            dropped = body == DROPPED and seq <= upto
            if dropped:
                raw = _dropped_body(index, seq)
                if raw is None:
                    checker.fail(seq, "its body was dropped from the log, and the index "
                                 "does not hold it" if bodies is not None else "its body "
                                 "was dropped from the log: verify with the clickhouse "
                                 "index that holds it (AUDITSTREAM_BACKEND=clickhouse)")
                    break
            else:
                # Whatever type the file stores there (an integer body must not become
                # bytes(n)).
                raw = body.encode() if isinstance(body, str) else body \
                    if isinstance(body, bytes) else b""
            ev = checker.entry(seq, raw, leaf if isinstance(leaf, bytes) else None)
            if ev is None:
                break
            if dropped and (redaction.is_record(ev) or redaction.is_stub(ev)):
                # The log keeps what proves its erasures; a drop never takes them.
                checker.fail(seq, "a redaction record or stub was dropped from the log")
                break
            reason = _derived_mismatch(ev, row[3:-3], row[-3:], segs, received, dropped)
            if reason is not None:
                checker.fail(seq, reason)
                break
            n += 1
            if progress is not None and n % 10_000 == 0:
                progress(10_000)
    finally:
        getattr(index, "close", lambda: None)()
    if progress is not None:
        progress(n % 10_000)
    checker.finish()


def _dropped_body(index: Iterator[tuple[int, bytes]], seq: int) -> bytes | None:
    """The index's body of ``seq``, reading ``index`` (in seq order) up to it."""
    for got, body in index:
        if got == seq:
            return body
        if got > seq:
            return None
    return None


def _derived_mismatch(
    ev: dict[str, Any], columns: tuple[Any, ...], text: tuple[Any, ...],
    segs: list[tuple[str, tuple[str, ...]]], received: dict[str, int], dropped: bool,
) -> str | None:
    """Why the row's derived data differs from its verified body, or None. A dropped
    body's row keeps its columns, but neither path columns nor full-text row."""
    try:
        fields, paths, (title, description) = row_values(ev, segs, received)
    except (KeyError, ValueError, TypeError):
        return "the verified body lacks what its row is indexed by"
    if dropped:
        paths = (None,) * len(paths)
        title = description = None
    if tuple(columns) != fields + paths:
        names = ("id", "ts", "received", "type", "category", "severity", "outcome",
                 *(f"{head}.{'.'.join(rest)}" if rest else head for head, rest in segs))
        bad = next(n for n, a, b in zip(names, columns, fields + paths, strict=True) if a != b)
        return f"column {bad} does not match the event (queries would see another value)"
    want_text = (title, description) if (title or description) else None
    have_text = (text[0], text[1]) if text[2] else None
    if want_text != have_text:
        return "full-text row does not match the event's title and description"
    return None


def check_rollups(conn: sqlite3.Connection) -> list[Problem]:
    """The hourly rollups are exactly the counts of the (verified) rows."""
    counted = rollup.recount_sql()
    stored = f"SELECT {', '.join(rollup.KEY + rollup.HOURS)} FROM rollup_day"
    for a, b, what in ((stored, counted, "counts"), (counted, stored, "misses")):
        row = conn.execute(f"{a} EXCEPT {b} ORDER BY 1, 2 LIMIT 1").fetchone()
        if row is not None:
            tenant, day, typ = row[0], row[1], row[2]
            hours = ", ".join(f"{h}={n}" for h, n in zip(rollup.HOURS, row[6:], strict=True)
                              if n != 0)
            return [Problem(tenant, None, f"hourly rollup of the day starting at {day} µs "
                            f"for type {typ!r} {'counts' if what == 'counts' else 'lacks'} "
                            f"events that the rows {'do not have' if what == 'counts' else 'have'}"
                            f" ({'stored' if what == 'counts' else 'counted'}: {hours or 'none'})")]
    return []


def _orphan_text(conn: sqlite3.Connection) -> list[Problem]:
    row = conn.execute("SELECT id FROM events_fts_content WHERE id NOT IN "
                       "(SELECT rid FROM events) LIMIT 1").fetchone()
    if row is None:
        return []
    return [Problem(None, None, f"full-text row {row[0]} belongs to no event "
                    "(searches would find it)")]


def _idempotency(conn: sqlite3.Connection, verifier: Verifier) -> list[Problem]:
    """A retry with an Idempotency-Key is answered from its stored row: each row must be
    signed (``ledger.idempotency_message``) and name events the log holds."""
    import orjson

    for tenant, key, request_hash, response, created, sig in conn.execute(
            "SELECT tenant, key, request_hash, response, created, sig FROM idempotency "
            "ORDER BY tenant, key"):
        try:
            msg = idempotency_message(tenant, key, request_hash, response, created)
            signed = isinstance(sig, bytes) and verifier.verify(msg, sig)
            pairs = [(str(i), int(s)) for i, s in orjson.loads(response)]
        except (orjson.JSONDecodeError, TypeError, ValueError):
            signed, pairs = False, []
        if not signed:
            return [Problem(tenant, None, f"the stored answer to Idempotency-Key {key!r} is "
                            "not signed by the deployment key (edited)")]
        for eid, seq in pairs:
            row = conn.execute("SELECT seq FROM events WHERE tenant = ? AND id = ?",
                               (tenant, eid)).fetchone()
            if row is None or row[0] != seq:
                return [Problem(tenant, None, f"the stored answer to Idempotency-Key {key!r} "
                                f"names {eid} at seq {seq}, which the log does not hold")]
    return []


__all__ = ["check_rollups", "check_schema", "parse_external", "verify_db"]
