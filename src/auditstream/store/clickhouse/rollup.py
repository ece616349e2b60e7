"""Hourly counts of the index: what a count-by-(time, type …) aggregate reads instead of
grouping every event under FINAL (224 ms for a 2M-event tenant at 10M events).

Rows of ``hourly_<B>``: per tenant, *block* of ``B`` seqs (block ``k`` holds seqs
``k·B+1 … (k+1)·B``) and (hour, type, category, severity, outcome), the number of the
block's events with those values, as counted up to ``ver`` (the last seq counted).
Guarantees:

* **Written once a block is complete**, in the transfer that completes it, before the
  watermark passes it: one small insert per ``B`` events of a tenant, not one per
  commit. The open block's counts are the indexer's, in memory.
* **Exact under FINAL.** A ReplacingMergeTree on ``ver``: a block's final rows carry its
  last seq, above any earlier row of the block (``backfill`` counts partial blocks too,
  with their last seq). The indexer, not a materialized view, writes them: a view would
  count a range sent twice twice.
* **Idempotent.** A re-sent range recounts from the log (``Rollup.rows`` reloads a
  block's counts whenever the seqs it is given do not follow the ones it counted), so
  the same rows come again, with the same ``ver``.
* **Read only where complete.** Readers take blocks that lie wholly at or below the
  watermark; the open block and the edge hours of a range come from ``events``.
* **Redactions change nothing**: a stub keeps the fields counted here
  (``integrity.redaction.KEEPS``).
* **Proven by verify**: ``audit`` recounts every complete block from the log.

``B`` is part of the table's name, so a store opened with another block size reads and
fills its own table (``migrate``), never another's counts.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ...dbapi import sqlite3

BLOCK = 4096
HOUR = 3_600_000_000
#: Filter paths a rollup row can answer, and their columns.
DIMS = {"type": "type", "category": "category", "severity": "sev", "outcome": "outcome"}

#: (hour, type, category, sev, outcome)
Key = tuple[int, str, str | None, int, str | None]

TABLE = """
CREATE TABLE IF NOT EXISTS {db}.{table} (
    tenant LowCardinality(String),
    hour Int64,
    block UInt64,
    type LowCardinality(String),
    category LowCardinality(Nullable(String)),
    sev UInt8,
    outcome LowCardinality(Nullable(String)),
    n UInt64,
    ver UInt64
) ENGINE = ReplacingMergeTree(ver)
ORDER BY (tenant, hour, block, type, category, sev, outcome)
SETTINGS allow_nullable_key = 1
"""

COLUMNS = ["tenant", "hour", "block", "type", "category", "sev", "outcome", "n", "ver"]


def table(block: int) -> str:
    return f"hourly_{block}"


def hour_of(ts: int) -> int:
    return ts - ts % HOUR  # floored, as the aggregate's buckets are


class Rollup:
    """The indexer's counts of each tenant's open block (one block per tenant in memory)."""

    def __init__(self, block: int = BLOCK):
        self.block = block
        #: tenant → (block, last seq counted, counts)
        self._open: dict[str, tuple[int, int, Counter[Key]]] = {}

    def rows(self, log: sqlite3.Connection, tenant: str,
             entries: list[tuple[int, int, str, str | None, int, str | None]]
             ) -> list[list[Any]]:
        """Rows to insert for ``entries`` (seq, ts, type, category, sev, outcome), given
        in seq order with no gap: the final counts of each block they complete (readers
        use no other), all with ``ver`` = the block's last seq. Entries that do not follow
        the last ones counted (a retry after a failed insert, a range sent again) recount
        their block's earlier seqs from the log."""
        out: list[list[Any]] = []
        for seq, ts, type_, category, sev, outcome in entries:
            blk = (seq - 1) // self.block
            cur = self._open.get(tenant)
            if cur is None or cur[0] != blk or cur[1] != seq - 1:
                first = (seq - 1) % self.block == 0  # nothing of the block before it
                cur = (blk, seq - 1, Counter() if first else
                       self._load(log, tenant, blk, seq - 1))
            counts = cur[2]
            counts[hour_of(ts), type_, category, sev, outcome] += 1
            self._open[tenant] = (blk, seq, counts)
            if seq == (blk + 1) * self.block:
                out += [[tenant, key[0], blk, *key[1:], n, seq] for key, n in counts.items()]
        return out

    def _load(self, log: sqlite3.Connection, tenant: str, blk: int, upto: int
              ) -> Counter[Key]:
        counts: Counter[Key] = Counter()
        for ts, type_, category, sev, outcome in log.execute(
                "SELECT ts, type, category, severity, outcome FROM events WHERE tenant = ? "
                "AND seq > ? AND seq <= ?", (tenant, blk * self.block, upto)):
            counts[hour_of(ts), type_, category, sev, outcome] += 1
        return counts


def migrate(client: Any, db: str, block: int) -> None:
    """The table of ``block``, counted from ``events`` if new; a table of another block
    size is dropped (nothing keeps it from now on, so it would go stale)."""
    for (name,) in client.query(
            "SELECT name FROM system.tables WHERE database = {d:String} AND "
            "match(name, '^hourly_[0-9]+$')", parameters={"d": db}).result_rows:
        if name != table(block):
            client.command(f"DROP TABLE {db}.{name}")
    client.command(TABLE.format(db=db, table=table(block)))
    backfill(client, db, block)


def backfill(client: Any, db: str, block: int) -> None:
    """Count what ``events`` holds up to each tenant's watermark into an empty rollup
    table (an index made before the rollup existed, or with another block size)."""
    if int(client.query(f"SELECT count() FROM {db}.{table(block)}").result_rows[0][0]):
        return
    if not int(client.query(f"SELECT count() FROM {db}.watermarks").result_rows[0][0]):
        return
    client.command(
        f"INSERT INTO {db}.{table(block)} ({', '.join(COLUMNS)}) "
        f"SELECT e.tenant, e.ts - ((e.ts % {HOUR}) + {HOUR}) % {HOUR} AS hour, "
        f"intDiv(e.seq - 1, {block}) AS block, "
        "e.type, e.category, e.sev, e.outcome, count(), max(e.seq) "
        f"FROM {db}.events AS e FINAL INNER JOIN (SELECT tenant, max(seq) AS wm FROM "
        f"{db}.watermarks GROUP BY tenant) AS w ON e.tenant = w.tenant WHERE e.seq <= w.wm "
        "GROUP BY e.tenant, hour, block, e.type, e.category, e.sev, e.outcome",
        settings={"do_not_merge_across_partitions_select_final": 1})


def recount(log: sqlite3.Connection, tenant: str, upto: int, block: int
            ) -> Counter[tuple[int, Key]]:
    """Counts of the complete blocks at or below ``upto``, from the log (``verify``)."""
    counts: Counter[tuple[int, Key]] = Counter()
    last = upto // block * block
    for seq, ts, type_, category, sev, outcome in log.execute(
            "SELECT seq, ts, type, category, severity, outcome FROM events WHERE tenant = ? "
            "AND seq <= ?", (tenant, last)):
        counts[(seq - 1) // block, (hour_of(ts), type_, category, sev, outcome)] += 1
    return counts


__all__ = ["BLOCK", "COLUMNS", "DIMS", "HOUR", "TABLE", "Rollup", "backfill", "hour_of",
           "migrate", "recount", "table"]
