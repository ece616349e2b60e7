"""The ``auditstream`` command: serve, tenants, keys, users, ingest, query.

``ingest`` and ``query`` work on the database file directly (``--db``), through the same
store and pipeline the server uses; the store notices writes from other processes, so a
running server and the CLI can share one file. Only ``serve`` and ``tenants create`` may
create a database; every other command refuses one that is not there (``cli_support``).
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import shlex
import socket
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Annotated, Any, NoReturn

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from .auth.catalog import MIN_PASSWORD, Catalog
from .auth.principal import DEFAULT_SCOPES, SCOPES
from .cli_export import register as register_export
from .cli_integrations import register as register_integrations
from .cli_support import (
    FAILED,
    USAGE,
    err,
    existing_db,
    existing_tenant,
    fail,
    has_tenant,
    problem_lines,
)
from .cli_support import settings as _load_settings
from .cli_tail import register as register_tail
from .dbapi import sqlite3
from .errors import InvalidRequest, ProblemError
from .settings import Settings, describe

app = typer.Typer(help="auditstream: self-hosted security and audit events.", no_args_is_help=True)
tenants_app = typer.Typer(help="Manage tenants.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
users_app = typer.Typer(help="Manage users (password login: the console, compat profiles).",
                        no_args_is_help=True)
app.add_typer(tenants_app, name="tenants")
app.add_typer(keys_app, name="keys")
app.add_typer(users_app, name="users")
console = Console()
#: Tables are printed at their natural width: ids, names and times are never cut short.
wide = Console(width=10_000)

# Parentheses, not brackets: typer's help reads [...] as rich markup and drops it.
DbOpt = Annotated[str | None, typer.Option("--db", help="SQLite database file (else "
                                           "AUDITSTREAM_DB, else data/auditstream.db)")]


def _settings(**overrides: Any) -> Settings:
    return _load_settings(**overrides)


def _db(db: str | None) -> str:
    """The database a reading command works on; it must exist (exit 2 otherwise)."""
    return existing_db(_settings(db=db).db)


def _catalog(db: str | None) -> Catalog:
    return Catalog(_db(db))


def _fail(exc: ProblemError, code: int = FAILED) -> NoReturn:
    fail(exc.detail, code, *(f"  {line}" for line in problem_lines(exc)))


def _iso(epoch_s: int | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s)) if epoch_s else ""


_SERVE_HELP = "Start the HTTP server.\n\nSettings (environment variables):\n\n" + "\n\n".join(
    f"{env} (default {default!r}): {help}" for _n, env, default, help in describe()
)


def _listen(host: str, port: int) -> socket.socket:
    """Bind before anything else happens, so a busy port is one clear line and no
    database, demo data or key is created for a server that cannot start."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OverflowError:
        fail(f"port {port} is not a TCP port (0-65535); set --port or AUDITSTREAM_PORT", USAGE)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            fail(f"port {port} on {host} is in use: stop the process using it, or pick "
                 "another port with --port PORT or AUDITSTREAM_PORT=PORT", USAGE)
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}; set --host/--port or "
             "AUDITSTREAM_HOST/AUDITSTREAM_PORT", USAGE)


