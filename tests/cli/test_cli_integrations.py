"""``auditstream integrations …`` on a database file, with a real receiver."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook
from typer.testing import CliRunner, Result

from auditstream.app import build_store
from auditstream.cli import app
from auditstream.model.ids import new_event_id
from auditstream.model.times import format_us, now_us
from auditstream.settings import Settings
from delivery.receiver import Answer, Receiver


@pytest.fixture
def db(db_path: Path) -> Path:
    r = CliRunner().invoke(app, ["tenants", "create", "acme", "--db", str(db_path)])
    assert r.exit_code == 0, r.output
    return db_path


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


def run(db: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["integrations", *args, "--db", str(db)],
                              env={"AUDITSTREAM_PUSH_ALLOW_PRIVATE": "127.0.0.1"})


def test_create_list_test_update_delete(db: Path, receiver: Receiver) -> None:
    r = run(db, "create", "--tenant", "acme", "--name", "siem", "--kind", "webhook",
            "--rule", "severity:>=high", "--config", json.dumps({"url": receiver.url}),
            "--json")
    assert r.exit_code == 0, r.output
    made = json.loads(r.stdout)
    assert made["secret"].startswith("whsec_") and made["config"]["secret"] == "********"
    listed = [json.loads(line) for line in
              run(db, "list", "--tenant", "acme", "--json").stdout.splitlines()]
    assert [(i["id"], i["state"], i["rule"]) for i in listed] == [
        (made["id"], "active", "severity:>=high")]
    assert made["id"] in run(db, "list", "--tenant", "acme").stdout  # the table
    assert made["secret"] not in run(db, "show", made["id"], "--tenant", "acme").stdout

    r = run(db, "test", made["id"], "--tenant", "acme", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["status_code"] == 200
    Webhook(made["secret"]).verify(receiver.requests[0].body, receiver.requests[0].headers)
    receiver.default = Answer(500)
    assert run(db, "test", made["id"], "--tenant", "acme").exit_code == 1
    attempts = [json.loads(line) for line in run(
        db, "attempts", made["id"], "--tenant", "acme", "--json").stdout.splitlines()]
    assert [a["status_code"] for a in attempts] == [500, 200]

    r = run(db, "update", made["id"], "--tenant", "acme", "--pause", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["state"] == "paused"
    assert run(db, "dead-letters", made["id"], "--tenant", "acme", "--json").stdout == ""
    r = run(db, "redeliver", made["id"], "--tenant", "acme")
    assert r.exit_code == 0 and "0 dead letter" in r.stderr
    assert run(db, "delete", made["id"], "--tenant", "acme").exit_code == 0
    r = run(db, "show", made["id"], "--tenant", "acme")
    assert r.exit_code == 1 and "no integration" in r.stderr


def test_lag_counts_the_events_written_to_the_file(db: Path, receiver: Receiver) -> None:
    made = json.loads(run(db, "create", "--tenant", "acme", "--name", "n", "--kind",
                          "webhook", "--config", json.dumps({"url": receiver.url}),
                          "--paused", "--json").stdout)

    async def append() -> None:
        store = build_store(Settings(db=str(db)))
        await store.append("acme", [{"id": new_event_id(), "tenant": "acme",
                                     "timestamp": format_us(now_us()),
                                     "received_at": format_us(now_us()), "type": "t",
                                     "severity": "info"}])
        await store.close()

    asyncio.run(append())
    shown = json.loads(run(db, "show", made["id"], "--tenant", "acme", "--json").stdout)
    assert (shown["state"], shown["lag"]) == ("paused", 1)


@pytest.mark.parametrize(("args", "expect"), [
    (["--config", '{"url": "ftp://x"}'], "config.url"),
    (["--config", "not json"], "--config is not JSON"),
    (["--config", "[1]"], "must be a JSON object"),
    (["--config", '{"url": "https://e.com"}', "--rule", "severity:>="], "rule"),
    (["--config", '{"url": "https://e.com"}', "--format", "xml"], "format"),
])
def test_bad_input_is_one_clear_error(db: Path, args: list[str], expect: str) -> None:
    r = run(db, "create", "--tenant", "acme", "--name", "n", "--kind", "webhook", *args)
    assert r.exit_code in (1, 2) and expect in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert run(db, "list", "--tenant", "acme", "--json").stdout == ""


def test_unknown_tenant(db: Path) -> None:
    r = run(db, "list", "--tenant", "nope")
    assert r.exit_code == 2 and "nope" in r.stderr
