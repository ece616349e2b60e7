"""Close and crash, per backend: a closed store refuses every call; a store killed at any
point while appending loses nothing it acknowledged, leaves no gap and still verifies."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from auditstream.errors import StoreClosed
from auditstream.integrity.checkpoint import Signer
from auditstream.query.filter import All
from auditstream.store.base import AggregateSpec, EventQuery, EventStore

from .backends import INDEXED, Backend, assert_verified, ev, everything, put

pytestmark = pytest.mark.anyio

TESTS = Path(__file__).resolve().parents[1]


async def _scan(store: EventStore) -> None:
    async for _ in store.scan("a", All()):
        pass


CALLS: dict[str, Callable[[EventStore], Awaitable[Any]]] = {
    "append": lambda s: put(s, "a", ev()),
    "get": lambda s: s.get("a", "evt_x"),
    "query": lambda s: s.query("a", EventQuery(All())),
    "count": lambda s: s.count("a", All()),
    "aggregate": lambda s: s.aggregate("a", All(), AggregateSpec(group_by="type")),
    "scan": _scan,
    "last_seq": lambda s: s.last_seq("a"),
    "merkle_nodes": lambda s: s.merkle_nodes("a", [(0, 0)]),
    "sign_checkpoint": lambda s: s.sign_checkpoint("a", 1),
    "checkpoints": lambda s: s.checkpoints("a"),
    "redact": lambda s: s.redact("a", "evt_x", "r"),
    "purge": lambda s: s.purge("a", 0, "r"),
}


@pytest.mark.parametrize("call", sorted(CALLS))
async def test_every_call_after_close_raises_store_closed(store: EventStore, call: str) -> None:
    await put(store, "a", ev())
    await store.close()
    with pytest.raises(StoreClosed):
        await CALLS[call](store)
    await store.close()  # closing again is harmless


async def test_close_finishes_the_appends_it_accepted(
    backend: Backend, signer: Signer, tmp_path: Path,
) -> None:
    store = backend.open(tmp_path, signer=signer)
    appends = [asyncio.create_task(put(store, "a", ev(), ev())) for _ in range(25)]
    await asyncio.sleep(0)  # every append has been handed to the store
    await store.close()
    seqs = sorted(s for seqs in await asyncio.gather(*appends) for s in seqs)
    assert seqs == list(range(1, 51))
    reopened = backend.open(tmp_path, signer=signer)
    try:
        assert [e["seq"] for e in await everything(reopened, "a")] == seqs
        await assert_verified(reopened, "a", signer)
    finally:
        await reopened.close()


def _appender(backend: Backend, directory: Path, signer: Signer,
              seed: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(TESTS))
    return subprocess.Popen(
        [sys.executable, "-m", "store.crash_child", backend.name, str(directory),
         signer.key_string(), str(seed)],
        cwd=TESTS, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


async def test_sigkill_at_random_points_loses_no_acknowledged_event(
    backend: Backend, signer: Signer, tmp_path: Path,
) -> None:
    """Kill an appending process at a random point, three times over the same data: every
    append it acknowledged (printed after ``append`` returned) is there with its seq, each
    tenant's seqs run 1..n without a gap, the log verifies, and appends go on after it."""
    rnd = random.Random(int.from_bytes(os.urandom(4)))
    acked: dict[tuple[str, str], int] = {}
    redacted: dict[tuple[str, str], int] = {}
    for round_ in range(3):
        proc = _appender(backend, tmp_path, signer, rnd.randrange(2**32))
        assert proc.stdout is not None and proc.stderr is not None
        kill_after = rnd.randint(1, 80)  # acknowledged operations before the kill
        lines: list[bytes] = []
        while len(lines) < kill_after:
            line = proc.stdout.readline()
            assert line, f"round {round_}: the appender died: {proc.stderr.read()[-2000:]!r}"
            lines.append(line)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        lines += proc.stdout.read().splitlines(keepends=True)  # printed before it died
        proc.stdout.close()
        proc.stderr.close()
        for line in lines:
            if not line.endswith(b"\n"):
                continue  # cut short by the kill: its operation was acknowledged anyway,
                # but we cannot read which (the store may or may not hold it)
            kind, tenant, *rest = orjson.loads(line)
            if kind == "append":
                acked.update(((tenant, eid), seq) for eid, seq in rest[0])
            else:
                redacted[tenant, rest[0]] = rest[1]

    store = backend.open(tmp_path, signer=signer, indexed_paths=INDEXED)
    try:
        for tenant in ["a", "b", "c"]:
            events = await everything(store, tenant)
            stored = {e["id"]: e for e in events}
            assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
            missing = [(eid, seq) for (t, eid), seq in acked.items()
                       if t == tenant and stored.get(eid, {}).get("seq") != seq]
            assert missing == [], f"{len(missing)} acknowledged events of {tenant} lost"
            for (t, eid), by in redacted.items():
                if t == tenant:
                    assert stored[eid]["redacted"]["by"] == by
            await assert_verified(store, tenant, signer)
            last = len(events)
            assert await put(store, tenant, ev()) == [last + 1]
    finally:
        await store.close()
    if backend.audit is not None:
        assert backend.audit(tmp_path, signer.verifier()) == []
