"""``auditstream integrations …``: push integrations on the database file, as
``/v1/integrations`` manages them (the same service and checks).

A running server picks changes up within a second (its deliverers re-read their state),
so the CLI and a server can share the files. ``test`` sends from this process.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .cli_support import USAGE, err, existing_db, existing_tenant, fail, problem_lines
from .cli_support import settings as load_settings
from .delivery.service import IntegrationService
from .errors import ProblemError

__all__ = ["register"]

T = TypeVar("T")
integrations_app = typer.Typer(help="Manage push integrations (webhook, slack, splunk_hec, "
                               "syslog).", no_args_is_help=True)
wide = Console(width=10_000)

DbOpt = Annotated[str | None, typer.Option("--db", help="SQLite database file (else "
                                           "AUDITSTREAM_DB, else data/auditstream.db)")]
TenantOpt = Annotated[str, typer.Option(help="The tenant the integration belongs to")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON")]


def _run(db: str | None, tenant: str, work: Callable[[IntegrationService], Awaitable[T]]) -> T:
    """``work`` with the service over the database (read-only: the CLI never writes
    events) and the delivery state; a ``ProblemError`` becomes one line and exit 1."""
    from .app import build_integrations, build_store

    settings = load_settings(db=db)
    path = existing_db(settings.db)
    existing_tenant(path, tenant)

    async def go() -> T:
        store = build_store(settings, readonly=True)
        service, _ = build_integrations(settings, store, deliver=False)
        try:
            return await work(service)
        finally:
            service.state.close()
            await store.close()

    try:
        return asyncio.run(go())
    except ProblemError as exc:
        fail(exc.detail, 1, *(f"  {line}" for line in problem_lines(exc)))


def _config(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        fail(f"--config is not JSON: {exc}", USAGE)
    if not isinstance(doc, dict):
        fail("--config must be a JSON object", USAGE)
    return doc


def _print(doc: Any, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(doc) + "\n")
        return
    table = Table("field", "value")
    for k, v in doc.items():
        table.add_row(Text(k), Text(json.dumps(v) if isinstance(v, dict | list) else str(v)))
    wide.print(table, markup=False, highlight=False)


@integrations_app.command("create")
def create(
    tenant: TenantOpt,
    name: Annotated[str, typer.Option(help="A label")],
    kind: Annotated[str, typer.Option(help="webhook, slack, splunk_hec or syslog")],
    config: Annotated[str, typer.Option(help='The kind\'s config as JSON, e.g. '
                                        '\'{"url": "https://siem.example/hook"}\'')],
    rule: Annotated[str, typer.Option(help="A q filter: the events delivered "
                                      "(empty: all)")] = "",
    fmt: Annotated[str, typer.Option("--format", help="native, cloudevents, vaultterm or "
                                     "authpi")] = "native",
    start_after_seq: Annotated[int | None, typer.Option(
        help="Deliver the events after this seq (default: only new events)")] = None,
    paused: Annotated[bool, typer.Option(help="Create it paused")] = False,
    as_json: JsonOpt = False,
    db: DbOpt = None,
) -> None:
    """Create an integration; a generated webhook secret is printed once."""
    doc: dict[str, Any] = {"name": name, "kind": kind, "rule": rule, "format": fmt,
                           "config": _config(config), "enabled": not paused}
    if start_after_seq is not None:
        doc["start_after_seq"] = start_after_seq
    made = _run(db, tenant, lambda s: s.create(tenant, doc))
    _print(made, as_json)
    if "secret" in made and not as_json:
        err.print("the secret is shown once: store it now", markup=False)


@integrations_app.command("list")
def list_cmd(tenant: TenantOpt, as_json: JsonOpt = False, db: DbOpt = None) -> None:
    """The tenant's integrations with their state and lag."""
    found = _run(db, tenant, lambda s: s.list_for(tenant))
    if as_json:
        for doc in found:
            sys.stdout.write(json.dumps(doc) + "\n")
        return
    table = Table("id", "name", "kind", "format", "state", "lag", "cursor", "last success",
                  "last error")
    for i in found:
        table.add_row(*map(Text, (i["id"], i["name"], i["kind"], i["format"], i["state"],
                                  str(i["lag"]), str(i["cursor"]), i["last_success_at"] or "",
                                  i["last_error"] or "")))
    wide.print(table, markup=False, highlight=False)


