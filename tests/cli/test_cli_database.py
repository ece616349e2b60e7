"""Commands that read refuse a database that is not there (and never create one), name
unknown tenants, and print one clear line instead of a traceback or a dict repr."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from auditstream.auth.catalog import Catalog
from auditstream.cli import app


def run(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def one_clear_line(r: Result) -> str:
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr and "{'" not in r.stderr
    return lines[0]


READERS: list[list[str]] = [
    ["query", "type:login"],
    ["query", "type:login", "--tenant", "acme"],
    ["export", "--tenant", "acme", "--out", "OUT"],
    ["tenants", "list"],
    ["keys", "list"],
    ["keys", "create", "--tenant", "acme"],
    ["keys", "revoke", "key_x"],
    ["users", "create", "bob", "--tenant", "acme", "--password", "pw"],
    ["ingest", "FILE", "--tenant", "acme"],
    ["purge", "--tenant", "acme", "--before", "90d"],
    ["verify"],
    ["integrations", "list", "--tenant", "acme"],
]


@pytest.mark.parametrize("args", READERS, ids=lambda a: " ".join(a[:2]))
@pytest.mark.parametrize("how", ["default", "env", "option"])
def test_readers_refuse_a_missing_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], how: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "events.ndjson").write_text('{"type": "a"}\n')
    args = [str(tmp_path / "events.ndjson") if a == "FILE" else
            str(tmp_path / "out.ndjson") if a == "OUT" else a for a in args]
    missing = tmp_path / "elsewhere" / "auditstream.db"
    env: dict[str, str | None] = {"AUDITSTREAM_DB": None}
    if how == "env":
        env["AUDITSTREAM_DB"] = str(missing)
    elif how == "option":
        args = [*args, "--db", str(missing)]
    else:
        missing = tmp_path / "data" / "auditstream.db"
    r = run(*args, env=env)
    msg = one_clear_line(r)
    assert r.exit_code == 2
    assert str(missing) in msg and "--db" in msg and "AUDITSTREAM_DB" in msg
    assert not missing.exists() and not missing.parent.exists()
    assert not (tmp_path / "data").exists()


def test_a_file_that_is_not_an_auditstream_database(tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("hello")
    msg = one_clear_line(r := run("tenants", "list", "--db", str(junk)))
    assert r.exit_code == 2 and str(junk) in msg and "not an auditstream database" in msg
    assert junk.read_text() == "hello"


@pytest.fixture
def db(db_path: Path) -> Path:
    catalog = Catalog(db_path)
    catalog.create_tenant("acme")
    catalog.create_tenant("beta")
    catalog.close()
    return db_path


@pytest.mark.parametrize("args", [
    ["query", "type:login", "--tenant", "nosuch"],
    ["export", "--tenant", "nosuch", "--out", "-"],
    ["keys", "list", "--tenant", "nosuch"],
    ["keys", "create", "--tenant", "nosuch"],
    ["users", "create", "bob", "--tenant", "nosuch", "--password", "pw"],
], ids=lambda a: " ".join(a[:2]))
def test_unknown_tenant_is_named(db: Path, args: list[str]) -> None:
    r = run(*args, "--db", str(db))
    msg = one_clear_line(r)
    assert r.exit_code == 2
    assert "no tenant 'nosuch'" in msg and "acme" in msg  # and which tenants there are


def test_tenants_create_may_create_the_database(tmp_path: Path) -> None:
    new = tmp_path / "fresh" / "a.db"
    r = run("tenants", "create", "acme", "--db", str(new))
    assert r.exit_code == 0 and new.exists()
    assert run("tenants", "list", "--db", str(new)).stdout.split() == ["acme"]


def test_problem_errors_are_sentences(db: Path) -> None:
    r = run("query", "severity:>=huge", "--tenant", "acme", "--db", str(db))
    assert r.exit_code == 1
    assert "{'" not in r.stderr and "Traceback" not in r.stderr
    assert "position" in r.stderr
    r = run("export", "--tenant", "acme", "--out", "-", "--since", "not-a-time", "--db", str(db))
    assert r.exit_code == 1 and "{'" not in r.stderr and "since" in r.stderr


def test_bad_setting_is_one_line(db: Path) -> None:
    r = run("tenants", "list", "--db", str(db), env={"AUDITSTREAM_PORT": "eighty"})
    msg = one_clear_line(r)
    assert r.exit_code == 2 and "AUDITSTREAM_PORT" in msg


def test_keys_list_shows_full_ids_names_and_iso_times(db: Path) -> None:
    created = json.loads(run("keys", "create", "--tenant", "acme", "--name", "ci deploy bot",
                             "--json", "--db", str(db)).stdout)
    r = run("keys", "list", "--db", str(db))
    assert r.exit_code == 0
    out = r.stdout
    assert created["id"] in out and "ci deploy bot" in out
    assert re.search(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\b", out)
    assert "…" not in out.replace(created["key"][:12] + "…", "")  # nothing else cut short
    run("keys", "revoke", created["id"], "--db", str(db))
    out = run("keys", "list", "--tenant", "acme", "--db", str(db)).stdout
    assert len(re.findall(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", out)) == 2  # created, revoked


def test_commands_that_read_write_nothing(tmp_path: Path) -> None:
    """query, export and verify open the file read-only: no migration, no statistics, no
    key file, the database bytes untouched."""
    import asyncio
    import hashlib

    from auditstream.app import build_store
    from auditstream.settings import Settings

    db = tmp_path / "r.db"
    settings = Settings(db=str(db), integrity=False)
    with_catalog = Catalog(db)
    with_catalog.create_tenant("acme")
    with_catalog.close()

    async def fill() -> None:
        store = build_store(settings)
        from auditstream.ingest.pipeline import Ingestor

        await Ingestor(store, max_events=100, max_bytes=10**6).ingest(
            "acme", b'[{"type":"login"},{"type":"logout"}]', "application/json")
        await store.close()

    asyncio.run(fill())
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    files = sorted(p.name for p in tmp_path.iterdir())
    env = {"AUDITSTREAM_INTEGRITY": "false"}
    assert run("query", "type:login", "--tenant", "acme", "--db", str(db), env=env
               ).exit_code == 0
    assert run("export", "--tenant", "acme", "--out", str(tmp_path / "o.ndjson"), "--db",
               str(db), env=env).exit_code == 0
    (tmp_path / "o.ndjson").unlink()
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == files


def test_migrate_creates_and_upgrades_the_schema(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    for _ in range(2):  # creates, then finds it current
        r = run("migrate", "--db", str(db))
        assert r.exit_code == 0 and "schema is current" in r.stdout
    from auditstream.dbapi import sqlite3
    from auditstream.store.sqlite.audit import check_schema

    conn = sqlite3.connect(db)
    paths = conn.execute("SELECT path, col FROM indexed_paths ORDER BY rowid").fetchall()
    assert paths and check_schema(conn, paths) == []
    conn.close()
