"""The ``auditstream`` command, run as a real process against a real database file."""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import closing
from pathlib import Path

from auditstream.auth.catalog import Catalog


def cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([sys.executable, "-m", "auditstream", *args], capture_output=True,
                       text=True, timeout=120)
    if ok:
        assert p.returncode == 0, p.stderr
    return p


def test_tenants_keys_ingest_query(tmp_path: Path) -> None:
    db = str(tmp_path / "cli.db")
    cli("tenants", "create", "acme", "--db", db)
    assert cli("tenants", "create", "acme", "--db", db, ok=False).returncode == 1
    assert "acme" in cli("tenants", "list", "--db", db).stdout
    out = json.loads(cli("keys", "create", "--tenant", "acme", "--scope", "events:read",
                         "--json", "--db", db).stdout)
    assert out["key"].startswith("sk_live_") and len(out["key"]) >= len("sk_live_") + 32
    assert out["tenant"] == "acme" and out["scopes"] == ["events:read"] and out["id"]
    plain = cli("keys", "create", "--tenant", "acme", "--db", db).stdout.strip()
    assert plain.startswith("sk_live_")
    listed = [json.loads(x) for x in cli("keys", "list", "--json", "--db", db).stdout.splitlines()]
    assert {k["id"] for k in listed} >= {out["id"]} and all("key" not in k for k in listed)
    cli("keys", "revoke", out["id"], "--db", db)
    assert cli("keys", "revoke", out["id"], "--db", db, ok=False).returncode == 1
    assert cli("keys", "create", "--tenant", "acme", "--scope", "root", "--db", db,
               ok=False).returncode == 2  # a bad option: a usage error
    short = cli("users", "create", "bob", "--tenant", "acme", "--password", "short", "--db",
                db, ok=False)  # as POST /v1/users refuses it
    assert short.returncode == 2 and "at least 12 characters" in short.stderr
    with closing(Catalog(db)) as catalog:
        assert catalog.authenticate_user("bob", "short") is None

    nd = tmp_path / "events.ndjson"
    nd.write_text("\n".join(json.dumps({"type": "install", "severity": s, "title": f"e {s}"})
                            for s in ["low", "high", "critical"]))
    arr = tmp_path / "events.json"
    arr.write_text(json.dumps([{"type": "login"}]))
    cli("ingest", str(nd), "--tenant", "acme", "--db", db)
    cli("ingest", str(arr), "--tenant", "acme", "--db", db)
    rows = [json.loads(x) for x in
            cli("query", "severity:>=high", "--tenant", "acme", "--json", "--db", db)
            .stdout.splitlines()]
    assert sorted(r["severity"] for r in rows) == ["critical", "high"]
    assert [r["seq"] for r in rows] == [3, 2]
    table = cli("query", "type:login", "--tenant", "acme", "--db", db).stdout
    assert "login" in table
    bad = cli("query", "severity:>=huge", "--tenant", "acme", "--db", db, ok=False)
    assert bad.returncode == 1 and "position" in bad.stderr


def test_serve_help_lists_settings() -> None:
    out = cli("serve", "--help").stdout
    assert "AUDITSTREAM_DB" in out and "AUDITSTREAM_PORT" in out and "--no-demo" in out
