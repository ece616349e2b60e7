"""Fixtures that build real things: a temp SQLite file, a server on a free port, keys."""

from __future__ import annotations

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


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "auditstream.db"


@pytest.fixture
def make_server(db_path: Path) -> Iterator[Any]:
    """Start servers with given settings; all are stopped at the end of the test."""
    running: list[tuple[uvicorn.Server, threading.Thread, Catalog]] = []

    def make(**overrides: Any) -> Server:
        overrides.setdefault("db", str(db_path))
        overrides.setdefault("demo", False)
        settings = Settings(port=free_port(), **overrides)
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
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server and database for a whole module: for parametrised attacks that each use
    their own tenant, so hundreds of cases do not start hundreds of servers."""
    settings = Settings(port=free_port(), db=str(tmp_path_factory.mktemp("shared") / "a.db"),
                        demo=False)
    server, thread, app = start_server(settings)
    catalog = Catalog(settings.db)
    yield Server(f"http://127.0.0.1:{settings.port}", settings, app, catalog)
    server.should_exit = True
    thread.join(timeout=20)
    catalog.close()
