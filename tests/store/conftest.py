"""Fixtures of the store conformance suite: a fresh store of every backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from auditstream.integrity.checkpoint import Signer, generate_signer
from auditstream.store.base import EventStore

from .backends import BACKENDS, DEPLOYMENT, INDEXED, Backend


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Backend:
    return BACKENDS[request.param]


@pytest.fixture
def signer() -> Signer:
    return generate_signer(DEPLOYMENT)


@pytest.fixture
async def store(backend: Backend, signer: Signer, tmp_path: Path) -> AsyncIterator[EventStore]:
    """A fresh, signed store of each backend."""
    s = backend.open(tmp_path, signer=signer, indexed_paths=INDEXED)
    yield s
    await s.close()
