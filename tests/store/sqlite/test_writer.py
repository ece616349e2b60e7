"""The writer thread: one job's failure stays that job's; retries are recognised."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from auditstream.dbapi import sqlite3
from auditstream.errors import StoreError, ValidationFailed
from auditstream.integrity.checkpoint import Signer, generate_signer
from auditstream.model.ids import new_event_id
from auditstream.model.times import format_us, now_us
from auditstream.store.sqlite import SQLiteEventStore
from auditstream.store.sqlite.audit import verify_db


class PoisonedSigner(Signer):
    """Signs every checkpoint but those of tenant ``poison`` (a fault outside any job's
    savepoint: checkpoints are signed once per tenant, after the group's jobs)."""

    attempts = 0

    def sign(self, message: bytes) -> bytes:
        if b"/poison\n" in message:
            PoisonedSigner.attempts += 1
            raise RuntimeError("signing failed")
        return super().sign(message)


def event(tenant: str, **extra: Any) -> dict[str, Any]:
    now = format_us(now_us())
    return {"id": new_event_id(), "tenant": tenant, "timestamp": now, "received_at": now,
            "type": "x", "severity": "info", **extra}


def test_a_poisonous_job_fails_alone(tmp_path: Path) -> None:
    good = generate_signer("auditstream.local")
    signer = PoisonedSigner(good.name, good._seed)  # noqa: SLF001 (same key, one fault)

    async def run() -> list[Any]:
        store = SQLiteEventStore(tmp_path / "w.db", signer=signer)
        # Hold the write lock while the jobs queue up, so they meet in one group.
        blocker = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        asyncio.get_running_loop().call_later(0.3, blocker.execute, "COMMIT")
        jobs = [store.append(f"t{i % 5}", [event(f"t{i % 5}")]) for i in range(60)]
        jobs.insert(30, store.append("poison", [event("poison")]))
        results = await asyncio.gather(*jobs, return_exceptions=True)
        await store.close()
        return results

    results = asyncio.run(run())
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(failed) == 1 and isinstance(failed[0], StoreError)
    assert isinstance(results[30], StoreError)
    rep = verify_db(tmp_path / "w.db", good.verifier())
    assert rep.ok and rep.events == 60
    # It failed in a group first, then alone: the others were retried without it.
    assert PoisonedSigner.attempts == 2


@pytest.mark.parametrize("tenant", ["acme\x00", "", "a/b", "x" * 64])
def test_appends_to_an_invalid_tenant_are_refused(tmp_path: Path, tenant: str) -> None:
    async def run() -> None:
        store = SQLiteEventStore(tmp_path / "w.db")
        try:
            with pytest.raises(ValidationFailed):
                await store.append(tenant, [event(tenant)])
        finally:
            await store.close()

    asyncio.run(run())


def test_a_signed_log_is_not_written_without_its_key(tmp_path: Path) -> None:
    from auditstream.errors import StoreUnavailable

    signer = generate_signer("auditstream.local")

    async def run() -> None:
        store = SQLiteEventStore(tmp_path / "w.db", signer=signer)
        await store.append("acme", [event("acme")])
        await store.close()
        keyless = SQLiteEventStore(tmp_path / "w.db")
        try:
            with pytest.raises(StoreUnavailable, match="signing key"):
                await keyless.append("acme", [event("acme")])
            assert await keyless.last_seq("acme") == 1  # reads still work
        finally:
            await keyless.close()

    asyncio.run(run())
    assert verify_db(tmp_path / "w.db", signer.verifier()).ok


def test_a_full_writer_queue_refuses_new_appends_and_loses_nothing(tmp_path: Path) -> None:
    from auditstream.errors import Overloaded

    db = tmp_path / "q.db"

    async def run() -> None:
        store = SQLiteEventStore(db, max_queue_events=10)
        await store.append("acme", [event("acme")])  # the file exists, the writer is idle
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # the writer's next transaction has to wait
        first = asyncio.create_task(store.append("acme", [event("acme") for _ in range(5)]))
        await asyncio.sleep(0.2)  # the writer took it and waits for the lock
        queued = asyncio.create_task(store.append("acme", [event("acme") for _ in range(8)]))
        await asyncio.sleep(0.05)
        with pytest.raises(Overloaded):
            await store.append("acme", [event("acme") for _ in range(5)])
        blocker.execute("COMMIT")
        assert [len(await first), len(await queued)] == [5, 8]
        assert await store.last_seq("acme") == 14
        await store.close()

    asyncio.run(run())
