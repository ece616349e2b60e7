"""``verify=True``: the client proves each event it reads and each checkpoint it sees
against the server's public key, and refuses an altered event, a rolled-back or forked
log, a checkpoint under another key (real server; the attacks edit its database file)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from auditstream.client import (
    AsyncClient,
    Client,
    ForkError,
    LogMonitor,
    ProofError,
    RollbackError,
    VerificationError,
)
from auditstream.dbapi import sqlite3
from auditstream.integrity import witness
from auditstream.integrity.canonical import canonical_bytes
from auditstream.integrity.checkpoint import generate_signer
from auditstream.integrity.merkle import leaf_hash
from integrity.rollback import roll_back


def edit(db: str, sql: str, *args: Any) -> None:
    conn = sqlite3.connect(db)
    conn.execute(sql, args)
    conn.commit()
    conn.close()


def rewind(db: str, keep: int) -> None:
    conn = sqlite3.connect(db)
    roll_back(conn, keep)
    conn.commit()
    conn.close()


def stored(db: str, seq: int) -> dict[str, Any]:
    conn = sqlite3.connect(db)
    raw = conn.execute("SELECT body FROM events WHERE tenant='acme' AND seq=?",
                       (seq,)).fetchone()[0]
    conn.close()
    return dict(orjson.loads(raw))


@pytest.fixture
def honest(server: Any, tmp_path: Path) -> tuple[Any, str, str, Path]:
    key = server.key("acme")
    with Client(server.url, api_key=key) as c:
        c.ingest([{"type": "login", "title": f"e{i}", "actor": {"id": "u"}}
                  for i in range(10)])
        public = c.public_key()
    return server, key, public, tmp_path / "acme.monitor.json"


def test_an_honest_log_verifies_and_its_checkpoint_is_kept(honest: Any) -> None:
    server, key, public, state = honest
    with Client(server.url, api_key=key, public_key=public, state=state) as c:
        assert [e["seq"] for e in c.list(verify=True, order="asc", page_size=3)] == list(
            range(1, 11))
        kept = orjson.loads(state.read_bytes())
        assert kept["public_key"] == public and kept["checkpoint"].split("\n")[1] == "10"
        c.ingest([{"type": "logout"}] * 5)
        assert c.get(c.ingest({"type": "x"})[0]["id"], verify=True)["seq"] == 16
        assert len(list(c.list(verify=True))) == 16
    assert orjson.loads(state.read_bytes())["checkpoint"].split("\n")[1] == "16"
    assert LogMonitor(public, state).kept.size == 16  # type: ignore[union-attr]


def test_an_event_holding_a_large_integral_double_verifies(honest: Any) -> None:
    """1e17 is stored (JCS) as ``100000000000000000``, which reads back as an integer
    beyond what JCS takes as one: it is the double, and its leaf must still check."""
    server, key, public, state = honest
    with Client(server.url, api_key=key, public_key=public, state=state) as c:
        made = c.ingest({"type": "disk", "context": {"bytes": 1e17, "big": [2.0**60, -1e20]}})
        got = c.get(made[0]["id"], verify=True)
        assert got["context"]["bytes"] == 10**17


def test_an_altered_event_is_refused(honest: Any) -> None:
    server, key, public, _ = honest
    ev = stored(server.settings.db, 4)
    ev["actor"]["id"] = "mallory"
    edit(server.settings.db, "UPDATE events SET body=? WHERE tenant='acme' AND seq=4",
         canonical_bytes(ev).decode())
    with Client(server.url, api_key=key, public_key=public) as c:
        assert c.get(ev["id"])["actor"]["id"] == "mallory"  # unverified, it reads as stored
        with pytest.raises(ProofError, match="altered"):
            list(c.list(verify=True))
        with pytest.raises(ProofError, match="altered"):
            c.get(ev["id"], verify=True)


def test_an_event_altered_with_its_leaf_is_refused(honest: Any) -> None:
    server, key, public, _ = honest
    ev = stored(server.settings.db, 4)
    ev["title"] = "nothing happened"
    raw = canonical_bytes(ev)
    edit(server.settings.db, "UPDATE events SET body=?, leaf=? WHERE tenant='acme' AND seq=4",
         raw.decode(), leaf_hash(raw))
    edit(server.settings.db, "UPDATE merkle_nodes SET hash=? WHERE tenant='acme' AND "
         "level=0 AND idx=3", leaf_hash(raw))
    with Client(server.url, api_key=key, public_key=public) as c, \
            pytest.raises(ProofError, match="not included"):
        list(c.list(verify=True))


def test_a_rollback_and_a_fork_are_refused(honest: Any) -> None:
    server, key, public, state = honest
    with Client(server.url, api_key=key, public_key=public, state=state) as c:
        c.ingest([{"type": "login"}] * 5)
        assert len(list(c.list(verify=True))) == 15
    before = state.read_bytes()
    rewind(server.settings.db, 12)
    with Client(server.url, api_key=key, public_key=public, state=state) as c:
        with pytest.raises(RollbackError, match="ROLLED BACK") as rolled:
            list(c.list(verify=True))
        assert isinstance(rolled.value, witness.RollbackError)  # as `pull` raises it
        assert state.read_bytes() == before
        c.ingest([{"type": "login", "title": "rewritten"}] * 6)  # 18 > 15, another history
        with pytest.raises(ForkError, match="FORKED"):
            list(c.list(verify=True))
        with pytest.raises(ForkError):
            c.get(c.ingest({"type": "x"})[0]["id"], verify=True)
    assert state.read_bytes() == before


def test_another_key_is_refused(honest: Any, tmp_path: Path) -> None:
    server, key, public, state = honest
    other = generate_signer("auditstream.local").verifier_key()
    with Client(server.url, api_key=key, public_key=other) as c, \
            pytest.raises(VerificationError, match="not validly signed"):
        list(c.list(verify=True))
    with Client(server.url, api_key=key, public_key=public, state=state) as c:
        list(c.list(verify=True))
    with pytest.raises(VerificationError, match="pins another public key"):
        LogMonitor(other, state)
    with pytest.raises(ValueError, match="public_key"):
        Client(server.url, api_key=key).list(verify=True)
    with pytest.raises(ValueError, match="verifier key"):
        LogMonitor("not a key")


def test_async_verify(honest: Any) -> None:
    server, key, public, state = honest

    async def run() -> None:
        async with AsyncClient(server.url, api_key=key, public_key=public,
                               state=state) as c:
            assert len([e async for e in c.list(verify=True)]) == 10
            rewind(server.settings.db, 7)
            with pytest.raises(RollbackError):
                [e async for e in c.list(verify=True)]

    asyncio.run(run())
