"""``auditstream ingest FILE``: says exactly what was committed, by file line, and a re-run
of the same file never stores an event twice."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from auditstream.auth.catalog import Catalog
from auditstream.cli import app
from auditstream.query.filter import All
from auditstream.store.sqlite import SQLiteEventStore


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def no_traceback(r: Result) -> None:
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output + r.stderr


def stored(db: Path, tenant: str = "acme") -> list[dict[str, Any]]:
    async def scan() -> list[dict[str, Any]]:
        store = SQLiteEventStore(str(db))
        try:
            return [ev async for batch in store.scan(tenant, All()) for ev in batch]
        finally:
            await store.close()

    return asyncio.run(scan())


@pytest.fixture
def db(db_path: Path) -> Path:
    catalog = Catalog(db_path)
    catalog.create_tenant("acme")
    catalog.close()
    return db_path


def line(n: int) -> str:
    """Line ``n`` of a realistic file: most lines without timestamp or id, some with both."""
    ev: dict[str, Any] = {"type": "login", "title": f"line {n}"}
    if n % 7 == 0:
        ev["timestamp"] = "2026-03-01T10:00:00Z"
    if n % 11 == 0:
        ev["id"] = f"own-{n}"
        ev["timestamp"] = "2026-03-02T10:00:00Z"
    return json.dumps(ev)


def titles(db: Path) -> list[str]:
    return [ev["title"] for ev in stored(db)]


@pytest.mark.parametrize("bad", [
    '{"type": "login", "title": "line 2500"',              # not JSON
    '{"type": "login", "timestamp": "yesterday-ish"}',     # not a valid event
])
def test_failure_in_batch_three_reports_committed_lines_and_rerun_adds_no_duplicate(
    db: Path, tmp_path: Path, bad: str
) -> None:
    lines = [line(n) for n in range(1, 3001)]
    lines[2499] = bad
    f = tmp_path / "events.ndjson"
    f.write_text("\n".join(lines) + "\n")

    r = run("ingest", str(f), "--tenant", "acme", "--batch", "1000", "--db", str(db))
    no_traceback(r)
    assert r.exit_code == 1
    assert "stored 2000 new (lines 1–2000)" in r.stdout
    assert "failed at line 2500" in r.stderr and "nothing was stored" not in r.output
    assert "{'" not in r.stderr  # field errors are sentences, not dict reprs
    assert titles(db) == [f"line {n}" for n in range(1, 2001)]

    # The same file again, still broken: the first 2000 are recognised, not re-stored.
    r = run("ingest", str(f), "--tenant", "acme", "--batch", "1000", "--db", str(db))
    assert r.exit_code == 1
    assert "stored 0 new, 2000 already present (lines 1–2000)" in r.stdout
    assert len(stored(db)) == 2000

    lines[2499] = line(2500)
    f.write_text("\n".join(lines) + "\n")
    r = run("ingest", str(f), "--tenant", "acme", "--batch", "1000", "--db", str(db))
    no_traceback(r)
    assert r.exit_code == 0, r.output + r.stderr
    assert "stored 1000 new (lines 2001–3000), 2000 already present (lines 1–2000)" in r.stdout
    assert sorted(titles(db)) == sorted(f"line {n}" for n in range(1, 3001))


def test_field_error_names_file_line_and_field(db: Path, tmp_path: Path) -> None:
    f = tmp_path / "events.ndjson"
    f.write_text('{"type": "a"}\n\n{"type": "b"}\n{"type": "c", "timestamp": "soon"}\n')
    r = run("ingest", str(f), "--tenant", "acme", "--db", str(db))
    no_traceback(r)
    assert r.exit_code == 1
    # Line numbers are the file's own (the blank line 2 counts), not positions in a batch.
    assert "line 4: field timestamp: " in r.stderr
    assert "lines 1–4" in r.stderr  # the refused batch, named so the user knows
    assert stored(db) == []


def test_bad_json_names_the_line_in_one_line(db: Path, tmp_path: Path) -> None:
    f = tmp_path / "events.ndjson"
    f.write_text('{"type": "a"}\n{"type": "b",, }\n')
    r = run("ingest", str(f), "--tenant", "acme", "--db", str(db))
    no_traceback(r)
    assert r.exit_code == 1
    first = r.stderr.splitlines()[0]
    assert first.startswith("error: failed at line 2: invalid JSON") and "column" in first


def test_json_array_file_reports_items(db: Path, tmp_path: Path) -> None:
    f = tmp_path / "events.json"
    items = [{"type": "a", "title": "one"}, {"type": "b", "title": "two"}, {"type": 3}]
    f.write_text(json.dumps(items, indent=2))
    r = run("ingest", str(f), "--tenant", "acme", "--batch", "2", "--db", str(db))
    no_traceback(r)
    assert r.exit_code == 1
    assert "stored 2 new (items 1–2)" in r.stdout
    assert "item 3: field type: " in r.stderr
    f.write_text(json.dumps(items[:2] + [{"type": "c", "title": "three"}], indent=2))
    r = run("ingest", str(f), "--tenant", "acme", "--batch", "2", "--db", str(db))
    assert r.exit_code == 0, r.stderr
    assert "stored 1 new (item 3), 2 already present (items 1–2)" in r.stdout
    assert sorted(titles(db)) == ["one", "three", "two"]

    f.write_text('[{"type": "a"},\n {"type": }]')
    r = run("ingest", str(f), "--tenant", "acme", "--db", str(db))
    no_traceback(r)
    assert r.exit_code == 1 and "line 2" in r.stderr and "invalid JSON" in r.stderr


def test_same_line_in_another_file_is_a_new_event(db: Path, tmp_path: Path) -> None:
    """Identity is the line *and everything before it*: a different file that happens to
    share a line (no timestamp, no id) does not lose that event as a "duplicate"."""
    a, b = tmp_path / "a.ndjson", tmp_path / "b.ndjson"
    a.write_text('{"type": "heartbeat"}\n{"type": "x"}\n')
    b.write_text('{"type": "y"}\n{"type": "heartbeat"}\n')
    assert run("ingest", str(a), "--tenant", "acme", "--db", str(db)).exit_code == 0
    r = run("ingest", str(b), "--tenant", "acme", "--db", str(db))
    assert r.exit_code == 0 and "stored 2 new" in r.stdout
    # A file that grew (an append-only log) stores only its new lines.
    a.write_text('{"type": "heartbeat"}\n{"type": "x"}\n{"type": "z"}\n')
    r = run("ingest", str(a), "--tenant", "acme", "--db", str(db))
    assert "stored 1 new (line 3), 2 already present (lines 1–2)" in r.stdout
    assert len(stored(db)) == 5


def test_own_id_with_other_content_is_a_failure_at_its_line(db: Path, tmp_path: Path) -> None:
    f = tmp_path / "events.ndjson"
    f.write_text('{"type": "a", "id": "x1", "timestamp": "2026-01-01T00:00:00Z"}\n')
    assert run("ingest", str(f), "--tenant", "acme", "--db", str(db)).exit_code == 0
    r = run("ingest", str(f), "--tenant", "acme", "--db", str(db))
    assert r.exit_code == 0 and "1 already present (line 1)" in r.stdout
    f.write_text('{"type": "a"}\n{"type": "b", "id": "x1", "timestamp": "2026-01-01T00:00:00Z"}\n')
    r = run("ingest", str(f), "--tenant", "acme", "--db", str(db))
    no_traceback(r)
    assert r.exit_code == 1 and "line 2: field id: " in r.stderr
    assert len(stored(db)) == 1


def test_batches_stay_under_the_body_limit(db: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITSTREAM_MAX_BODY_BYTES", "2000")
    f = tmp_path / "events.ndjson"
    f.write_text("".join(json.dumps({"type": "a", "title": "x" * 300}) + "\n"
                         for _ in range(20)))
    r = run("ingest", str(f), "--tenant", "acme", "--db", str(db))
    assert r.exit_code == 0, r.stderr
    assert len(stored(db)) == 20
    f.write_text(json.dumps({"type": "a", "title": "x" * 3000}) + "\n")
    r = run("ingest", str(f), "--tenant", "acme", "--db", str(db))
    no_traceback(r)
    assert r.exit_code == 1 and "failed at line 1" in r.stderr and "2000" in r.stderr


@pytest.mark.parametrize("args, needle", [
    (["--batch", "0"], "--batch"),
    (["--batch", "20000"], "--batch"),
    (["--tenant", "nosuch"], "nosuch"),
])
def test_usage_errors_exit_2(db: Path, tmp_path: Path, args: list[str], needle: str) -> None:
    f = tmp_path / "events.ndjson"
    f.write_text('{"type": "a"}\n')
    r = run("ingest", str(f), "--db", str(db), *(["--tenant", "acme"] + args))
    no_traceback(r)
    assert r.exit_code == 2 and needle in r.stderr
    assert stored(db) == []


def test_help_documents_exit_codes() -> None:
    out = run("ingest", "--help").stdout
    assert "Exit status" in out and "0" in out and "1" in out and "2" in out
