"""The backends the store conformance suite runs against, and what its tests share.

Every test in ``tests/store`` (but ``tests/store/sqlite``) talks to a store through the
``EventStore`` interface only, so a backend passes the suite only if it agrees with every
other on every guarantee. Adding a backend is one line in ``BACKENDS``: how to open a store
over a directory (the same directory again reopens the same data), and optionally the
backend's own deep check of its files (``audit``).

The fixtures that open them are in this package's ``conftest.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from auditstream.integrity.canonical import canonical_bytes
from auditstream.integrity.checkpoint import Signer, Verifier, open_checkpoint
from auditstream.integrity.logcheck import LogChecker, Report
from auditstream.integrity.origin import origin_for
from auditstream.model.ids import new_event_id
from auditstream.model.times import format_us, now_us
from auditstream.query.filter import All
from auditstream.store.base import EventStore
from auditstream.store.clickhouse import ClickHouseEventStore
from auditstream.store.clickhouse.audit import dropped_bodies, verify_index
from auditstream.store.clickhouse.engine import Engine
from auditstream.store.sqlite import SQLiteEventStore
from auditstream.store.sqlite.audit import verify_db

DEPLOYMENT = "test.local"


class Opener(Protocol):
    def __call__(self, directory: Path, *, signer: Signer | None,
                 indexed_paths: Sequence[str] = ()) -> EventStore: ...


@dataclass(frozen=True)
class Backend:
    name: str
    #: A store over the data kept in ``directory`` (created on first use).
    open: Opener
    #: The backend's own proof of everything a reader of ``directory`` can see (SQLite:
    #: ``verify_db``): the problems found, none when all is well.
    audit: Callable[[Path, Verifier], list[str]] | None = None


def _open_sqlite(directory: Path, *, signer: Signer | None,
                 indexed_paths: Sequence[str] = ()) -> EventStore:
    return SQLiteEventStore(directory / "store.db", indexed_paths=list(indexed_paths),
                            signer=signer, deployment=DEPLOYMENT)


def _audit_sqlite(directory: Path, verifier: Verifier) -> list[str]:
    return [str(p) for p in verify_db(directory / "store.db", verifier, DEPLOYMENT).problems]


def _open_clickhouse(directory: Path, *, signer: Signer | None,
                     indexed_paths: Sequence[str] = (), drop: bool = False) -> EventStore:
    # Embedded ClickHouse (chdb) beside the SQLite log: one store per process at a time,
    # as chdb runs one data directory per process.
    return ClickHouseEventStore(directory / "store.db", clickhouse_url=chdb_url(directory),
                                indexed_paths=list(indexed_paths), signer=signer,
                                deployment=DEPLOYMENT, rollup_block=ROLLUP_BLOCK,
                                drop_bodies=drop, drop_every=1)


def _open_clickhouse_dropping(directory: Path, *, signer: Signer | None,
                              indexed_paths: Sequence[str] = ()) -> EventStore:
    """The log forgets every body at the commit after the index has it: each guarantee
    must then hold from the index's copies (re-sent ids, redactions, purges, verify)."""
    return _open_clickhouse(directory, signer=signer, indexed_paths=indexed_paths, drop=True)


#: Seqs per block of the hourly counts: small, so that the suite's few events fill blocks
#: and every count-by-hour aggregate reads the rollup as well as the events.
ROLLUP_BLOCK = 4


def chdb_url(directory: Path) -> str:
    return f"chdb://{directory / 'ch'}"


def audit_clickhouse(directory: Path, verifier: Verifier) -> list[str]:
    engine = Engine(chdb_url(directory), clients=1)
    try:
        log = verify_db(directory / "store.db", verifier, DEPLOYMENT,
                        bodies=dropped_bodies(engine))
        return [str(p) for p in log.problems] + [
            str(p) for p in verify_index(engine, str(directory / "store.db"))]
    finally:
        engine.close()


