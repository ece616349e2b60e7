"""``/v1/events/stream``: the live stream over WebSocket and Server-Sent Events.

The protocol (messages, close codes, resume) is written down in ``docs/stream.md``; the
subscriptions themselves are ``stream.hub``'s. One connection is a ``WebSocketSession``:
a receiver (client messages), a sender (events of the current subscription), a heartbeat,
a credential re-check and a stall watchdog, as five tasks; the first to end ends the
connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request, WebSocket
from starlette.responses import StreamingResponse
from starlette.websockets import WebSocketDisconnect

from ...auth.principal import Principal
from ...errors import (
    InvalidRequest,
    NotAcceptable,
    NotFound,
    ProblemError,
    TooManyRequests,
)
from ...model.times import format_us, now_us
from ...query.filter import Node
from ...query.params import filter_from_params
from ...stream.filters import filter_from_message
from ...stream.hub import Item, StreamHub, Subscription
from ..deps import authenticate_secret, credential, reader

router = APIRouter(prefix="/v1", tags=["stream"])

#: Seconds a client has to send ``{"type": "auth"}`` when it connected without a token.
AUTH_SECONDS = 10.0
#: Seconds between re-checks of the credential: with the key cache's 2 s, a revoked key's
#: streams close within 5 s.
RECHECK_SECONDS = 2.5
#: The largest client message taken (a filter, never data).
MAX_MESSAGE_BYTES = 64 * 1024
MESSAGE_TYPES = ("subscribe", "update_filters", "unsubscribe", "ping", "auth")


class Close(Exception):
    """End the connection with a WebSocket close code and reason."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason


def identity(principal: Principal) -> str:
    """What the per-credential stream limit counts by."""
    return f"{principal.kind}:{principal.tenant}:{principal.subject}"


async def resume_seq(svc: Any, tenant: str, value: Any) -> int | None:
    """``resume_from`` (a seq or an event id) as the seq to start after."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return min(value, 2**62)
    if isinstance(value, str) and value.isdigit() and len(value) <= 18:
        return int(value)
    if isinstance(value, str) and value:
        event = await svc.store.get(tenant, value)
        if event is None:
            raise NotFound(f"no event {value[:100]!r} to resume from")
        return int(event["seq"])
    raise InvalidRequest("invalid resume_from", errors=[
        {"field": "resume_from", "reason": "a seq (integer >= 0) or an event id"}])


def event_message(item: Item) -> bytes:
    return b'{"type":"event","seq":%d,"event":%s}' % (item.seq, item.raw)


@dataclass(frozen=True)
class Dialect:
    """What a stream's protocol makes of messages: the native one here, a compat
    profile's (turqoa) in its module. The session, the hub and the limits are shared."""

    #: The filter of a ``subscribe``/``update_filters`` message; raises ``ProblemError``.
    where: Callable[[WebSocket, dict[str, Any]], Node]
    #: One event as a message.
    event: Callable[[Item], bytes]
    #: The native extras: ``subscribed`` answers, ``resume_from``, ``include_proof``.
    native: bool = True
    #: Without the native extras: where a ``subscribe`` with filter ``where`` starts (the
    #: seq to start after; None: after the newest event). turqoa's reconnect buffer.
    start: Callable[[WebSocketSession, Node], Awaitable[int | None]] | None = None
    #: Called once as a connection ends, after its subscription was dropped (its ``sub``
    #: and ``sent_seq`` still say where it was).
    ended: Callable[[WebSocketSession], None] | None = None
    #: The heartbeat's ``timestamp`` from microseconds since the epoch.
    timestamp: Callable[[int], str] = format_us


NATIVE = Dialect(where=lambda ws, msg: filter_from_message(msg.get("filters"), msg.get("q")),
                 event=event_message)


