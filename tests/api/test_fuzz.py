"""Property-based fuzzing of every documented operation with schemathesis.

A real server on a free port, a real SQLite file with the demo data, and a key of the demo
tenant with every scope. Schemathesis reads ``/openapi.json`` and, for each operation,
sends the documented examples, its coverage cases (boundaries, wrong types, missing
values) and random requests, valid and invalid, then checks every answer (see
``schemathesis.toml`` beside this file): never a 5xx, only declared statuses, the declared
media type and schema.

It runs as the ``schemathesis`` command in a child process (on the second core, while this
process serves), bounded and repeatable: a fixed seed, deterministic generation, a few
examples per operation and no example database.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditstream.auth.catalog import Catalog
from auditstream.settings import Settings
from conftest import free_port, start_server

CONFIG = Path(__file__).with_name("schemathesis.toml")
#: Far above the expected minute; reached only if the run hangs.
TIMEOUT_S = 600


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(URL, key with every scope) of a real server on the demo data."""
    settings = Settings(db=str(tmp_path / "auditstream.db"), port=free_port(), demo=True)
    server, thread, _ = start_server(settings)
    catalog = Catalog(settings.db)
    try:
        key = catalog.create_key("demo", ["events:read", "events:write", "admin"], name="fuzz")
        assert key.secret is not None
        yield f"http://127.0.0.1:{settings.port}", key.secret
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        catalog.close()


def test_every_operation_survives_fuzzing(demo_server: tuple[str, str], tmp_path: Path) -> None:
    url, key = demo_server
    run = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run",
         f"{url}/openapi.json", "--header", f"X-API-Key: {key}", "--workers", "1",
         "--no-color", "--output-truncate", "false"],
        cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