@app.command(help=_SERVE_HELP)
def serve(
    db: DbOpt = None,
    host: Annotated[str | None, typer.Option(help="Interface (env AUDITSTREAM_HOST)")] = None,
    port: Annotated[int | None, typer.Option(
        help="Port, 0 for any free one (env AUDITSTREAM_PORT)")] = None,
    demo: Annotated[bool | None, typer.Option(
        "--demo/--no-demo", help="Load demo data into an empty database")] = None,
    workers: Annotated[int | None, typer.Option(
        help="HTTP worker processes; more than 1 adds a writer process "
        "(env AUDITSTREAM_WORKERS)")] = None,
) -> None:
    import uvicorn

    from .app import create_app

    settings = _settings(db=db, host=host, port=port, demo=demo, workers=workers)
    if settings.backend == "clickhouse" and settings.workers > 1:
        # One process writes the log, moves it to the index and serves (docs/scale-out.md):
        # chdb opens its data in one process only; more nodes, not more workers, scale out.
        err.print("auditstream: the clickhouse backend serves from one process "
                  f"(AUDITSTREAM_WORKERS={settings.workers} ignored)")
        settings = settings.with_(workers=1)
    # The settings and the file before the port: a wrong setting is the error to show,
    # whether or not the port is taken too.
    try:
        if os.path.exists(settings.db):  # the app opens it only once it starts: probe now
            with closing(sqlite3.connect(f"file:{settings.db}?mode=ro", uri=True)) as probe:
                probe.execute("PRAGMA schema_version").fetchone()
        # Built with several workers too (and dropped): a setting the app refuses is one
        # line here, not a worker dying at start over and over.
        application: Any = create_app(settings)
    except sqlite3.Error as exc:
        fail(f"cannot open {os.path.abspath(settings.db)}: {exc}; point --db or "
             "AUDITSTREAM_DB at an auditstream database, or at a new file", USAGE)
    except ValueError as exc:  # a setting the app refuses (AUDITSTREAM_COMPAT_ROOT, ...)
        fail(f"cannot start: {exc}", USAGE)
    sock = _listen(settings.host, settings.port)
    had_demo = has_tenant(settings.db, "demo")
    shown_host = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"http://{shown_host}:{sock.getsockname()[1]}"
    db_arg = shlex.quote(os.path.abspath(settings.db))

    def ready() -> None:
        # Flushed: stdout is often a pipe (systemd, a log file, a test), and the URL and
        # the demo key printed at start-up are what a new user needs first.
        if had_demo:
            # The first demo key's scopes: a newcomer who lost it gets the console's admin
            # pages back too (the console signs in with a pasted key).
            print("auditstream: the demo tenant exists (its first key was shown once); a "
                  "new demo key: auditstream keys create --tenant demo --scope events:read "
                  f"--scope events:write --scope admin --db {db_arg}")
        print(f"auditstream: listening on {url} (API docs: {url}/docs; database "
              f"{os.path.abspath(settings.db)}); Ctrl-C stops it", flush=True)

    if settings.workers > 1:
        from . import server

        del application

        try:
            server.serve(settings, sock, ready=ready)
        except sqlite3.Error as exc:
            sock.close()
            fail(f"cannot open {os.path.abspath(settings.db)}: {exc}; point --db or "
                 "AUDITSTREAM_DB at an auditstream database, or at a new file", USAGE)
        return

    class AnnouncingServer(uvicorn.Server):
        """Says so once the app has started and the socket accepts requests."""

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                ready()

    from .server import uvicorn_config

    AnnouncingServer(uvicorn_config(application, settings, log_level="warning")
                     ).run(sockets=[sock])


@app.command()
def migrate(db: DbOpt = None) -> None:
    """Create or upgrade the database's schema, then exit (creates the file if missing).

    Safe while servers start on the same file: migrations take a lock beside it.
    ``serve`` migrates too; this is for deployments that migrate first.
    """
    settings = _settings(db=db)
    _migrate(settings)
    print(f"{os.path.abspath(settings.db)}: schema is current")
    if settings.backend == "clickhouse":
        from .store.clickhouse.engine import Engine

        try:
            engine = Engine(settings.clickhouse_url, clients=1)
            try:
                engine.migrate(paths=settings.indexed_path_list)
            finally:
                engine.close()
        except Exception as exc:  # the driver's errors: connection, auth, DDL
            fail(f"cannot migrate the ClickHouse index: {exc}", FAILED)
        print(f"ClickHouse database {engine.db}: schema is current")


def _migrate(settings: Settings) -> None:
    from .store.sqlite import open_log

    try:
        opened = open_log(settings.db, indexed_paths=settings.indexed_path_list,
                          synchronous=settings.synchronous,
                          idempotency_hours=settings.idempotency_hours, signer=None,
                          deployment=settings.deployment)
    except sqlite3.Error as exc:
        fail(f"cannot migrate {os.path.abspath(settings.db)}: {exc}", FAILED)
    opened.close()


@tenants_app.command("create")
def tenants_create(name: str, db: DbOpt = None) -> None:
    """Create a tenant (and the database, if there is none yet)."""
    settings = _settings(db=db)
    path = settings.db
    try:
        with closing(Catalog(path)) as catalog:
            catalog.create_tenant(name)
    except ProblemError as exc:
        _fail(exc)
    # The whole schema, not only the catalog's: every reading command (query, export,
    # integrations) can then open the file it just made.
    _migrate(settings)
    # The database's path too: this command may have just created it.
    console.print(f"created tenant {name} in {os.path.abspath(path)}", markup=False,
                  highlight=False)


