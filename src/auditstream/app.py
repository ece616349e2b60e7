"""``create_app(settings)``: the one place that wires store, auth, ingest and routes."""

from __future__ import annotations

import logging
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import orjson
from fastapi import FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import __version__, console
from .api import compat, docs, homes, openapi, problems
from .api.native import admin as native_admin
from .api.native import contract
from .api.native import events as native_events
from .api.native import export as native_export
from .api.native import integrations as native_integrations
from .api.native import integrity as native_integrity
from .api.native import llm as native_llm
from .api.native import session as native_session
from .api.native import stats as native_stats
from .api.native import stream as native_stream
from .api.native import viewer_tokens as native_viewer_tokens
from .auth.catalog import Catalog
from .auth.principal import DEFAULT_SCOPES, Principal
from .auth.tokens import TokenVerifier
from .dbapi import sqlite3
from .delivery.clock import Clock
from .delivery.guard import DestinationPolicy
from .delivery.schedule import RetrySchedule
from .delivery.service import IntegrationService
from .delivery.sinks import SinkContext
from .delivery.sqlite_state import SQLiteStateStore
from .delivery.supervisor import DeliverySupervisor
from .ingest.pipeline import Ingestor
from .integrity.keys import load_or_create_signer
from .integrity.service import LogService
from .log.channel import Channel, ClosedChannel
from .log.feed import CommitFeed
from .metrics import Metrics
from .services import Services
from .settings import Settings
from .store.base import EventStore
from .store.sqlite import SQLiteEventStore
from .stream.hub import StreamHub
from .stream.slots import StreamSlots

log = logging.getLogger("auditstream")


@dataclass(frozen=True)
class RemoteWriter:
    """How a worker process of a multi-process server reaches the writer process."""

    channel: Channel
    feed: CommitFeed
    public_key: str  # the checkpoints' verifier key; only the writer holds the signing key
    #: A directory private to the server's processes (stream slots are counted there).
    runtime_dir: str = ""