class WebSocketSession:
    def __init__(self, ws: WebSocket, svc: Any, hub: StreamHub, principal: Principal,
                 secret: str, dialect: Dialect = NATIVE):
        self.ws, self.svc, self.hub, self.dialect = ws, svc, hub, dialect
        self.principal, self.secret = principal, secret
        self.settings = svc.settings
        self.sub: Subscription | None = None
        self.sent_seq = 0  # the last seq sent on the current subscription
        self.include_proof = False
        self.checkpoint_size = -1  # of the last checkpoint message sent
        self.events_sent = 0
        self.started = time.monotonic()
        self.lock = asyncio.Lock()  # one sender at a time; subscription changes under it
        self.sending_since: float | None = None
        self.changed = asyncio.Event()

    async def run(self) -> None:
        tasks = [asyncio.create_task(c) for c in (
            self.receive(), self.send_events(), self.heartbeat(), self.recheck(),
            self.watchdog())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            if self.sub is not None:
                self.hub.unsubscribe(self.sub)
            if self.dialect.ended is not None:
                self.dialect.ended(self)
        for t in done:
            exc = t.exception()
            if isinstance(exc, Close):
                raise exc
            if exc is not None and not isinstance(exc, WebSocketDisconnect):
                raise exc

    async def send(self, doc: bytes | str) -> None:
        """One text frame. ``watchdog`` closes the stream when one send waits longer than
        the stall limit (a timer per send cost more than the send)."""
        self.sending_since = time.monotonic()
        await self.ws.send({"type": "websocket.send",
                            "text": doc if isinstance(doc, str) else doc.decode()})
        self.sending_since = None

    async def error(self, code: str, message: str) -> None:
        async with self.lock:
            await self.send(orjson.dumps({"type": "error", "code": code, "message": message}))

    # -- the four tasks ------------------------------------------------------------------

    async def receive(self) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("text")
            if data is None:
                data = (message.get("bytes") or b"").decode("utf-8", "replace")
            if len(data) > MAX_MESSAGE_BYTES:
                await self.error("invalid_message",
                                 f"message larger than {MAX_MESSAGE_BYTES} bytes")
                continue
            try:
                msg = orjson.loads(data)
            except orjson.JSONDecodeError:
                await self.error("invalid_message", "not a JSON object")
                continue
            kind = msg.get("type") if isinstance(msg, dict) else None
            try:
                await self.handle(kind, msg)
            except ProblemError as exc:
                code = exc.extra.get("code") or {404: "not_found"}.get(exc.status) or (
                    "invalid_filter" if kind in ("subscribe", "update_filters")
                    else "invalid_message")
                await self.error(code, problem_text(exc))

    async def handle(self, kind: Any, msg: Any) -> None:
        if kind == "ping":
            async with self.lock:
                await self.send(b'{"type":"pong"}')
        elif kind == "subscribe":
            where = self.dialect.where(self.ws, msg)
            proof = msg.get("include_proof", False) if self.dialect.native else False
            if not isinstance(proof, bool):
                raise InvalidRequest("include_proof must be true or false")
            if proof and self.svc.log is None:
                raise InvalidRequest("include_proof needs tamper evidence, which is off here")
            if self.dialect.native:
                after = await resume_seq(self.svc, self.principal.tenant,
                                         msg.get("resume_from"))
            else:
                after = None if self.dialect.start is None else await self.dialect.start(
                    self, where)
            async with self.lock:
                self.drop()
                self.sub = await self.hub.subscribe(self.principal.tenant, where, after)
                self.sent_seq = self.sub.cursor
                self.include_proof, self.checkpoint_size = proof, -1
                await self.subscribed()
        elif kind == "update_filters":
            where = self.dialect.where(self.ws, msg)
            async with self.lock:
                if self.sub is None:
                    raise InvalidRequest("update_filters before subscribe")
                self.drop()
                # From the last event sent: what was read but not sent is read again
                # under the new filter.
                self.sub = await self.hub.subscribe(self.principal.tenant, where,
                                                    self.sent_seq)
                await self.subscribed()
        elif kind == "unsubscribe":
            async with self.lock:
                self.drop()
        elif kind == "auth":
            raise InvalidRequest("already authenticated")
        else:
            raise InvalidRequest(f"unknown message type; valid types: "
                                 f"{', '.join(t for t in MESSAGE_TYPES if t != 'auth')}")

    async def subscribed(self) -> None:
        """Under the lock, once ``self.sub`` is the new subscription."""
        if self.dialect.native:
            await self.send(orjson.dumps({"type": "subscribed", "tenant": self.principal.tenant,
                                          "after_seq": self.sent_seq}))
        self.changed.set()

    def drop(self) -> None:
        if self.sub is not None:
            self.hub.unsubscribe(self.sub)
            self.sub = None

    async def send_events(self) -> None:
        while True:
            sub = self.sub
            if sub is None or sub.closed:
                self.changed.clear()
                if self.sub is sub:
                    await self.changed.wait()
                continue
            items = await self.hub.next_batch(sub)
            async with self.lock:
                if self.sub is not sub:  # replaced while these were read: not sent
                    continue
                for item in items:
                    if self.include_proof:
                        await self.send_with_proof(item)
                    else:
                        await self.send(item.message(self.dialect.event))
                    self.sent_seq = item.seq
                    self.events_sent += 1
                self.svc.metrics.stream_events_sent.inc(len(items))

    async def send_with_proof(self, item: Item) -> None:
        log = self.svc.log
        size = await log.latest_size(self.principal.tenant)
        if size != self.checkpoint_size:
            note = await log.checkpoint(self.principal.tenant, size)
            await self.send(orjson.dumps({"type": "checkpoint", "tree_size": size,
                                          "checkpoint": note}))
            self.checkpoint_size = size
        proof = await log.proof(self.principal.tenant, item.seq - 1, size)
        await self.send(b'{"type":"event","seq":%d,"event":%s,"proof":%s}' % (
            item.seq, item.raw, orjson.dumps(proof)))

    async def heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.stream_heartbeat_seconds)
            async with self.lock:
                await self.send(orjson.dumps({
                    "type": "heartbeat", "timestamp": self.dialect.timestamp(now_us()),
                    "events_sent": self.events_sent,
                    "connection_uptime_seconds": int(time.monotonic() - self.started)}))

    async def watchdog(self) -> None:
        """A client that stopped reading must not hold the server's memory: close it."""
        stall = self.settings.stream_stall_seconds
        while True:
            await asyncio.sleep(stall / 4)
            since = self.sending_since
            if since is not None and time.monotonic() - since > stall:
                self.hub.stalled += 1
                raise Close(4008, "slow consumer: the client stopped reading")

    async def recheck(self) -> None:
        await recheck_credential(self.svc, self.secret)
        raise Close(4401, "the credential was revoked")