@integrations_app.command("show")
def show(integration_id: str, tenant: TenantOpt, as_json: JsonOpt = False,
         db: DbOpt = None) -> None:
    """One integration: config (secrets masked), state, lag, last success and error."""
    _print(_run(db, tenant, lambda s: s.show(tenant, integration_id)), as_json)


@integrations_app.command("update")
def update(
    integration_id: str, tenant: TenantOpt,
    name: Annotated[str | None, typer.Option(help="A new label")] = None,
    rule: Annotated[str | None, typer.Option(help="A new q filter")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="A new payload format")] = None,
    config: Annotated[str | None, typer.Option(
        help="Config keys to change, as JSON (merged; null removes a key)")] = None,
    enabled: Annotated[bool | None, typer.Option("--enable/--pause",
                                                 help="Resume or pause delivery")] = None,
    as_json: JsonOpt = False,
    db: DbOpt = None,
) -> None:
    """Change, pause or resume an integration."""
    doc = {k: v for k, v in {"name": name, "rule": rule, "format": fmt,
                             "config": _config(config), "enabled": enabled}.items()
           if v is not None}
    _print(_run(db, tenant, lambda s: s.update(tenant, integration_id, doc)), as_json)


@integrations_app.command("delete")
def delete(integration_id: str, tenant: TenantOpt, db: DbOpt = None) -> None:
    """Delete an integration with its state and dead letters."""

    async def go(s: IntegrationService) -> None:
        s.delete(tenant, integration_id)

    _run(db, tenant, go)
    err.print(f"deleted {integration_id}", markup=False)


@integrations_app.command("test")
def test(integration_id: str, tenant: TenantOpt, as_json: JsonOpt = False,
         db: DbOpt = None) -> None:
    """Send a test event now and show what the receiver answered (exit 1 if it failed)."""
    answer = _run(db, tenant, lambda s: s.test(tenant, integration_id))
    _print(answer, as_json)
    if not answer["ok"]:
        raise typer.Exit(1)


@integrations_app.command("attempts")
def attempts(integration_id: str, tenant: TenantOpt,
             limit: Annotated[int, typer.Option(min=1, max=200)] = 20,
             as_json: JsonOpt = False, db: DbOpt = None) -> None:
    """Recent attempts, newest first: status, latency, response code, error."""

    async def go(s: IntegrationService) -> list[dict[str, Any]]:
        return s.attempts(tenant, integration_id, limit)

    found = _run(db, tenant, go)
    if as_json:
        for doc in found:
            sys.stdout.write(json.dumps(doc) + "\n")
        return
    table = Table("at", "action", "ok", "seqs", "status", "ms", "error")
    for a in found:
        table.add_row(*map(Text, (a["at"], a["action"], "yes" if a["ok"] else "no",
                                  f"{a['first_seq']}-{a['last_seq']}" if a["events"] else "",
                                  str(a["status_code"] or ""), f"{a['latency_ms']:.1f}",
                                  a["error"] or "")))
    wide.print(table, markup=False, highlight=False)


@integrations_app.command("dead-letters")
def dead_letters(integration_id: str, tenant: TenantOpt,
                 limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
                 as_json: JsonOpt = False, db: DbOpt = None) -> None:
    """Events the receiver refused, in seq order."""

    async def go(s: IntegrationService) -> dict[str, Any]:
        return s.dead_letters(tenant, integration_id, 0, limit)

    found = _run(db, tenant, go)["data"]
    if as_json:
        for doc in found:
            sys.stdout.write(json.dumps(doc) + "\n")
        return
    table = Table("seq", "event", "attempts", "last error", "dead at", "redeliver")
    for d in found:
        table.add_row(*map(Text, (str(d["seq"]), d["event_id"], str(d["attempts"]),
                                  d["last_error"], d["dead_at"],
                                  "requested" if d["redeliver_requested"] else "")))
    wide.print(table, markup=False, highlight=False)


@integrations_app.command("redeliver")
def redeliver(integration_id: str, tenant: TenantOpt,
              seq: Annotated[list[int] | None, typer.Option(
                  help="A dead letter's seq (repeatable; default: all)")] = None,
              db: DbOpt = None) -> None:
    """Send dead letters again (the server that delivers the integration does it)."""

    async def go(s: IntegrationService) -> dict[str, Any]:
        return s.redeliver(tenant, integration_id, {"seqs": seq} if seq else None)

    answer = _run(db, tenant, go)
    err.print(f"{answer['requested']} dead letter(s) marked for redelivery", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(integrations_app, name="integrations")
