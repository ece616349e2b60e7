"""The ``auditstream`` command: serve, tenants, keys, users, ingest, query.

``ingest`` and ``query`` work on the database file directly (``--db``), through the same
store and pipeline the server uses; the store notices writes from other processes, so a
running server and the CLI can share one file.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .auth.catalog import Catalog
from .auth.principal import DEFAULT_SCOPES
from .cli_export import register as register_export
from .errors import ProblemError
from .settings import Settings, describe

app = typer.Typer(help="auditstream: self-hosted security and audit events.", no_args_is_help=True)
tenants_app = typer.Typer(help="Manage tenants.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
users_app = typer.Typer(help="Manage users (password login for compat profiles).",
                        no_args_is_help=True)
app.add_typer(tenants_app, name="tenants")
app.add_typer(keys_app, name="keys")
app.add_typer(users_app, name="users")
console = Console()
err = Console(stderr=True)

DbOpt = Annotated[str | None, typer.Option("--db", help="SQLite database file "
                                           "[env AUDITSTREAM_DB; default data/auditstream.db]")]


def _settings(**overrides: Any) -> Settings:
    return Settings.from_env(**overrides)


def _catalog(db: str | None) -> Catalog:
    return Catalog(_settings(db=db).db)


def _fail(exc: ProblemError) -> None:
    err.print(f"[red]error:[/red] {exc.detail}")
    for e in exc.errors:
        err.print(f"  {e}")
    raise typer.Exit(1)


_SERVE_HELP = "Start the HTTP server.\n\nSettings (environment variables):\n\n" + "\n\n".join(
    f"{env} (default {default!r}): {help}" for _n, env, default, help in describe()
)


@app.command(help=_SERVE_HELP)
def serve(
    db: DbOpt = None,
    host: Annotated[str | None, typer.Option(help="Interface [env AUDITSTREAM_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [env AUDITSTREAM_PORT]")] = None,
    demo: Annotated[bool | None, typer.Option(
        "--demo/--no-demo", help="Load demo data into an empty database")] = None,
) -> None:
    import uvicorn

    from .app import create_app

    settings = _settings(db=db, host=host, port=port, demo=demo)
    application = create_app(settings)
    uvicorn.run(application, host=settings.host, port=settings.port, log_level="warning",
                loop="uvloop", http="httptools", access_log=False)


@tenants_app.command("create")
def tenants_create(name: str, db: DbOpt = None) -> None:
    """Create a tenant."""
    try:
        _catalog(db).create_tenant(name)
    except ProblemError as exc:
        _fail(exc)
    console.print(f"created tenant {name}")


@tenants_app.command("list")
def tenants_list(db: DbOpt = None) -> None:
    """List tenants."""
    for name in _catalog(db).tenants():
        console.print(name)


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant the key belongs to")],
    scope: Annotated[list[str] | None, typer.Option(
        help="events:write, events:read or admin (repeatable)")] = None,
    name: Annotated[str | None, typer.Option(help="A label for the key")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    db: DbOpt = None,
) -> None:
    """Create an API key; the key is printed once and cannot be shown again."""
    try:
        key = _catalog(db).create_key(tenant, scope or list(DEFAULT_SCOPES), name=name)
    except ProblemError as exc:
        _fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(key.as_dict()) + "\n")
    else:
        sys.stdout.write(f"{key.secret}\n")
        err.print(f"key {key.id} for tenant {tenant}, scopes {' '.join(key.scopes)} "
                  "(store it now: it is not shown again)")


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print NDJSON")] = False,
    db: DbOpt = None,
) -> None:
    """List API keys (never the secrets)."""
    keys = _catalog(db).keys(tenant)
    if as_json:
        for k in keys:
            sys.stdout.write(json.dumps(k.as_dict()) + "\n")
        return
    table = Table("id", "tenant", "scopes", "hint", "revoked")
    for k in keys:
        table.add_row(k.id, k.tenant, " ".join(k.scopes), k.hint, "yes" if k.revoked else "")
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str, db: DbOpt = None) -> None:
    """Revoke an API key by id."""
    try:
        _catalog(db).revoke_key(key_id)
    except ProblemError as exc:
        _fail(exc)
    console.print(f"revoked {key_id}")


@users_app.command("create")
def users_create(
    username: str,
    tenant: Annotated[str, typer.Option(help="Tenant of the user")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True,
                                          help="Password (prompted when left out)")],
    scope: Annotated[list[str] | None, typer.Option(help="Scopes (repeatable)")] = None,
    user_id: Annotated[int | None, typer.Option(help="Numeric user id")] = None,
    db: DbOpt = None,
) -> None:
    """Create a user who can log in with a password."""
    try:
        _catalog(db).create_user(tenant, username, password, scope or ["events:read"],
                                 user_id=user_id)
    except ProblemError as exc:
        _fail(exc)
    console.print(f"created user {username} in tenant {tenant}")


def _read_events(path: Path) -> list[Any]:
    raw = path.read_bytes().strip()
    if raw[:1] == b"[":
        data = orjson.loads(raw)
        return data if isinstance(data, list) else [data]
    return [orjson.loads(line) for line in raw.splitlines() if line.strip()]


@app.command()
def ingest(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                         help="NDJSON or a JSON array")],
    tenant: Annotated[str, typer.Option(help="Tenant to ingest into")] = "demo",
    batch: Annotated[int, typer.Option(help="Events per append")] = 1000,
    db: DbOpt = None,
) -> None:
    """Ingest events from a file, atomically per batch, with a progress bar."""
    from .app import build_services

    events = _read_events(file)
    settings = _settings(db=db)

    async def run() -> int:
        svc = build_services(settings)
        done = 0
        try:
            if not svc.catalog.tenant_exists(tenant):
                raise typer.BadParameter(f"no tenant {tenant!r}")
            with Progress(TextColumn("ingest"), BarColumn(), MofNCompleteColumn(),
                          TimeRemainingColumn(), console=err) as bar:
                task = bar.add_task("ingest", total=len(events))
                for start in range(0, len(events), batch):
                    chunk = events[start:start + batch]
                    await svc.ingestor.ingest(tenant, orjson.dumps(chunk), "application/json")
                    done += len(chunk)
                    bar.update(task, advance=len(chunk))
        finally:
            await svc.store.close()
            svc.catalog.close()
        return done

    try:
        n = asyncio.run(run())
    except ProblemError as exc:
        _fail(exc)
    err.print(f"ingested {n} events into {tenant}")


@app.command()
def query(
    q: Annotated[str, typer.Argument(help="Filter in the q language, e.g. 'severity:>=high'")],
    tenant: Annotated[str, typer.Option(help="Tenant to query")] = "demo",
    limit: Annotated[int, typer.Option(help="Most events to show")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print NDJSON")] = False,
    db: DbOpt = None,
) -> None:
    """Query events: a table in the terminal, NDJSON with --json."""
    from .model.times import now_us
    from .query.qlang import parse_q
    from .store.base import EventQuery
    from .store.sqlite import SQLiteEventStore

    settings = _settings(db=db)
    try:
        where = parse_q(q, now_us=now_us())
    except ProblemError as exc:
        _fail(exc)

    async def run() -> list[dict[str, Any]]:
        store = SQLiteEventStore(settings.db, indexed_paths=settings.indexed_path_list)
        try:
            page = await store.query(tenant, EventQuery(filter=where, limit=limit))
            return page.events
        finally:
            await store.close()

    events = asyncio.run(run())
    if as_json:
        for ev in events:
            sys.stdout.buffer.write(orjson.dumps(ev) + b"\n")
        return
    table = Table("timestamp", "type", "severity", "outcome", "title")
    for ev in events:
        table.add_row(ev.get("timestamp", ""), ev.get("type", ""), ev.get("severity", ""),
                      ev.get("outcome") or "", (ev.get("title") or "")[:80])
    console.print(table)


@app.command()
def purge(
    tenant: Annotated[str, typer.Option(help="Tenant whose old events to purge")],
    before: Annotated[str, typer.Option(help="Purge events older than this (date, RFC 3339 "
                                        "or a duration such as 90d)")],
    reason: Annotated[str, typer.Option(help="Recorded in each purged event")] = "retention",
    db: DbOpt = None,
) -> None:
    """Retention: erase the content of old events, keeping what proofs need."""
    from .model.times import TimeParseError, parse_time
    from .store.sqlite import SQLiteEventStore

    try:
        cutoff = parse_time(before, allow_relative=True)
    except TimeParseError as exc:
        raise typer.BadParameter(str(exc)) from None
    settings = _settings(db=db)

    async def run() -> int:
        store = SQLiteEventStore(settings.db, indexed_paths=settings.indexed_path_list)
        try:
            return await store.purge(tenant, cutoff, reason, actor={"type": "cli"})
        finally:
            await store.close()

    console.print(f"purged {asyncio.run(run())} events of {tenant}")


def _public_key(value: str) -> str:
    """A verifier key given inline (name+id+key) or as a file holding one."""
    path = Path(value)
    if "+" not in value or path.exists():
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise typer.BadParameter(f"cannot read public key {value!r}: {exc}") from None
    return value.strip()


@app.command()
def verify(
    db: DbOpt = None,
    bundle: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False, help="Check an export bundle instead of a database")] = None,
    public_key: Annotated[str | None, typer.Option(
        "--public-key", help="Verifier key (or a file holding it); default: the key "
        "stored beside the database")] = None,
    checkpoint: Annotated[list[Path] | None, typer.Option(
        "--checkpoint", exists=True, dir_okay=False,
        help="A signed checkpoint kept outside the server (as served by "
        "/v1/integrity/checkpoint, or saved by pull and export --bundle); the database "
        "must contain it, so a rollback of the newest events is caught. Repeatable.")] = None,
) -> None:
    """Prove the database (or a bundle) against its signed logs; exit 1 at the first fault.

    Checks every tenant's events, redactions, Merkle tree and signed checkpoints, and
    everything queries read besides the bodies (columns, indexes, full-text rows, hourly
    rollups), naming the first bad seq.
    """
    if bundle is not None:
        from .verifier import verify_bundle

        if public_key is None:
            raise typer.BadParameter("--bundle needs --public-key")
        with bundle.open("rb") as f:
            brep = verify_bundle(f, _public_key(public_key))
        if not brep.ok:
            for e in brep.errors:
                err.print(f"[red]FAIL[/red] {e}")
            raise typer.Exit(1)
        console.print(f"OK: {brep.events} events ({brep.redacted} redacted) proven in the "
                      f"signed checkpoint of {brep.origin} at size {brep.tree_size}")
        return

    from .integrity.checkpoint import Verifier
    from .integrity.keys import key_path, load_or_create_signer
    from .store.sqlite.audit import parse_external, verify_db

    settings = _settings(db=db)
    if not Path(settings.db).exists():
        raise typer.BadParameter(f"no database at {settings.db}; pass --db or set "
                                 "AUDITSTREAM_DB", param_hint="--db")
    if public_key is not None:
        verifier = Verifier.from_key_string(_public_key(public_key))
    elif key_path(settings.db).exists():
        verifier = load_or_create_signer(settings.db, settings.deployment).verifier()
    else:
        raise typer.BadParameter("no signing key beside the database; pass --public-key")
    try:
        external = parse_external([p.read_text() for p in checkpoint or []], verifier)
    except (ValueError, OSError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--checkpoint") from None
    with Progress(TextColumn("verify"), BarColumn(), MofNCompleteColumn(), console=err) as bar:
        task = bar.add_task("verify", total=None)
        rep = verify_db(settings.db, verifier, progress=lambda n: bar.advance(task, n),
                        external=external)
    if not rep.ok:
        first = rep.problems[0]
        err.print(f"[red]FAIL[/red] first bad: {first}")
        for p in rep.problems[1:]:
            err.print(f"  also: {p}")
        raise typer.Exit(1)
    extra = f", consistent with {rep.external} checkpoints kept elsewhere" if rep.external \
        else ""
    console.print(f"OK: {rep.events} events in {rep.tenants} tenants, {rep.checkpoints} "
                  f"signed checkpoints, {rep.redacted} redacted{extra}")


def main() -> None:
    app()


register_export(app)


if __name__ == "__main__":
    main()