async def recheck_credential(svc: Any, secret: str) -> None:
    """Returns once ``secret`` stops authenticating (revoked, expired)."""
    while True:
        await asyncio.sleep(RECHECK_SECONDS)
        try:
            authenticate_secret(svc, secret)
        except ProblemError:
            return


def problem_text(exc: ProblemError) -> str:
    """A problem as one line: its detail and each field's reason."""
    reasons = "; ".join(f"{e.get('field')}: {e.get('reason')}" for e in exc.errors)
    return f"{exc.detail} ({reasons})" if reasons else exc.detail


async def websocket_principal(ws: WebSocket, svc: Any) -> tuple[Principal, str]:
    """The caller of an accepted WebSocket: ``?token=``, the headers REST takes, or a first
    message ``{"type": "auth", "token": …}`` within ``AUTH_SECONDS``."""
    secret = ws.query_params.get("token")
    if not secret:
        try:
            secret = credential(ws)
        except ProblemError as exc:
            raise Close(4401, exc.detail[:120]) from None
    if not secret:
        try:
            message = await asyncio.wait_for(ws.receive(), AUTH_SECONDS)
        except TimeoutError:
            raise Close(4408, "no auth message within 10 seconds") from None
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        try:
            msg = orjson.loads(message.get("text") or message.get("bytes") or b"")
        except orjson.JSONDecodeError:
            msg = None
        if not (isinstance(msg, dict) and msg.get("type") == "auth"
                and isinstance(msg.get("token"), str) and msg["token"]):
            raise Close(4401, 'authenticate first: {"type": "auth", "token": "..."}')
        secret = msg["token"]
    try:
        principal = authenticate_secret(svc, secret)
    except ProblemError as exc:
        raise Close(4401 if exc.status == 401 else 4403, exc.detail[:120]) from None
    if not principal.has("events:read"):
        raise Close(4403, "this credential lacks the 'events:read' scope")
    return principal, secret