@tenants_app.command("list")
def tenants_list(db: DbOpt = None) -> None:
    """List tenants."""
    with closing(_catalog(db)) as catalog:
        for name in catalog.tenants():
            console.print(name, markup=False, highlight=False)


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant the key belongs to")],
    scope: Annotated[list[str] | None, typer.Option(
        help=f"{', '.join(SCOPES)} (repeatable; default {' '.join(DEFAULT_SCOPES)})")] = None,
    name: Annotated[str | None, typer.Option(help="A label for the key")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    db: DbOpt = None,
) -> None:
    """Create an API key; the key is printed once and cannot be shown again."""
    path = _db(db)
    existing_tenant(path, tenant)
    try:
        with closing(Catalog(path)) as catalog:
            key = catalog.create_key(tenant, scope or list(DEFAULT_SCOPES), name=name)
    except InvalidRequest as exc:  # an unknown --scope
        _fail(exc, USAGE)
    except ProblemError as exc:
        _fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(key.as_dict()) + "\n")
    else:
        sys.stdout.write(f"{key.secret}\n")
        err.print(f"key {key.id} for tenant {tenant}, scopes {' '.join(key.scopes)} "
                  "(store it now: it is not shown again)", markup=False)


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print NDJSON")] = False,
    db: DbOpt = None,
) -> None:
    """List API keys (never the secrets): full ids, names, creation times in UTC."""
    path = _db(db)
    if tenant is not None:
        existing_tenant(path, tenant)
    with closing(Catalog(path)) as catalog:
        keys = catalog.keys(tenant)
    if as_json:
        for k in keys:
            sys.stdout.write(json.dumps(k.as_dict()) + "\n")
        return
    table = Table("id", "tenant", "name", "scopes", "created", "revoked", "hint")
    for k in keys:
        table.add_row(*map(Text, (k.id, k.tenant, k.name or "", " ".join(k.scopes),
                                  _iso(k.created), _iso(k.revoked), k.hint)))
    wide.print(table, markup=False, highlight=False)


@keys_app.command("revoke")
def keys_revoke(key_id: str, db: DbOpt = None) -> None:
    """Revoke an API key by id."""
    try:
        with closing(_catalog(db)) as catalog:
            catalog.revoke_key(key_id)
    except ProblemError as exc:
        _fail(exc)
    console.print(f"revoked {key_id}", markup=False)


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
    path = _db(db)
    existing_tenant(path, tenant)
    if len(password) < MIN_PASSWORD:  # the rule of POST /v1/users too
        fail(f"password too short: at least {MIN_PASSWORD} characters", USAGE)
    try:
        with closing(Catalog(path)) as catalog:
            catalog.create_user(tenant, username, password, scope or ["events:read"],
                                user_id=user_id)
    except InvalidRequest as exc:  # an unknown --scope
        _fail(exc, USAGE)
    except ProblemError as exc:
        _fail(exc)
    console.print(f"created user {username} in tenant {tenant}", markup=False)


#: Paragraphs without hard line breaks, so the help reflows to the terminal's width.
_INGEST_HELP = "\n\n".join([
    "Ingest events from a file: NDJSON (one event per line) or one JSON array.",
    "Events are appended in all-or-nothing batches. The report names file lines (items, "
    "for a JSON array): what was stored new, what was already present, and the line that "
    "failed.",
    "Running the same file again never stores an event twice: a line without its own "
    '"id" gets one derived from the tenant, the line and every line before it, so what is '
    "already stored is recognised (fix a bad line and re-run; an append-only log that grew "
    'stores only its new lines). A line with its own "id" is idempotent by that id: the '
    "same content is already present, other content is a failure at that line.",
    "Exit status: 0 every event is stored (new or already present); 1 something was not "
    "stored (the message names the first line that failed and what was committed before "
    "it); 2 usage error (bad option or setting, missing file or database, unknown tenant).",
])


@app.command(help=_INGEST_HELP)
def ingest(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                         help="NDJSON or a JSON array")],
    tenant: Annotated[str, typer.Option(help="Tenant to ingest into")] = "demo",
    batch: Annotated[int, typer.Option(
        help="Events per all-or-nothing append (at most AUDITSTREAM_MAX_BATCH_EVENTS)")] = 1000,
    db: DbOpt = None,
) -> None:
    from .app import build_services
    from .cli_ingest import IngestReport, SourceError, ingest_file, read_items

    settings = _settings(db=db)
    if not 1 <= batch <= settings.max_batch_events:
        fail(f"--batch must be between 1 and {settings.max_batch_events} "
             "(AUDITSTREAM_MAX_BATCH_EVENTS)", USAGE)
    existing_tenant(existing_db(settings.db), tenant)
    try:
        unit, total, items = read_items(file, tenant)
    except SourceError as exc:
        fail(f"failed at line {exc.pos}: {exc.reason}")
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}", USAGE)

    async def run() -> IngestReport:
        svc = build_services(settings)
        try:
            # No bar when stderr is a log or a pipe: there it is only noise.
            with Progress(TextColumn("ingest"), BarColumn(), TimeRemainingColumn(),
                          console=err, transient=True, disable=not err.is_terminal) as bar:
                task = bar.add_task("ingest", total=total)
                return await ingest_file(
                    svc, tenant, unit, items, batch=batch, max_bytes=settings.max_body_bytes,
                    advance=lambda n: bar.advance(task, n))
        finally:
            await svc.close()

    report = asyncio.run(run())
    console.print(f"ingest {file} into {tenant}: {report.summary()}", markup=False,
                  highlight=False, soft_wrap=True)
    if not report.ok:
        first, *more = report.failure()
        fail(first, FAILED, *more)


