"""Fixtures that build real things: a temp SQLite file, a server on a free port, keys."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from auditstream.app import create_app
from auditstream.auth.catalog import Catalog
from auditstream.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A real auditstream server in this process, on 127.0.0.1:<port>."""

    url: str
    settings: Settings
    app: Any
    catalog: Catalog

    def key(self, tenant: str, *scopes: str) -> str:
        if not self.catalog.tenant_exists(tenant):
            self.catalog.create_tenant(tenant)
        key = self.catalog.create_key(tenant, list(scopes) or ["events:read", "events:write"])
        assert key.secret is not None
        return key.secret

    def client(self, key: str | None = None, **kw: Any) -> httpx.Client:
        headers = {"X-API-Key": key} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0, **kw)


def start_server(settings: Settings) -> tuple[uvicorn.Server, threading.Thread, Any]:
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning",
                            lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.01)
    return server, thread, app


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store-backend", choices=("sqlite", "clickhouse"),
        default=os.environ.get("AUDITSTREAM_TEST_BACKEND", "sqlite"),
        help="the backend of the servers the fixtures start (make_server, server, "
        "shared_server); clickhouse: embedded chdb, one engine for the whole run")


@pytest.fixture(scope="session")
def store_backend(request: pytest.FixtureRequest,
                  tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Settings that put a test server's index on the chosen backend (see
    ``backend_settings``)."""
    name = request.config.getoption("--store-backend")
    if name == "sqlite":
        return {}
    # chdb opens one data directory per process: every server of this run shares it, each
    # database file with its own ClickHouse database.
    return {"backend": name, "chdb": str(tmp_path_factory.mktemp("chdb"))}


def backend_settings(backend: dict[str, str], db: str) -> dict[str, str]:
    if not backend:
        return {}
    database = "t" + hashlib.sha256(os.path.abspath(db).encode()).hexdigest()[:20]
    return {"backend": backend["backend"],
            "clickhouse_url": f"chdb://{backend['chdb']}?database={database}"}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "auditstream.db"


@pytest.fixture
def make_server(db_path: Path, store_backend: dict[str, str]) -> Iterator[Any]:
    """Start servers with given settings; all are stopped at the end of the test."""
    running: list[tuple[uvicorn.Server, threading.Thread, Catalog]] = []

    def make(**overrides: Any) -> Server:
        overrides.setdefault("db", str(db_path))
        overrides.setdefault("demo", False)
        for k, v in backend_settings(store_backend, overrides["db"]).items():
            overrides.setdefault(k, v)
        overrides.setdefault("port", free_port())
        settings = Settings(**overrides)
        server, thread, app = start_server(settings)
        catalog = Catalog(settings.db)
        running.append((server, thread, catalog))
        return Server(f"http://127.0.0.1:{settings.port}", settings, app, catalog)

    yield make
    for server, thread, catalog in running:
        server.should_exit = True
        thread.join(timeout=20)
        catalog.close()


@pytest.fixture
def server(make_server: Any) -> Server:
    return make_server()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory,
                  store_backend: dict[str, str]) -> Iterator[Server]:
    """One server and database for a whole module: for parametrised attacks that each use
    their own tenant, so hundreds of cases do not start hundreds of servers."""
    db = str(tmp_path_factory.mktemp("shared") / "a.db")
    settings = Settings(port=free_port(), db=db, demo=False,
                        **backend_settings(store_backend, db))
    server, thread, app = start_server(settings)
    catalog = Catalog(settings.db)
    yield Server(f"http://127.0.0.1:{settings.port}", settings, app, catalog)
    server.should_exit = True
    thread.join(timeout=20)
    catalog.close()