async def serve_websocket(ws: WebSocket, dialect: Dialect = NATIVE) -> None:
    """One stream connection from accept to close, in ``dialect``."""
    svc = ws.app.state.services
    await ws.accept()
    slot: int | None = None
    try:
        principal, secret = await websocket_principal(ws, svc)
        slot = svc.stream_slots.acquire(identity(principal))
        if slot is None:
            raise Close(4429, f"more than {svc.settings.stream_max_connections_per_key} "
                        "streams open for this credential")
        with svc.metrics.stream_connections.track_inprogress():
            await WebSocketSession(ws, svc, svc.hub, principal, secret, dialect).run()
    except Close as exc:
        with contextlib.suppress(Exception):
            await ws.close(exc.code, exc.reason)
    except WebSocketDisconnect:
        pass
    finally:
        if slot is not None:
            svc.stream_slots.release(slot)


@router.websocket("/events/stream")
async def stream_websocket(ws: WebSocket) -> None:
    await serve_websocket(ws)


# -- Server-Sent Events ------------------------------------------------------------------

SSE_PARAMS = frozenset({"resume_from"})


@router.get("/events/stream", include_in_schema=False)
async def stream_sse(request: Request, principal: Principal = Depends(reader)
                     ) -> StreamingResponse:
    """The same stream as Server-Sent Events (``Accept: text/event-stream``)."""
    if "text/event-stream" not in request.headers.get("accept", ""):
        raise NotAcceptable("this is the live stream: open it as a WebSocket, or send "
                            "Accept: text/event-stream")
    svc = request.app.state.services
    where = filter_from_params(request.query_params.multi_items(), allowed=SSE_PARAMS)
    last_id = request.headers.get("last-event-id") or request.query_params.get("resume_from")
    after = await resume_seq(svc, principal.tenant, last_id)
    secret = credential(request) or ""
    slot = svc.stream_slots.acquire(identity(principal))
    if slot is None:
        raise TooManyRequests(f"more than {svc.settings.stream_max_connections_per_key} "
                              "streams open for this credential")
    try:
        sub = await svc.hub.subscribe(principal.tenant, where, after)
    except BaseException:
        svc.stream_slots.release(slot)
        raise
    return StreamingResponse(
        sse_events(svc, sub, secret, lambda: svc.stream_slots.release(slot)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def sse_events(svc: Any, sub: Subscription, secret: str,
                     release: Callable[[], None]) -> AsyncIterator[bytes]:
    hub: StreamHub = svc.hub
    revoked = asyncio.create_task(recheck_credential(svc, secret))
    svc.metrics.stream_connections.inc()
    try:
        yield b": subscribed after seq %d\n\n" % sub.cursor
        while not revoked.done():
            items = await first(hub.next_batch(sub, svc.settings.stream_heartbeat_seconds),
                                revoked)
            if items is None:
                break
            if not items:
                yield b": keepalive\n\n"
                continue
            yield b"".join(b"id: %d\nevent: event\ndata: %s\n\n" % (i.seq, i.raw)
                           for i in items)
            svc.metrics.stream_events_sent.inc(len(items))
    finally:
        svc.metrics.stream_connections.dec()
        revoked.cancel()
        hub.unsubscribe(sub)
        release()


async def first(work: Awaitable[list[Item]], stop: asyncio.Task[None]) -> list[Item] | None:
    """``work``'s result, or None if ``stop`` finishes first."""
    task = asyncio.ensure_future(work)
    await asyncio.wait([task, stop], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


__all__ = ["NATIVE", "Dialect", "WebSocketSession", "router", "serve_websocket"]