def build_store(
    settings: Settings, on_commit: Callable[[int, int], None] | None = None,
    remote: RemoteWriter | None = None, *, readonly: bool = False,
) -> SQLiteEventStore:
    """The store as the settings describe it: the server, the CLI and the bench open it
    here, so that whatever writes also signs (a write without the signing key would leave
    the log with an unsigned, leafless entry). ``readonly``: for commands that only read,
    which must not migrate, analyse or create anything."""
    if settings.backend == "clickhouse":
        return _clickhouse_store(settings, on_commit, remote, readonly=readonly)
    if readonly:
        return SQLiteEventStore(settings.db, readers=1, canonical=settings.integrity,
                                channel=ClosedChannel("opened read-only"))
    if remote is not None:
        return SQLiteEventStore(
            settings.db, readers=-(-settings.read_pool // settings.workers),
            channel=remote.channel,
            canonical=settings.integrity, feed=remote.feed)
    signer = (load_or_create_signer(settings.db, settings.deployment)
              if settings.integrity else None)
    return SQLiteEventStore(
        settings.db, indexed_paths=settings.indexed_path_list,
        synchronous=settings.synchronous, readers=settings.read_pool,
        idempotency_hours=settings.idempotency_hours, on_commit=on_commit,
        signer=signer, deployment=settings.deployment,
        max_queue_events=settings.writer_queue_events,
    )


def _clickhouse_store(
    settings: Settings, on_commit: Callable[[int, int], None] | None,
    remote: RemoteWriter | None, *, readonly: bool,
) -> SQLiteEventStore:
    """The log in the database file, the index in ClickHouse. One process both writes the
    log and moves it to the index (``serve`` runs one process with this backend)."""
    from .store.clickhouse import ClickHouseEventStore

    if remote is not None:
        raise ValueError("the clickhouse backend runs in one process (AUDITSTREAM_WORKERS=1)")
    url = settings.clickhouse_url
    if readonly:
        return ClickHouseEventStore(settings.db, clickhouse_url=url, clients=1, readers=1,
                                    canonical=settings.integrity,
                                    channel=ClosedChannel("opened read-only"))
    signer = (load_or_create_signer(settings.db, settings.deployment)
              if settings.integrity else None)
    return ClickHouseEventStore(
        settings.db, clickhouse_url=url, clients=settings.read_pool,
        indexed_paths=settings.indexed_path_list, synchronous=settings.synchronous,
        readers=1, idempotency_hours=settings.idempotency_hours, on_commit=on_commit,
        signer=signer, deployment=settings.deployment,
        max_queue_events=settings.writer_queue_events, homes=settings.homes,
        drop_bodies=settings.drop_indexed_bodies,
    )


def build_integrations(settings: Settings, store: EventStore, *, clock: Clock | None = None,
                       deliver: bool = True, metrics: Metrics | None = None,
                       ) -> tuple[IntegrationService, DeliverySupervisor | None]:
    """Push integrations over ``store``: the service the API and CLI use and, with
    ``deliver``, the supervisor that delivers them from this process (started by the
    caller, on its event loop)."""
    state = SQLiteStateStore(settings.push_state_path)
    context = SinkContext(
        policy=DestinationPolicy(settings.push_allow_private), clock=clock or Clock(),
        timeout=settings.push_timeout_seconds,
        max_response_bytes=settings.push_max_response_bytes, deployment=settings.deployment)
    supervisor = DeliverySupervisor(
        store=store, state=state, context=context,
        schedule=RetrySchedule(settings.push_retry_base_seconds,
                               settings.push_retry_max_seconds, settings.push_max_attempts),
        locks_dir=settings.push_state_path + ".locks",
        on_outcome=metrics.on_push if metrics is not None else None) if deliver else None
    return IntegrationService(state, store, context, supervisor), supervisor


def build_services(settings: Settings, remote: RemoteWriter | None = None) -> Services:
    """Every service of one process, from its settings (the one composition root)."""
    metrics = Metrics.for_workers(settings.metrics_dir) if settings.metrics_dir else Metrics()
    # Commits are counted where they happen: here, or in the writer process.
    store = build_store(settings, on_commit=metrics.on_commit if remote is None else None,
                        remote=remote)
    public_key = remote.public_key if remote is not None else (
        store.signer.verifier_key() if store.signer is not None else None)
    try:
        integrations, delivery = build_integrations(settings, store, metrics=metrics)
    except (OSError, sqlite3.Error) as exc:  # a full disk must not stop the server
        log.warning("auditstream: push integrations are unavailable: %s", exc)
        integrations, delivery = None, None
    return Services(
        settings=settings,
        store=store,
        catalog=Catalog(settings.db),
        tokens=TokenVerifier(secret=settings.jwt_secret, jwks_path=settings.jwt_jwks,
                             tenant_claim=settings.jwt_tenant_claim,
                             audience=settings.jwt_audience),
        ingestor=Ingestor(store, max_events=settings.max_batch_events,
                          max_bytes=settings.max_body_bytes),
        metrics=metrics,
        hub=StreamHub(store, catchup_reads=settings.stream_catchup_reads,
                      queue_limit=settings.stream_queue_messages),
        stream_slots=StreamSlots(
            os.path.join(remote.runtime_dir, "streams") if remote and remote.runtime_dir
            else None, settings.stream_max_connections_per_key),
        log=LogService(store, public_key, settings.deployment)
        if public_key and settings.integrity else None,
        integrations=integrations,
        delivery=delivery,
    )


async def load_demo(svc: Services, *, announce: Callable[[str], None] = print) -> str | None:
    """On an empty database: a ``demo`` tenant, one key (printed once) and demo events
    (on the node that is the demo tenant's home)."""
    if svc.catalog.tenants() or not svc.settings.homes.owns("demo"):
        return None
    from .demo import demo_events

    svc.catalog.create_tenant("demo")
    key = svc.catalog.create_key("demo", [*DEFAULT_SCOPES, "admin"], name="demo")
    events = demo_events()
    principal = Principal("demo", frozenset({"events:write"}), "api_key", key.id)
    for start in range(0, len(events), 1000):
        await svc.ingest(principal, orjson.dumps(events[start:start + 1000]), "application/json")
    assert key.secret is not None
    # A console user too, so the first visit to /console can sign in with a password.
    password = secrets.token_urlsafe(12)
    svc.catalog.create_user("demo", "demo", password, ["events:read", "admin"])
    announce(
        f"auditstream: created tenant 'demo' with {len(events)} demo events.\n"
        f"auditstream: demo API key (shown once): {key.secret}\n"
        f"auditstream: console user 'demo', password (shown once): {password}"
    )
    return key.secret


class RequestMetrics:
    """Counts requests and latency per route and profile (``native`` or the compat profile
    that served it: turqoa's ``/v1/events`` is not the native one); plain ASGI because
    Starlette's ``@app.middleware("http")`` wraps every response in extra tasks and
    streams."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route, profile = compat.route_label(scope)
            metrics: Metrics = scope["app"].state.services.metrics  # built in the lifespan
            metrics.requests.labels(scope["method"], route, str(status), profile).inc()
            metrics.latency.labels(route, profile).observe(time.perf_counter() - start)


API_DESCRIPTION = """Self-hosted, multi-tenant security and audit events.

Authenticate with `X-API-Key: sk_live_…` or `Authorization: Bearer <API key or JWT>`
(**Authorize** above). Native errors are RFC 9457 `application/problem+json` with an
`errors` list of `{index?, field, reason}`; each compat profile answers in its own shape.
"""

#: GIL switch interval of a serving process. The writer thread gives the GIL up around
#: every SQLite step; at Python's default 5 ms it then waits that long for the request
#: handlers to hand it back, which capped ingest. 0.5 ms keeps both threads moving.
SWITCH_INTERVAL_S = 0.0005


def create_app(settings: Settings | None = None, *, remote: RemoteWriter | None = None
               ) -> FastAPI:
    """The app of one process. Its services are built in its lifespan, not here: nothing
    opens the database before the server starts. ``remote``: this is a worker of a
    multi-process server (``auditstream.server``)."""
    settings = settings or Settings.from_env()
    sys.setswitchinterval(SWITCH_INTERVAL_S)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = build_services(settings, remote)
        app.state.services = svc
        if svc.delivery is not None:
            svc.delivery.start()
        try:
            if settings.demo and remote is None:  # a multi-process server loads it first
                await load_demo(svc)
            yield
        finally:
            await svc.close()

    app = FastAPI(
        title="auditstream",
        version=__version__,
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served from packaged assets by api.docs, not from a CDN
        redoc_url=None,
    )
    problems.install(app)
    homes.install(app, node=settings.node, forward=settings.forward_appends)
    app.include_router(native_integrity.router)
    app.include_router(native_export.router)  # before events: /v1/events/export is no {id}
    app.include_router(native_stream.router)  # before events: /v1/events/stream is no {id}
    app.include_router(native_llm.router)
    app.include_router(native_events.router)
    app.include_router(native_stats.router)
    app.include_router(native_integrations.router)
    app.include_router(native_session.router)
    app.include_router(native_viewer_tokens.router)
    app.include_router(native_admin.router)

    @app.get("/healthz", tags=["ops"],
             **openapi.operation(ok={200: contract.HEALTH}, errors=(), secured=False))
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse,
             **openapi.operation(ok={200: contract.METRICS}, errors=(), secured=False))
    async def metrics(request: Request) -> Response:
        registry = request.app.state.services.metrics.registry
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    docs.install(app)
    console.install(app, settings.console_frame_ancestors)
    # After every native route: a root-mounted profile only gets the paths left free.
    compat.mount(app, settings)
    openapi.install(app)
    app.add_middleware(RequestMetrics)

    return app
