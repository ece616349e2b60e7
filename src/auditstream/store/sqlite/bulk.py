"""Multi-row INSERTs: one statement step per few hundred rows instead of one per row.

``executemany`` steps the statement once per row, and Python's sqlite3 releases and
re-takes the GIL around every step. With the event loop busy parsing the next request,
each re-take can wait a whole switch interval, which made a 10,000-row transaction ten
times slower under load. Binding many rows to one ``VALUES (…), (…), …`` statement keeps
the GIL hand-offs to a handful per batch. Statement shapes come from a fixed ladder of
row counts so the connection's statement cache holds them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...dbapi import sqlite3

_LADDER = (1024, 256, 64, 16, 4, 1)


def _sql(head: str, ncols: int, nrows: int, tail: str) -> str:
    row = "(" + ",".join("?" * ncols) + ")"
    return f"{head} VALUES {','.join([row] * nrows)}{tail}"


def insert_rows(
    conn: sqlite3.Connection, head: str, rows: Sequence[Sequence[Any]], tail: str = ""
) -> None:
    """Run ``head VALUES (…),(…)… tail`` over ``rows`` (all of the same width)."""
    if not rows:
        return
    ncols = len(rows[0])
    # SQLite allows 32,766 bound parameters per statement.
    ladder = [n for n in _LADDER if n * ncols <= 32_766]
    i = 0
    for size in ladder:
        if len(rows) - i < size:
            continue
        sql = _sql(head, ncols, size, tail)
        while len(rows) - i >= size:
            params = [v for r in rows[i:i + size] for v in r]
            conn.execute(sql, params)
            i += size
