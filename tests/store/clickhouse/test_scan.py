"""The ClickHouse scan's read-ahead (``store.scan_raw``): bounded in bytes, not rows."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from auditstream.integrity.checkpoint import Signer
from auditstream.query.filter import All
from auditstream.store.clickhouse import ClickHouseEventStore
from auditstream.store.clickhouse import store as ch_store

from ..backends import DEPLOYMENT, chdb_url, ev, put

pytestmark = pytest.mark.anyio


async def test_read_ahead_is_bounded_in_bytes_for_heavy_events(
        tmp_path: Path, signer: Signer, monkeypatch: pytest.MonkeyPatch) -> None:
    """600 events of 40 KB, batches of 100: the scan holds about a batch and the
    read-ahead's byte bound (2 MB here), not 32 batches (the whole 24 MB: a 48 MB peak
    before the bound, 10 MB with it)."""
    monkeypatch.setattr(ch_store, "READ_AHEAD_BYTES", 2 * 1024 * 1024)
    store = ClickHouseEventStore(tmp_path / "store.db", clickhouse_url=chdb_url(tmp_path),
                                 signer=signer, deployment=DEPLOYMENT)
    try:
        for _ in range(6):
            await put(store, "a", *[ev(description="x" * 40_000) for _ in range(100)])
        seqs: list[int] = []
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            async for raws in store.scan_raw("a", All(), batch=100):
                assert len(raws) <= 100
                seqs += [int(r.split(b'"seq":', 1)[1].split(b",", 1)[0]) for r in raws]
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        await store.close()
    assert seqs == list(range(1, 601))
    assert peak < 16 * 1024 * 1024, peak
