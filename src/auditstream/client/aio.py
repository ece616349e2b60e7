"""``AsyncClient``: the asyncio SDK, the same surface as ``Client`` with ``await``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from ..integrity.checkpoint import Checkpoint
from .backoff import Backoff
from .batcher import MAX_BATCH_BYTES, AsyncBatcher, OnIngested
from .errors import APIConnectionError, ProofError, raise_for_problem
from .monitor import LogMonitor, decode_hashes
from .params import Filters, FilterValue, query_params, stream_filters
from .stream import (
    CLOSE_SECONDS,
    DEAD_AFTER_SECONDS,
    StreamSession,
    close_action,
    stream_url,
)
from .sync import (
    MAX_MESSAGE_BYTES,
    DeadConnection,
    Hashes,
    OnReconnect,
    Params,
    aggregate_params,
    client_settings,
    covers,
    event_path,
    handshake_refusal,
    ingest_body,
    ingested,
)
from .types import Aggregate, Event, Ingested

__all__ = ["AsyncClient"]


class AsyncClient:
    """An asyncio client of one auditstream server, for one credential (one tenant).

    The same methods as ``Client`` (see it for the parameters); the reading ones are
    async iterators, the others coroutines.

    >>> async with AsyncClient("http://127.0.0.1:8080", api_key=key) as client:  # doctest: +SKIP
    ...     await client.ingest({"type": "login"})
    ...     async for event in client.list(type="login"):
    ...         print(event["seq"])
    ...     async for event in client.stream(q="severity:>=high"):
    ...         print(event["title"])
    """

    def __init__(self, base_url: str | None = None, *, api_key: str | None = None,
                 token: str | None = None, timeout: float = 30.0,
                 public_key: str | None = None, state: str | Path | None = None,
                 headers: Mapping[str, str] | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url, self._secret, hdrs = client_settings(base_url, api_key, token, headers)
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=hdrs, timeout=timeout,
                                       transport=transport)
        self._public_key, self._state = public_key, state
        self._monitor: LogMonitor | None = None

    async def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise APIConnectionError(f"{method} {path}: {exc}") from exc
        raise_for_problem(response)
        return response

    @property
    def monitor(self) -> LogMonitor:
        """The ``LogMonitor`` of ``verify=True`` (needs ``public_key``)."""
        if self._monitor is None:
            if not self._public_key:
                raise ValueError("verify=True needs the server's public_key (AsyncClient(…, "
                                 "public_key=…)); keep it apart from the server")
            self._monitor = LogMonitor(self._public_key, self._state)
        return self._monitor

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    # -- ingest ---------------------------------------------------------------------------

    async def ingest(self, events: Event | Mapping[str, Any] | Iterable[Mapping[str, Any]],
                     *, idempotency_key: str | None = None) -> list[Ingested]:
        """Store one event or many; ``[{"id", "seq"}, …]`` in request order."""
        return await self._ingest_body(ingest_body(events), idempotency_key)

    async def _ingest_body(self, body: bytes, idempotency_key: str | None) -> list[Ingested]:
        headers = {"Content-Type": "application/json"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return ingested(await self._request("POST", "/v1/events", content=body,
                                            headers=headers))

    def batcher(self, max_events: int = 1000, max_interval: float = 1.0, *,
                max_bytes: int = MAX_BATCH_BYTES, max_buffer: int = 100_000,
                on_ingested: OnIngested | None = None) -> AsyncBatcher:
        """An ``AsyncBatcher``; use it as ``async with client.batcher() as batch:``."""
        return AsyncBatcher(self._ingest_body, max_events=max_events,
                            max_interval=max_interval, max_bytes=max_bytes,
                            max_buffer=max_buffer, on_ingested=on_ingested)

    # -- read -----------------------------------------------------------------------------

    def list(self, filters: Filters | None = None, *, q: str | None = None,
             sort: str | None = None, order: str | None = None, page_size: int = 100,
             limit: int | None = None, verify: bool = False,
             **fields: FilterValue) -> AsyncIterator[Event]:
        """Every matching event, page after page (see ``Client.list``)."""
        params = query_params(filters, fields, q=q, sort=sort, order=order,
                              limit=min(page_size, limit or page_size))
        events = self._pages(params, limit)
        return self._verified(events, self.monitor) if verify else events

    async def _pages(self, params: Params, limit: int | None
                     ) -> AsyncIterator[Event]:
        seen = 0
        cursor: str | None = None
        while limit is None or limit > 0:
            page = (await self._request("GET", "/v1/events", params=params + (
                [("cursor", cursor)] if cursor else []))).json()
            for event in page["data"]:
                yield event
                seen += 1
                if limit is not None and seen >= limit:
                    return
            cursor = page.get("next_cursor")
            if not page.get("has_more") or not cursor:
                return

    async def _consistency(self, first: int, second: int) -> Hashes:
        doc = (await self._request("GET", "/v1/integrity/proof/consistency",
                                   params={"from": first, "to": second})).json()
        return decode_hashes(doc.get("consistency_path"))

    async def _checkpoint(self) -> Checkpoint:
        note = (await self._request("GET", "/v1/integrity/checkpoint")).text
        return await self.monitor.aobserve(note, self._consistency)

    async def _verified(self, events: AsyncIterator[Event], monitor: LogMonitor
                        ) -> AsyncIterator[Event]:
        cp: Checkpoint | None = None
        async for event in events:
            seq = event.get("seq")
            if type(seq) is not int:
                raise ProofError(f"event {event.get('id')!r} has no seq")
            if not covers(cp, seq):
                cp = await self._checkpoint()
                if not covers(cp, seq):
                    raise ProofError(f"seq {seq} is beyond the server's latest signed "
                                     f"checkpoint ({cp.size})")
            assert cp is not None
            proof = (await self._request("GET", "/v1/integrity/proof/inclusion", params={
                "event_id": event["id"], "tree_size": cp.size})).json()
            monitor.check_event(event, proof, cp)
            yield event

    async def get(self, event_id: str, *, verify: bool = False) -> Event:
        """One event by id (see ``Client.get``)."""
        path = event_path(event_id)
        if not verify:
            event: Event = (await self._request("GET", path)).json()
            return event
        doc = (await self._request("GET", path, params={"include": "proof"})).json()
        proof = doc.pop("proof", None)
        note = proof.get("checkpoint") if isinstance(proof, dict) else None
        if not isinstance(note, str):
            raise ProofError(f"event {event_id!r} came without a proof and checkpoint")
        cp = await self.monitor.aobserve(note, self._consistency)
        self.monitor.check_event(doc, proof, cp)
        return doc  # type: ignore[no-any-return]

    async def aggregate(self, filters: Filters | None = None, *, group_by: str | None = None,
                        interval: str | None = None,
                        count_unique: str | Sequence[str] | None = None,
                        metrics: Mapping[str, str | Sequence[str]] | None = None,
                        q: str | None = None, **fields: FilterValue) -> Aggregate:
        """Counts, distinct counts and numeric rollups (see ``Client.aggregate``)."""
        params = query_params(filters, fields, q=q,
                              **aggregate_params(group_by, interval, count_unique, metrics))
        result: Aggregate = (await self._request("GET", "/v1/events/aggregate",
                                                 params=params)).json()
        return result

    def export(self, filters: Filters | None = None, *, format: str = "ndjson",
               after_seq: int | None = None, limit: int | None = None, q: str | None = None,
               **fields: FilterValue) -> AsyncIterator[bytes]:
        """The streamed body of ``GET /v1/events/export`` (see ``Client.export``)."""
        params = query_params(filters, fields, q=q, format=format, after_seq=after_seq,
                              limit=limit)
        return self._export(params)

    async def _export(self, params: Params) -> AsyncIterator[bytes]:
        try:
            async with self._http.stream("GET", "/v1/events/export",
                                         params=tuple(params)) as resp:
                if not resp.is_success:
                    await resp.aread()
                raise_for_problem(resp)
                async for chunk in resp.aiter_bytes():
                    yield chunk
        except httpx.TransportError as exc:
            raise APIConnectionError(f"export: {exc}") from exc

    async def export_events(self, filters: Filters | None = None, *,
                            after_seq: int | None = None, limit: int | None = None,
                            q: str | None = None, **fields: FilterValue
                            ) -> AsyncIterator[Event]:
        """``export`` as NDJSON, one parsed event at a time."""
        pending = b""
        async for chunk in self.export(filters, format="ndjson", after_seq=after_seq,
                                       limit=limit, q=q, **fields):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.strip():
                    yield orjson.loads(line)
        if pending.strip():
            raise APIConnectionError("the export ended in the middle of a line")

    async def public_key(self) -> str:
        """The server's checkpoint verifier key (trust on first use; see ``Client``)."""
        return (await self._request("GET", "/v1/integrity/public-key")).text.strip()

    # -- live -----------------------------------------------------------------------------

    def stream(self, filters: Filters | None = None, q: str | None = None,
               resume_from: int | str | None = None, verify: bool = False, *,
               dead_after: float = DEAD_AFTER_SECONDS,
               sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
               clock: Callable[[], float] = time.monotonic,
               on_reconnect: OnReconnect | None = None,
               **fields: FilterValue) -> AsyncIterator[Event]:
        """Matching events as they are committed, exactly once across reconnections
        (see ``Client.stream``; here ``sleep`` is awaited).

        >>> async for event in client.stream(q="severity:>=high"):  # doctest: +SKIP
        ...     print(event["seq"], event["title"])
        """
        if not self._secret:
            raise ValueError("the stream needs a credential (api_key or token)")
        session = StreamSession(stream_filters(filters, fields), q, resume_from, verify)
        monitor = self.monitor if verify else None
        return self._stream(session, monitor, dead_after, sleep, clock, on_reconnect)

    async def _stream(self, session: StreamSession, monitor: LogMonitor | None,
                      dead_after: float, sleep: Callable[[float], Awaitable[None]],
                      clock: Callable[[], float], on_reconnect: OnReconnect | None
                      ) -> AsyncIterator[Event]:
        url = stream_url(self.base_url)
        backoff = Backoff()
        assert self._secret is not None
        while True:
            try:
                async with ws_connect(url, max_size=MAX_MESSAGE_BYTES, open_timeout=10,
                                      close_timeout=CLOSE_SECONDS,
                                      user_agent_header="auditstream-python") as ws:
                    await ws.send(session.auth_message(self._secret))
                    await ws.send(session.subscribe_message())
                    cp: Checkpoint | None = None
                    last = clock()
                    while True:
                        remaining = dead_after - (clock() - last)
                        if remaining <= 0:
                            raise DeadConnection(f"no message for {dead_after:g} s")
                        try:
                            async with asyncio.timeout(remaining):
                                raw = await ws.recv()
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
                            cp = await monitor.aobserve(msg.checkpoint, self._consistency)
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
            await sleep(delay)
