"""The auditstream Python SDK: ``Client`` (blocking) and ``AsyncClient`` (asyncio).

>>> from auditstream.client import Client
>>> client = Client("http://127.0.0.1:8080", api_key="sk_live_…")  # doctest: +SKIP
>>> client.ingest({"type": "login", "actor": {"id": "alice"}})       # doctest: +SKIP
[{'id': 'evt_…', 'seq': 1}]
>>> for event in client.stream(q="severity:>=high"):                 # doctest: +SKIP
...     print(event["seq"], event["title"])

* ingest: ``ingest(events)``, and ``batcher()`` that sends in the background;
* read: ``list(...)`` (every page), ``get(id)``, ``aggregate(...)``, ``export(...)``;
* live: ``stream(...)`` over ``/v1/events/stream``, reconnecting and resuming so that each
  matching event is seen exactly once across server restarts;
* verify: with the server's ``public_key``, ``list``/``get``/``stream(verify=True)`` prove
  each event's inclusion in a signed checkpoint and each checkpoint's consistency with the
  last one seen (kept in ``state``), raising ``ForkError``/``RollbackError``: the client is
  the log's monitor.

Errors are drawn in :mod:`auditstream.client.errors`.
"""

from .aio import AsyncClient
from .backoff import Backoff
from .batcher import AsyncBatcher, Batcher
from .errors import (
    APIConnectionError,
    APIError,
    AuthError,
    BatchError,
    ClientError,
    ForkError,
    NotFoundError,
    ProofError,
    RollbackError,
    StreamAuthError,
    StreamError,
    VerificationError,
)
from .monitor import LogMonitor
from .sync import Client
from .types import Aggregate, AggregateBucket, AggregateRow, Event, Ingested

__all__ = [
    "APIConnectionError",
    "APIError",
    "Aggregate",
    "AggregateBucket",
    "AggregateRow",
    "AsyncBatcher",
    "AsyncClient",
    "AuthError",
    "Backoff",
    "BatchError",
    "Batcher",
    "Client",
    "ClientError",
    "Event",
    "ForkError",
    "Ingested",
    "LogMonitor",
    "NotFoundError",
    "ProofError",
    "RollbackError",
    "StreamAuthError",
    "StreamError",
    "VerificationError",
]
