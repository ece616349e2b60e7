"""``Client``: the blocking SDK, on httpx (REST) and websockets (the live stream)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import connect as ws_connect

from ..integrity.checkpoint import Checkpoint
from .backoff import Backoff
from .batcher import MAX_BATCH_BYTES, Batcher, OnIngested
from .errors import (
    APIConnectionError,
    ClientError,
    ProofError,
    StreamAuthError,
    StreamError,
    raise_for_problem,
)
from .monitor import LogMonitor, decode_hashes
from .params import Filters, FilterValue, query_params, stream_filters
from .stream import (
    CLOSE_SECONDS,
    DEAD_AFTER_SECONDS,
    WAKE_SECONDS,
    StreamSession,
    close_action,
    sleep_awake,
    stream_url,
)
from .types import Aggregate, Event, Ingested

__all__ = ["Client"]

DEFAULT_URL = "http://127.0.0.1:8080"
#: Largest stream message accepted (one event with its proof; ingest caps bodies at 10 MiB).
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
METRICS = ("sum", "avg", "min", "max", "p50", "p95", "p99")
OnReconnect = Callable[[float, str], None]
# Aliases: inside the clients, ``list`` is the method.
Params = list[tuple[str, str]]
Hashes = list[bytes]


class DeadConnection(Exception):
    """No message (not even a heartbeat) for ``dead_after`` seconds."""


def client_settings(base_url: str | None, api_key: str | None, token: str | None,
             headers: Mapping[str, str] | None) -> tuple[str, str | None, dict[str, str]]:
    """Base URL, the secret for the stream and the REST headers of a client (shared with
    ``AsyncClient``). Unset, the URL and key come from ``AUDITSTREAM_URL`` and
    ``AUDITSTREAM_API_KEY``, as for ``auditstream tail``."""
    if api_key is not None and token is not None:
        raise ValueError("give api_key or token, not both")
    base = (base_url or os.environ.get("AUDITSTREAM_URL") or DEFAULT_URL).rstrip("/")
    if token is None and api_key is None:
        api_key = os.environ.get("AUDITSTREAM_API_KEY") or None
    out = {"User-Agent": "auditstream-python", **(headers or {})}
    if api_key is not None:
        out["X-API-Key"] = api_key
    elif token is not None:
        out["Authorization"] = f"Bearer {token}"
    return base, api_key or token, out


def ingest_body(events: Event | Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> bytes:
    """One event or many, as the JSON body of ``POST /v1/events``."""
    if isinstance(events, Mapping):
        return orjson.dumps([events])
    return orjson.dumps(list(events))


def ingested(response: httpx.Response) -> list[Ingested]:
    """The ``[{"id", "seq"}]`` of an ingest answer."""
    try:
        return [Ingested(id=d["id"], seq=d["seq"]) for d in response.json()["data"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ClientError(f"the server's ingest answer is not understood: {exc}") from None


def aggregate_params(group_by: str | None, interval: str | None,
                     count_unique: str | Sequence[str] | None,
                     metrics: Mapping[str, str | Sequence[str]] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"group_by": group_by, "interval": interval}
    if count_unique is not None:
        out["count_unique"] = count_unique if isinstance(count_unique, str) else ",".join(
            count_unique)
    for fn, paths in (metrics or {}).items():
        if fn not in METRICS:
            raise ValueError(f"unknown metric {fn!r}; one of {', '.join(METRICS)}")
        out[fn] = paths if isinstance(paths, str) else ",".join(paths)
    return out


def covers(cp: Checkpoint | None, seq: int) -> bool:
    """Whether ``cp`` covers the event at ``seq`` (else a newer checkpoint is needed)."""
    return cp is not None and seq <= cp.size


def event_path(event_id: str) -> str:
    return f"/v1/events/{quote(event_id, safe='')}"


class Client:
    """A blocking client of one auditstream server, for one credential (one tenant).

    >>> from auditstream.client import Client
    >>> with Client("http://127.0.0.1:8080", api_key="sk_live_…") as client:  # doctest: +SKIP
    ...     client.ingest({"type": "login", "actor": {"id": "alice"}})
    ...     for event in client.list(type="login", since="24h"):
    ...         print(event["seq"], event["title"])
    ...     for event in client.stream(q="severity:>=high"):  # live, until interrupted
    ...         print(event["type"])

    ``api_key`` goes as ``X-API-Key``, ``token`` (an API key or a JWT) as
    ``Authorization: Bearer``; unset, ``AUDITSTREAM_API_KEY`` is used, and
    ``AUDITSTREAM_URL`` for ``base_url``. ``public_key`` (the server's C2SP verifier key,
    from ``GET /v1/integrity/public-key``, best kept apart from the server) and ``state``
    (a file that keeps the newest checkpoint seen) are what ``verify=True`` checks with.
    """

    def __init__(self, base_url: str | None = None, *, api_key: str | None = None,
                 token: str | None = None, timeout: float = 30.0,
                 public_key: str | None = None, state: str | Path | None = None,
                 headers: Mapping[str, str] | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url, self._secret, hdrs = client_settings(base_url, api_key, token, headers)
        self._http = httpx.Client(base_url=self.base_url, headers=hdrs, timeout=timeout,
                                  transport=transport)
        self._public_key, self._state = public_key, state
        self._monitor: LogMonitor | None = None

    # -- plumbing -------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise APIConnectionError(f"{method} {path}: {exc}") from exc
        raise_for_problem(response)
        return response

    @property
    def monitor(self) -> LogMonitor:
        """The ``LogMonitor`` of ``verify=True`` (needs ``public_key``)."""
        if self._monitor is None:
            if not self._public_key:
                raise ValueError("verify=True needs the server's public_key (Client(…, "
                                 "public_key=…)); keep it apart from the server")
            self._monitor = LogMonitor(self._public_key, self._state)
        return self._monitor

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- ingest ---------------------------------------------------------------------------

    def ingest(self, events: Event | Mapping[str, Any] | Iterable[Mapping[str, Any]], *,
               idempotency_key: str | None = None) -> list[Ingested]:
        """Store one event or many (atomically: one bad event refuses the whole request).

        Returns ``[{"id", "seq"}, …]`` in request order, once the events are durable.

        >>> client.ingest([{"type": "login"}, {"type": "logout"}])  # doctest: +SKIP
        [{'id': 'evt_…', 'seq': 41}, {'id': 'evt_…', 'seq': 42}]
        """
        return self._ingest_body(ingest_body(events), idempotency_key)

    def _ingest_body(self, body: bytes, idempotency_key: str | None) -> list[Ingested]:
        headers = {"Content-Type": "application/json"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return ingested(self._request("POST", "/v1/events", content=body, headers=headers))

    def batcher(self, max_events: int = 1000, max_interval: float = 1.0, *,
                max_bytes: int = MAX_BATCH_BYTES, max_buffer: int = 100_000,
                on_ingested: OnIngested | None = None) -> Batcher:
        """A ``Batcher`` that sends what is ``add``\\ ed in the background (see its module).

        >>> with client.batcher(max_events=500, max_interval=2.0) as batch:  # doctest: +SKIP
        ...     batch.add({"type": "file.read", "subject": {"id": path}})
        """
        return Batcher(self._ingest_body, max_events=max_events, max_interval=max_interval,
                       max_bytes=max_bytes, max_buffer=max_buffer, on_ingested=on_ingested)

    # -- read -----------------------------------------------------------------------------

    def list(self, filters: Filters | None = None, *, q: str | None = None,
             sort: str | None = None, order: str | None = None, page_size: int = 100,
             limit: int | None = None, verify: bool = False,
             **fields: FilterValue) -> Iterator[Event]:
        """Every matching event, page after page (``GET /v1/events``, following
        ``next_cursor``). Filters are keyword arguments (``type="login"``,
        ``since="24h"``, ``min_severity="high"``), ``filters={"actor.id": "u_1"}`` for
        dotted paths, and/or ``q``. ``limit`` stops after that many events.

        With ``verify=True`` each event is checked against a signed checkpoint (its
        inclusion proof) and each checkpoint against the ones seen before.

        >>> for ev in client.list(type=["login", "logout"], q="actor.id:alice"):  # doctest: +SKIP
        ...     print(ev["timestamp"], ev["type"])
        """
        params = query_params(filters, fields, q=q, sort=sort, order=order,
                              limit=min(page_size, limit or page_size))
        events = self._pages(params, limit)
        return self._verified(events, self.monitor) if verify else events

    def _pages(self, params: Params, limit: int | None) -> Iterator[Event]:
        seen = 0
        cursor: str | None = None
        while limit is None or limit > 0:
            page = self._request("GET", "/v1/events", params=params + (
                [("cursor", cursor)] if cursor else [])).json()
            for event in page["data"]:
                yield event
                seen += 1
                if limit is not None and seen >= limit:
                    return
            cursor = page.get("next_cursor")
            if not page.get("has_more") or not cursor:
                return

    def _consistency(self, first: int, second: int) -> Hashes:
        doc = self._request("GET", "/v1/integrity/proof/consistency",
                            params={"from": first, "to": second}).json()
        return decode_hashes(doc.get("consistency_path"))

    def _checkpoint(self) -> Checkpoint:
        note = self._request("GET", "/v1/integrity/checkpoint").text
        return self.monitor.observe(note, self._consistency)

    def _verified(self, events: Iterable[Event], monitor: LogMonitor) -> Iterator[Event]:
        cp: Checkpoint | None = None
        for event in events:
            seq = event.get("seq")
            if type(seq) is not int:
                raise ProofError(f"event {event.get('id')!r} has no seq")
            if not covers(cp, seq):
                cp = self._checkpoint()  # newer events than the checkpoint: a newer one
                if not covers(cp, seq):
                    raise ProofError(f"seq {seq} is beyond the server's latest signed "
                                     f"checkpoint ({cp.size})")
            assert cp is not None
            proof = self._request("GET", "/v1/integrity/proof/inclusion", params={
                "event_id": event["id"], "tree_size": cp.size}).json()
            monitor.check_event(event, proof, cp)
            yield event

    def get(self, event_id: str, *, verify: bool = False) -> Event:
        """One event by id (``NotFoundError`` if this tenant has none).

        ``verify=True`` asks for its inclusion proof and checks it and its checkpoint.
        """
        path = event_path(event_id)
        if not verify:
            event: Event = self._request("GET", path).json()
            return event
        doc = self._request("GET", path, params={"include": "proof"}).json()
        proof = doc.pop("proof", None)
        note = proof.get("checkpoint") if isinstance(proof, dict) else None
        if not isinstance(note, str):
            raise ProofError(f"event {event_id!r} came without a proof and checkpoint")
        cp = self.monitor.observe(note, self._consistency)
        self.monitor.check_event(doc, proof, cp)
        return doc  # type: ignore[no-any-return]

    def aggregate(self, filters: Filters | None = None, *, group_by: str | None = None,
                  interval: str | None = None, count_unique: str | Sequence[str] | None = None,
                  metrics: Mapping[str, str | Sequence[str]] | None = None,
                  q: str | None = None, **fields: FilterValue) -> Aggregate:
        """Counts, distinct counts and numeric rollups (``GET /v1/events/aggregate``).

        >>> client.aggregate(group_by="type", interval="day", since="7d",  # doctest: +SKIP
        ...                  metrics={"sum": "llm.cost_usd"})
        {'interval': 'day', 'group_by': 'type', 'buckets': [{'ts': …, 'rows': [...]}]}
        """
        params = query_params(filters, fields, q=q,
                              **aggregate_params(group_by, interval, count_unique, metrics))
        result: Aggregate = self._request("GET", "/v1/events/aggregate", params=params).json()
        return result

    def export(self, filters: Filters | None = None, *, format: str = "ndjson",
               after_seq: int | None = None, limit: int | None = None, q: str | None = None,
               **fields: FilterValue) -> Iterator[bytes]:
        """The body of ``GET /v1/events/export`` as it streams in (``ndjson``, ``csv`` or
        ``parquet``), in ascending seq. A bad request raises before the first chunk; an
        export cut short raises ``APIConnectionError`` rather than ending quietly.

        >>> with open("out.parquet", "wb") as f:  # doctest: +SKIP
        ...     for chunk in client.export(format="parquet", since="30d"):
        ...         f.write(chunk)
        """
        params = query_params(filters, fields, q=q, format=format, after_seq=after_seq,
                              limit=limit)
        return self._export(params)

    def _export(self, params: Params) -> Iterator[bytes]:
        try:
            with self._http.stream("GET", "/v1/events/export",
                                   params=tuple(params)) as response:
                raise_for_problem(response)
                yield from response.iter_bytes()
        except httpx.TransportError as exc:
            raise APIConnectionError(f"export: {exc}") from exc

    def export_events(self, filters: Filters | None = None, *, after_seq: int | None = None,
                      limit: int | None = None, q: str | None = None,
                      **fields: FilterValue) -> Iterator[Event]:
        """``export`` as NDJSON, one parsed event at a time (constant memory)."""
        pending = b""
        for chunk in self.export(filters, format="ndjson", after_seq=after_seq, limit=limit,
                                 q=q, **fields):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.strip():
                    yield orjson.loads(line)
        if pending.strip():
            raise APIConnectionError("the export ended in the middle of a line")

    def public_key(self) -> str:
        """The server's checkpoint verifier key. Trusting it as fetched here is trust on
        first use: compare it with a copy obtained apart from the server."""
        return self._request("GET", "/v1/integrity/public-key").text.strip()

    # -- live -----------------------------------------------------------------------------

    def stream(self, filters: Filters | None = None, q: str | None = None,
               resume_from: int | str | None = None, verify: bool = False, *,
               dead_after: float = DEAD_AFTER_SECONDS,
               sleep: Callable[[float], None] = sleep_awake,
               clock: Callable[[], float] = time.monotonic,
               on_reconnect: OnReconnect | None = None,
               **fields: FilterValue) -> Generator[Event, None, None]:
        """Matching events as they are committed (``/v1/events/stream``, docs/stream.md).

        Starts after ``resume_from`` (a seq or an event id), else with events committed
        from now on. Reconnects after 1, 2, 4, 8 … 30 s (``sleep`` is called with each
        delay, ``on_reconnect(delay, why)`` told first), treats ``dead_after`` seconds
        without any message as a dead connection (``clock`` measures it), and resumes
        after the last event it yielded: each matching event is yielded exactly once,
        across server restarts. Raises ``StreamAuthError`` on close codes 4401/4403 and
        ``StreamError`` on an ``error`` message (an invalid filter, say).

        With ``verify=True`` it asks for proofs: each event is checked against its
        signed checkpoint, and each checkpoint against the one seen before.

        >>> for event in client.stream({"actor.id": "u_1"}, q="type:login*"):  # doctest: +SKIP
        ...     print(event["seq"], event["title"])
        """
        if not self._secret:
            raise ValueError("the stream needs a credential (api_key or token)")
        session = StreamSession(stream_filters(filters, fields), q, resume_from, verify)
        monitor = self.monitor if verify else None
        return self._stream(session, monitor, dead_after, sleep, clock, on_reconnect)

    def _stream(self, session: StreamSession, monitor: LogMonitor | None, dead_after: float,
                sleep: Callable[[float], None], clock: Callable[[], float],
                on_reconnect: OnReconnect | None) -> Generator[Event, None, None]:
        url = stream_url(self.base_url)
        backoff = Backoff()
        assert self._secret is not None
        while True:
            try:
                with ws_connect(url, max_size=MAX_MESSAGE_BYTES, open_timeout=10,
                                close_timeout=CLOSE_SECONDS,
                                user_agent_header="auditstream-python") as ws:
                    ws.send(session.auth_message(self._secret))
                    ws.send(session.subscribe_message())
                    cp: Checkpoint | None = None
                    last = clock()
                    while True:
                        remaining = dead_after - (clock() - last)
                        if remaining <= 0:
                            raise DeadConnection(f"no message for {dead_after:g} s")
                        try:
                            raw = ws.recv(timeout=min(remaining, WAKE_SECONDS))
                        except TimeoutError:
                            continue
                        last = clock()
                        msg = session.receive(raw)
                        if msg.kind == "event":
                            assert msg.event is not None
                            if monitor is not None:
                                monitor.check_event(msg.event, msg.proof, cp)
                            session.delivered(msg.event)
                            yield msg.event
                        elif msg.kind == "checkpoint" and monitor is not None:
                            assert msg.checkpoint is not None
                            cp = monitor.observe(msg.checkpoint, self._consistency)
                        elif msg.kind == "subscribed":
                            backoff.reset()
            except ConnectionClosed as exc:
                code, reason = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, "")
                close_action(code, reason)
                why = f"closed ({code or 'no close frame'}{': ' + reason if reason else ''})"
            except InvalidStatus as exc:
                why = handshake_refusal(exc.response.status_code)
            except (OSError, InvalidHandshake, DeadConnection) as exc:
                why = f"{type(exc).__name__}: {exc}"
            delay = backoff.next()
            if on_reconnect is not None:
                on_reconnect(delay, why)
            sleep(delay)


def handshake_refusal(status: int) -> str:
    """The reason to reconnect after an HTTP answer to the upgrade; raise if none helps."""
    if status in (401, 403):
        raise StreamAuthError(4401 if status == 401 else 4403,
                              f"the server refused the stream with HTTP {status}")
    if status == 404:
        raise StreamError(404, "the server has no /v1/events/stream")
    return f"the upgrade was answered with HTTP {status}"