def clickhouse_verify_command(directory: Path, signer: Signer
                              ) -> tuple[list[str], dict[str, str]]:
    """``auditstream verify`` of ``directory``'s clickhouse store as an operator runs it
    (command and environment), the file made an auditstream database (tenant ``a``)."""
    import os
    import sys

    from auditstream.auth.catalog import Catalog

    catalog = Catalog(str(directory / "store.db"))
    catalog.create_tenant("a")  # what makes the file an auditstream database
    catalog.close()
    pub = directory / "key.pub"
    pub.write_text(signer.verifier_key())
    env = dict(os.environ, AUDITSTREAM_BACKEND="clickhouse",
               AUDITSTREAM_CLICKHOUSE_URL=chdb_url(directory), AUDITSTREAM_DEPLOYMENT=DEPLOYMENT)
    return [sys.executable, "-m", "auditstream", "verify", "--db", str(directory / "store.db"),
            "--public-key", str(pub)], env


BACKENDS: dict[str, Backend] = {b.name: b for b in [
    Backend("sqlite", _open_sqlite, _audit_sqlite),
    Backend("clickhouse", _open_clickhouse, audit_clickhouse),
    Backend("clickhouse-dropping", _open_clickhouse_dropping, audit_clickhouse),
]}

#: The paths the suite's stores index, so each filter is tried on an indexed path and on
#: one that is not (``location.zone``, ``context.*``, ``llm.*`` are not).
INDEXED = ("subject.ecosystem", "actor.id")


# -- events ------------------------------------------------------------------------------

HOUR = 3_600_000_000
T0 = 1_780_000_000_000_000  # 2026-05-28, a fixed clock for deterministic buckets


def ev(type_: str = "install", *, ts: int = T0, **fields: Any) -> dict[str, Any]:
    """A canonical event as the ingest pipeline hands it to a store (tenant set by ``put``)."""
    return {"id": new_event_id(), "tenant": "", "timestamp": format_us(ts),
            "received_at": format_us(now_us()), "type": type_,
            "severity": fields.pop("severity", "info"), **fields}


async def put(store: EventStore, tenant: str, *events: dict[str, Any]) -> list[int]:
    for e in events:
        e["tenant"] = tenant
    return [a.seq for a in await store.append(tenant, list(events))]


async def everything(store: EventStore, tenant: str) -> list[dict[str, Any]]:
    return [e async for batch in store.scan(tenant, All()) for e in batch]


# -- the log, checked through the interface ------------------------------------------------


async def audit(store: EventStore, tenant: str, verifier: Verifier) -> Report:
    """``verify`` of one tenant's log from what the interface serves alone.

    The latest checkpoint must be signed by ``verifier`` for this tenant's origin and cover
    every event; each live event's canonical bytes must hash to the leaf the store serves;
    each redaction stub must be committed to by a record; every stored interior node must
    be the one the leaves produce (``integrity.logcheck`` does the checking).
    """
    events = await everything(store, tenant)
    n = len(events)
    report = Report()
    checkpoints: dict[int, bytes] = {}
    for cp in await store.checkpoints(tenant):
        opened = open_checkpoint(cp.note, verifier)
        assert opened.origin == origin_for(DEPLOYMENT, tenant)
        assert (opened.size, opened.root) == (cp.size, cp.root)
        checkpoints[cp.size] = cp.root
    perfect = [(level, index) for level in range(1, n.bit_length())
               for index in range(n >> level)]
    nodes = await store.merkle_nodes(tenant, perfect) if perfect else {}
    leaves = await store.merkle_nodes(tenant, [(0, i) for i in range(n)]) if n else {}
    checker = LogChecker(tenant, report, checkpoints=checkpoints, nodes=dict(nodes))
    for e in events:
        seq = e["seq"]
        if checker.entry(seq, canonical_bytes(e), leaves.get((0, seq - 1))) is None:
            break
    checker.finish()
    return report


async def assert_verified(store: EventStore, tenant: str, signer: Signer) -> None:
    report = await audit(store, tenant, signer.verifier())
    assert report.ok, [str(p) for p in report.problems]
