"""``auditstream export`` (database file) and ``auditstream pull`` (HTTP, exactly once)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from auditstream import cli_export
from auditstream.cli_export import PullError, pull, register
from auditstream.export import COLUMNS


def events(n: int, start: int = 0, ts: str | None = None) -> list[dict[str, Any]]:
    return [{"type": "deploy" if i % 2 else "login", "title": f"=evil {i}" if i == 1 else f"e{i}",
             "timestamp": ts or f"2026-02-{1 + i % 27:02d}T10:00:00Z",
             "severity": "high" if i % 5 == 0 else "info"} for i in range(start, start + n)]


def stamp(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def ingest(client: Any, evs: list[dict[str, Any]]) -> None:
    r = client.post("/v1/events", content=orjson.dumps(evs),
                    headers={"content-type": "application/json"})
    assert r.status_code == 201, r.text


@pytest.fixture
def srv(server: Any) -> Any:
    return server


def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def read_ndjson(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()]


# -- export -------------------------------------------------------------------------


def test_export_command_all_formats(srv: Any, tmp_path: Path) -> None:
    ingest(srv.client(srv.key("acme")), events(1200))
    runner = CliRunner()
    db = srv.settings.db
    for fmt in ("ndjson", "csv", "parquet"):
        out = tmp_path / f"x.{fmt}"
        r = runner.invoke(cli(), ["export", "--tenant", "acme", "--format", fmt,
                                  "--out", str(out), "--db", db])
        assert r.exit_code == 0, r.output
        assert not list(tmp_path.glob(".*.partial"))
        if fmt == "ndjson":
            assert [e["seq"] for e in read_ndjson(out)] == list(range(1, 1201))
        elif fmt == "csv":
            rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"), newline="")))
            assert tuple(rows[0]) == COLUMNS and len(rows) == 1201
            assert rows[2][COLUMNS.index("title")] == "'=evil 1"
        else:
            assert pq.read_table(out).column("seq").to_pylist() == list(range(1, 1201))
    out = tmp_path / "high.ndjson"
    r = runner.invoke(cli(), ["export", "--tenant", "acme", "--q", "severity:high type:login",
                              "--since", "2026-02-02", "--out", str(out), "--db", db])
    assert r.exit_code == 0, r.output
    got = read_ndjson(out)
    assert got and all(e["severity"] == "high" and e["type"] == "login"
                       and e["timestamp"] >= "2026-02-02" for e in got)
    assert runner.invoke(cli(), ["export", "--tenant", "nope", "--out", str(out),
                                 "--db", db]).exit_code != 0
    assert runner.invoke(cli(), ["export", "--tenant", "acme", "--q", "(((", "--out",
                                 str(out), "--db", db]).exit_code == 1


# -- pull ---------------------------------------------------------------------------


def test_pull_twice_every_event_exactly_once(srv: Any, tmp_path: Path) -> None:
    key = srv.key("acme")
    client = srv.client(key)
    state, out = tmp_path / "state.json", tmp_path / "out.ndjson"
    ingest(client, events(250))
    r1 = pull(srv.url, key, state, out, batch=100)
    assert (r1.events, r1.after_seq, r1.requests) == (250, 250, 3)
    # New events, one of them late with a timestamp long before everything pulled so far:
    # a time-window pull would miss it; a seq pull cannot.
    ingest(client, events(30, start=250) + events(1, start=999, ts="2001-01-01T00:00:00Z"))
    r2 = pull(srv.url, key, state, out, batch=100)
    assert (r2.events, r2.after_seq) == (31, 281)
    r3 = pull(srv.url, key, state, out, batch=100)
    assert r3.events == 0
    got = read_ndjson(out)
    assert [e["seq"] for e in got] == list(range(1, 282))
    assert len({e["id"] for e in got}) == 281
    doc = orjson.loads(state.read_bytes())
    assert doc["after_seq"] == 281 and doc["tenant"] == "acme"
    assert doc["output"]["size"] == out.stat().st_size


def test_state_only_advances_after_output_is_durable(
    srv: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = srv.key("acme")
    ingest(srv.client(key), events(300))
    state, out = tmp_path / "state.json", tmp_path / "out.ndjson"
    real_commit = cli_export.commit_state
    fsynced: list[int] = []
    real_fsync = cli_export.os.fsync

    def spy_fsync(fd: int) -> None:
        fsynced.append(fd)
        real_fsync(fd)

    def checked_commit(path: Path, st: Any) -> None:
        # At every commit, the output on disk already holds exactly what the state claims.
        lines = out.read_bytes().splitlines()
        assert out.stat().st_size == st.output["size"]
        assert (orjson.loads(lines[-1])["seq"] if lines else 0) == st.after_seq
        assert fsynced, "output not fsynced before the state"
        real_commit(path, st)

    monkeypatch.setattr(cli_export.os, "fsync", spy_fsync)
    monkeypatch.setattr(cli_export, "commit_state", checked_commit)
    assert pull(srv.url, key, state, out, batch=128).events == 300

    # Kill between the output fsync and the state commit (3rd commit: after chunk 2).
    ingest(srv.client(key), events(300, start=300))
    state2, out2 = tmp_path / "s2.json", tmp_path / "o2.ndjson"
    calls = {"n": 0}

    def dying_commit(path: Path, st: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        real_commit(path, st)

    monkeypatch.setattr(cli_export, "commit_state", dying_commit)
    with pytest.raises(KeyboardInterrupt):
        pull(srv.url, key, state2, out2, batch=200)
    assert orjson.loads(state2.read_bytes())["after_seq"] == 200
    assert len(out2.read_bytes().splitlines()) == 400  # 200 written but never committed
    monkeypatch.setattr(cli_export, "commit_state", real_commit)
    again = pull(srv.url, key, state2, out2, batch=200)
    assert again.discarded_bytes > 0 and again.events == 400
    assert [e["seq"] for e in read_ndjson(out2)] == list(range(1, 601))


def test_interrupted_transfer_keeps_complete_lines(
    srv: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = srv.key("acme")
    ingest(srv.client(key), events(500))
    state, out = tmp_path / "state.json", tmp_path / "out.ndjson"
    real_check = cli_export._check_line
    seen = {"n": 0}

    def cut(line: bytes, st: Any, last: int, filtered: bool) -> int:
        seen["n"] += 1
        if seen["n"] == 321:
            raise PullError("connection lost")
        return real_check(line, st, last, filtered)

    monkeypatch.setattr(cli_export, "_check_line", cut)
    with pytest.raises(PullError):
        pull(srv.url, key, state, out)
    assert orjson.loads(state.read_bytes())["after_seq"] == 320
    monkeypatch.setattr(cli_export, "_check_line", real_check)
    assert pull(srv.url, key, state, out).events == 180
    assert [e["seq"] for e in read_ndjson(out)] == list(range(1, 501))


def test_first_run_window_then_late_events(srv: Any, tmp_path: Path) -> None:
    key = srv.key("acme")
    client = srv.client(key)
    now = datetime.now(UTC)
    ingest(client, events(50, ts=stamp(now - timedelta(days=30))))  # before the horizon
    ingest(client, events(5, start=50, ts=stamp(now - timedelta(days=1))))  # inside
    state, out = tmp_path / "state.json", tmp_path / "out.ndjson"
    first = pull(srv.url, key, state, out, window="7d", batch=2)
    assert first.events == 5 and first.after_seq == 55
    assert orjson.loads(state.read_bytes())["since"] is None  # caught up: horizon done
    ingest(client, events(3, start=100, ts="2019-06-01T00:00:00Z"))  # late, old stamps
    assert pull(srv.url, key, state, out).events == 3
    assert [e["seq"] for e in read_ndjson(out)] == [51, 52, 53, 54, 55, 56, 57, 58]


def test_pull_guards(srv: Any, tmp_path: Path) -> None:
    key_a, key_b = srv.key("acme"), srv.key("beta")
    ingest(srv.client(key_a), events(3))
    ingest(srv.client(key_b), events(3))
    state, out = tmp_path / "state.json", tmp_path / "out.ndjson"
    pull(srv.url, key_a, state, out)
    ingest(srv.client(key_a), events(2, start=3))
    with pytest.raises(PullError, match="tenant"):
        pull(srv.url, key_b, state, out)  # beta's seq 4.. would skip acme's events
    with pytest.raises(PullError, match="belongs to"):
        pull(srv.url.replace("127.0.0.1", "localhost"), key_a, state, out)
    with pytest.raises(PullError, match="401"):
        pull(srv.url, "sk_live_wrong", tmp_path / "s.json", tmp_path / "o.ndjson")
    lock = open(state.with_name(state.name + ".lock"), "a+b")  # noqa: SIM115
    import fcntl

    fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
    try:
        with pytest.raises(PullError, match="another pull"):
            pull(srv.url, key_a, state, out)
    finally:
        lock.close()
    r = CliRunner().invoke(cli(), ["pull", "--url", srv.url, "--key", key_a, "--state",
                                   str(state), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert [e["seq"] for e in read_ndjson(out)] == [1, 2, 3, 4, 5]