@app.command()
def query(
    q: Annotated[str, typer.Argument(help="Filter in the q language, e.g. 'severity:>=high'")],
    tenant: Annotated[str, typer.Option(help="Tenant to query")] = "demo",
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Most events to show")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print NDJSON")] = False,
    db: DbOpt = None,
) -> None:
    """Query events, newest first: a table in the terminal, NDJSON with --json."""
    from .app import build_store
    from .model.times import now_us
    from .query.qlang import parse_q
    from .store.base import EventQuery

    settings = _settings(db=db)
    existing_tenant(existing_db(settings.db), tenant)
    try:
        where = parse_q(q, now_us=now_us())
    except ProblemError as exc:
        _fail(exc)

    async def run() -> list[dict[str, Any]]:
        store = build_store(settings, readonly=True)
        try:
            page = await store.query(tenant, EventQuery(filter=where, limit=limit))
            return page.events
        finally:
            await store.close()

    try:
        events = asyncio.run(run())
    except ProblemError as exc:
        _fail(exc)
    if as_json:
        for ev in events:
            sys.stdout.buffer.write(orjson.dumps(ev) + b"\n")
        return
    table = Table("timestamp", "type", "severity", "outcome", "title")
    for ev in events:
        table.add_row(*(Text(str(v)) for v in (
            ev.get("timestamp", ""), ev.get("type", ""), ev.get("severity", ""),
            ev.get("outcome") or "", (ev.get("title") or "")[:80])))
    wide.print(table, markup=False, highlight=False)


@app.command()
def purge(
    tenant: Annotated[str, typer.Option(help="Tenant whose old events to purge")],
    before: Annotated[str, typer.Option(help="Purge events older than this (date, RFC 3339 "
                                        "or a duration such as 90d)")],
    reason: Annotated[str, typer.Option(help="Recorded in each purged event")] = "retention",
    db: DbOpt = None,
) -> None:
    """Retention: erase the content of old events, keeping what proofs need."""
    from .app import build_store
    from .model.times import TimeParseError, parse_time

    try:
        cutoff = parse_time(before, allow_relative=True)
    except TimeParseError as exc:
        raise typer.BadParameter(str(exc)) from None
    settings = _settings(db=_db(db))
    existing_tenant(settings.db, tenant)

    async def run() -> int:
        store = build_store(settings)
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
        "--public-key", help="Verifier key (or a file holding it) kept away from the "
        "server (env AUDITSTREAM_PUBLIC_KEY); default: the key stored beside the database, "
        "with a warning")] = None,
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

    settings = _settings(db=_db(db))
    pinned = public_key or settings.public_key
    if pinned:
        verifier = Verifier.from_key_string(_public_key(pinned))
    elif key_path(settings.db).exists():
        verifier = load_or_create_signer(settings.db, settings.deployment).verifier()
    else:
        raise typer.BadParameter("no signing key beside the database; pass --public-key")
    try:
        external = parse_external([p.read_text() for p in checkpoint or []], verifier)
    except (ValueError, OSError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--checkpoint") from None
    engine = None
    if settings.backend == "clickhouse":
        from .store.clickhouse.audit import dropped_bodies, verify_index
        from .store.clickhouse.engine import Engine

        engine = Engine(settings.clickhouse_url, clients=1)
    try:
        with Progress(TextColumn("verify"), BarColumn(), MofNCompleteColumn(),
                      console=err) as bar:
            task = bar.add_task("verify", total=None)
            rep = verify_db(settings.db, verifier, progress=lambda n: bar.advance(task, n),
                            external=external,
                            bodies=dropped_bodies(engine) if engine is not None else None)
        if engine is not None:
            # The index holds derived copies of the log: every row readers see must be
            # the row the verified log makes.
            rep.problems.extend(verify_index(engine, settings.db, homes=settings.homes))
    finally:
        if engine is not None:
            engine.close()
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
    if not pinned:
        err.print("[yellow]warning:[/yellow] checked with the key stored beside the database; "
                  "whoever can write the database may have replaced it too. Pin the key kept "
                  "elsewhere with --public-key or AUDITSTREAM_PUBLIC_KEY.")


def main() -> None:
    app()


register_export(app)
register_tail(app)
register_integrations(app)


if __name__ == "__main__":
    main()
