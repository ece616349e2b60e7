"""``pull`` and ``export --bundle`` remember the last checkpoint they saw and refuse, loudly,
a log that was rolled back or rewritten since."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from rollback import roll_back

from auditstream.cli_export import pull
from auditstream.dbapi import sqlite3
from auditstream.integrity.witness import ForkError, RollbackError


def ingest(srv: Any, key: str, n: int) -> None:
    r = srv.client(key).post("/v1/events", content=orjson.dumps(
        [{"type": "login", "title": f"e{i}"} for i in range(n)]))
    assert r.status_code == 201, r.text


def rewind(db: str, keep: int) -> None:
    conn = sqlite3.connect(db)
    roll_back(conn, keep)
    conn.commit()
    conn.close()


def test_pull_refuses_a_rollback_and_a_fork(server: Any, tmp_path: Path) -> None:
    key = server.key("acme")
    ingest(server, key, 10)
    state, out = tmp_path / "state.json", tmp_path / "out.ndjson"
    pull(server.url, key, state, out)
    saw = orjson.loads(state.read_bytes())
    assert saw["checkpoint"].split("\n")[1] == "10" and saw["public_key"]
    ingest(server, key, 5)
    pull(server.url, key, state, out)  # an honest extension passes
    assert orjson.loads(state.read_bytes())["checkpoint"].split("\n")[1] == "15"

    rewind(server.settings.db, 12)
    before = state.read_bytes(), out.read_bytes()
    with pytest.raises(RollbackError, match="ROLLED BACK"):
        pull(server.url, key, state, out)
    assert (state.read_bytes(), out.read_bytes()) == before  # nothing recorded or written

    ingest(server, key, 6)  # size 18 again > 15, but not an extension of the 15 seen
    with pytest.raises(ForkError, match="FORKED"):
        pull(server.url, key, state, out)
    assert (state.read_bytes(), out.read_bytes()) == before
    p = subprocess.run([sys.executable, "-m", "auditstream", "pull", "--url", server.url,
                        "--key", key, "--state", str(state), "--out", str(out)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 3 and "REFUSED" in p.stderr and "FORKED" in p.stderr


def test_pull_pins_the_key_it_first_saw(server: Any, tmp_path: Path) -> None:
    from auditstream.cli_export import PullError
    from auditstream.integrity.checkpoint import generate_signer

    key = server.key("acme")
    ingest(server, key, 3)
    state, out = tmp_path / "state.json", tmp_path / "out.ndjson"
    pull(server.url, key, state, out)
    other = generate_signer("auditstream.local").verifier_key()
    with pytest.raises(PullError, match="pinned"):
        pull(server.url, key, state, out, public_key=other)
    with pytest.raises(PullError, match="not validly signed"):
        pull(server.url, key, tmp_path / "s2.json", tmp_path / "o2.ndjson", public_key=other)


def export_bundle(db: str, out: Path, kept: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditstream", "export", "--bundle", "--tenant", "acme",
         "--out", str(out), "--db", db, "--checkpoint", str(kept)],
        capture_output=True, text=True, timeout=60)


def test_export_bundle_refuses_a_rollback_and_a_fork(server: Any, tmp_path: Path) -> None:
    key = server.key("acme")
    ingest(server, key, 10)
    db, kept = server.settings.db, tmp_path / "acme.checkpoint"
    p = export_bundle(db, tmp_path / "b1.ndjson", kept)
    assert p.returncode == 0, p.stderr
    assert kept.read_text().split("\n")[1] == "10"
    ingest(server, key, 5)
    p = export_bundle(db, tmp_path / "b2.ndjson", kept)
    assert p.returncode == 0, p.stderr
    assert kept.read_text().split("\n")[1] == "15"
    seen = kept.read_text()

    rewind(db, 12)
    p = export_bundle(db, tmp_path / "b3.ndjson", kept)
    assert p.returncode == 3 and "ROLLED BACK" in p.stderr
    ingest(server, key, 6)
    p = export_bundle(db, tmp_path / "b4.ndjson", kept)
    assert p.returncode == 3 and "FORKED" in p.stderr
    assert kept.read_text() == seen
    assert not (tmp_path / "b3.ndjson").exists() and not (tmp_path / "b4.ndjson").exists()
    # The kept checkpoint is also what `verify --db --checkpoint` takes.
    p = subprocess.run([sys.executable, "-m", "auditstream", "verify", "--db", db,
                        "--checkpoint", str(kept)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "forks" in p.stderr
