"""SQLite specifics of the hourly rollups: backfill of a database that predates them, and
the one-time rebuild of the earlier row-per-hour table."""

from __future__ import annotations

import asyncio
from pathlib import Path

from auditstream.dbapi import sqlite3
from auditstream.model.ids import new_event_id
from auditstream.model.times import format_us
from auditstream.query.filter import All, Cmp, and_
from auditstream.store.base import AggregateSpec
from auditstream.store.sqlite import SQLiteEventStore

HOUR = 3_600_000_000
T0 = 1_780_000_000_000_000


def _fill(db: Path) -> None:
    async def fill() -> None:
        s = SQLiteEventStore(db)
        await s.append("a", [{"id": new_event_id(), "tenant": "a", "type": t,
                              "timestamp": format_us(T0 + i * HOUR // 3),
                              "received_at": format_us(T0), "severity": "info"}
                             for i, t in enumerate(["x", "y", "x", "x", "y", "z"] * 5)])
        await s.close()

    asyncio.run(fill())


def _check(db: Path) -> dict[str, int]:
    async def check() -> dict[str, int]:
        s = SQLiteEventStore(db)
        try:
            where = and_(Cmp("timestamp", ">=", T0), Cmp("timestamp", "<", T0 + 20 * HOUR))
            b = await s.aggregate("a", where, AggregateSpec(group_by="type"))
            assert (await s.aggregate("a", All(), AggregateSpec()))[0].rows[0].count == 30
            return {r.key: r.count for r in b[0].rows}
        finally:
            await s.close()

    return asyncio.run(check())


def _stored_total(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        hours = " + ".join(f"h{i:02d}" for i in range(24))
        return int(conn.execute(f"SELECT SUM({hours}) FROM rollup_day").fetchone()[0])
    finally:
        conn.close()


def test_rollups_are_backfilled_for_an_older_database(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    _fill(db)
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE rollup_day")
    conn.commit()
    conn.close()
    assert _check(db) == {"x": 15, "y": 10, "z": 5}
    assert _stored_total(db) == 30


def test_the_row_per_hour_rollup_is_rebuilt_once(tmp_path: Path) -> None:
    """A file from before the day rows (``rollup_hour``) gets them on open, and loses the
    old table, so ``verify`` finds the schema it expects."""
    db = tmp_path / "old.db"
    _fill(db)
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE rollup_day")
    conn.execute("CREATE TABLE rollup_hour (tenant TEXT NOT NULL, hour INTEGER NOT NULL, "
                 "type TEXT NOT NULL, category TEXT NOT NULL, severity INTEGER NOT NULL, "
                 "outcome TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (tenant, hour, type, "
                 "category, severity, outcome)) WITHOUT ROWID")
    conn.execute("INSERT INTO rollup_hour VALUES ('a', 0, 'x', '', 0, '', 999)")
    conn.commit()
    conn.close()
    assert _check(db) == {"x": 15, "y": 10, "z": 5}
    conn = sqlite3.connect(db)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert "rollup_hour" not in names and "rollup_day" in names
    assert _stored_total(db) == 30
