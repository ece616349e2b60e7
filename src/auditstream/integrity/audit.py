"""``auditstream verify --db``: recompute every tenant's log from the rows on disk.

Reads the SQLite file directly (read-only) and trusts nothing in it but the public key:
each row's content must hash to its leaf, seqs must run 1..n without gaps, the row must
say the seq and tenant it sits at, the tree over the leaves must reproduce the root of
every signed checkpoint, and every event must be covered by a checkpoint (the writer
signs one in the same transaction as each commit, so an uncovered row was not written by
the writer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from ..dbapi import sqlite3
from . import merkle
from .canonical import canonical_bytes
from .checkpoint import NoteVerificationError, Verifier, open_checkpoint
from .origin import origin_for


@dataclass
class Problem:
    tenant: str
    seq: int
    reason: str

    def __str__(self) -> str:
        return f"tenant {self.tenant}: seq {self.seq}: {self.reason}"


@dataclass
class Report:
    events: int = 0
    tenants: int = 0
    redacted: int = 0
    checkpoints: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_db(
    db: str | Path, verifier: Verifier, deployment: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Report:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        report = Report()
        tenants = [r[0] for r in conn.execute(
            "SELECT DISTINCT tenant FROM events UNION SELECT DISTINCT tenant FROM checkpoints")]
        for tenant in sorted(tenants):
            report.tenants += 1
            _verify_tenant(conn, tenant, verifier, deployment, report, progress)
        return report
    finally:
        conn.close()


def _verify_tenant(
    conn: sqlite3.Connection, tenant: str, verifier: Verifier, deployment: str | None,
    report: Report, progress: Callable[[int], None] | None,
) -> None:
    problems = report.problems
    checkpoints: dict[int, bytes] = {}
    for size, root, note in conn.execute(
        "SELECT size, root, note FROM checkpoints WHERE tenant = ? ORDER BY size", (tenant,)
    ):
        report.checkpoints += 1
        try:
            cp = open_checkpoint(note, verifier)
        except (NoteVerificationError, ValueError) as exc:
            problems.append(Problem(tenant, size, f"checkpoint of size {size} is not validly "
                                    f"signed by the deployment key: {exc}"))
            continue
        if cp.size != size or cp.root != bytes(root) or (
            deployment is not None and cp.origin != origin_for(deployment, tenant)
        ) or not cp.origin.endswith("/" + tenant):
            problems.append(Problem(tenant, size, f"checkpoint of size {size} does not match "
                                    "its stored size, root or origin"))
            continue
        checkpoints[size] = cp.root
    cr = merkle.CompactRange()
    tenant_marker = orjson.dumps({"tenant": tenant})[1:-1]
    expected = 1
    last_good_cp = 0
    rows = conn.execute(
        "SELECT seq, body, leaf FROM events WHERE tenant = ? ORDER BY seq", (tenant,))
    n = 0
    for seq, body, leaf in rows:
        n += 1
        if seq != expected:
            problems.append(Problem(tenant, expected, f"missing: the next row has seq {seq}"
                                    if seq > expected else f"duplicate seq {seq}"))
            return
        if leaf is None:
            problems.append(Problem(tenant, seq, "row has no leaf hash"))
            return
        leaf = bytes(leaf)
        raw = body.encode() if isinstance(body, str) else bytes(body)
        # Fast path: the writer stores the canonical bytes, so a body that hashes to its
        # leaf and names its own seq and tenant needs no parsing. Anything else is parsed
        # and explained.
        if not (merkle.leaf_hash(raw) == leaf and (b'"seq":%d,' % seq) in raw
                and tenant_marker in raw and b'"redacted":' not in raw):
            try:
                ev = orjson.loads(raw)
            except orjson.JSONDecodeError:
                problems.append(Problem(tenant, seq, "stored body is not valid JSON"))
                return
            if ev.get("seq") != seq or ev.get("tenant") != tenant:
                problems.append(Problem(tenant, seq, f"row holds the event of tenant "
                                        f"{ev.get('tenant')!r} seq {ev.get('seq')!r} (moved rows)"))
                return
            if "redacted" in ev:
                report.redacted += 1
            elif merkle.leaf_hash(canonical_bytes(ev)) != leaf:
                problems.append(Problem(tenant, seq, "content does not match its leaf hash "
                                        "(the event was edited)"))
                return
        cr.append(leaf)
        want = checkpoints.get(seq)
        if want is not None:
            if cr.root() != want:
                problems.append(Problem(tenant, last_good_cp + 1, f"tree does not match the "
                                        f"signed checkpoint of size {seq}: a leaf in seq "
                                        f"{last_good_cp + 1}..{seq} was altered"))
                return
            last_good_cp = seq
        expected += 1
        report.events += 1
        if progress is not None and n % 10_000 == 0:
            progress(10_000)
    if progress is not None:
        progress(n % 10_000)
    signed = max(checkpoints, default=0)
    if signed > n:
        problems.append(Problem(tenant, n + 1, f"log truncated: a checkpoint is signed for "
                                f"{signed} events but only {n} are stored"))
    elif n > signed:
        problems.append(Problem(tenant, signed + 1, f"seq {signed + 1}..{n} are not covered "
                                "by any signed checkpoint (inserted outside the writer)"))
