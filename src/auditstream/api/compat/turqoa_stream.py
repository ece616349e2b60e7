"""The turqoa WebSocket stream: ``/compat/turqoa/v1/events/stream`` (also ``/api/v1/…``).

The reference's protocol, over the native stream's session, hub, limits and close codes
(``api.native.stream``, ``docs/stream.md``); this module is its ``Dialect``.

Connection and auth
    ``?token=<api key or JWT>``, an ``Authorization: Bearer`` / ``X-API-Key`` header, or a
    first message ``{"type": "auth", "token": "…"}`` within 10 s; ``events:read`` is
    required. At most ``AUDITSTREAM_STREAM_MAX_CONNECTIONS_PER_KEY`` (10, the reference's
    figure) streams per credential, native and turqoa together; one more is closed with
    4429. The other close codes are the native stream's (4401, 4403, 4408, 4008, 1001).

Client messages
    ``subscribe`` and ``update_filters`` with ``filters``: ``categories`` (a list of gate,
    perimeter, maritime, drone, system, decision; anything else is an ``invalid_filter``
    error with the documented text ``Unknown category: 'x'. Valid categories: …``),
    ``min_severity`` (low, medium, high, critical: that severity and above, as records
    show it, so ``low`` includes ``info`` events), ``zones`` (zone names or ids, through
    the zone directory exactly as the REST ``zone`` filter), ``source_modules``. A key
    left out, an empty list or ``"all"`` (the REST default) means no filter; an unknown key
    is an ``invalid_filter`` error. The profile's scope (``AUDITSTREAM_COMPAT_TURQOA_SCOPE``)
    always applies. ``update_filters`` keeps the position: an event not yet sent is judged
    by the new filter. ``unsubscribe`` stops the events; the connection stays open. A
    refused message changes nothing and the connection goes on. ``ping`` (answered by
    ``{"type": "pong"}``) is kept from the native protocol.

    No ``subscribed`` answer (the reference has none); a client that wants to know that
    its ``subscribe`` was taken can send ``ping``: messages are handled in order.

    A connection that never subscribes (or unsubscribed) gets heartbeats and nothing else:
    every documented client subscribes first thing, and an unfiltered stream before its
    ``subscribe`` arrives would hand it events it did not ask for.

Server messages
    ``{"type": "event", <the record of GET /v1/events: id, timestamp, category, severity,
    source_module, source_device, title, description, location, metadata, requires_action,
    assigned_to, incident_id>}``, flat as documented (``turqoa.event_record``, encoded once
    per event for all turqoa subscribers); ``{"type": "heartbeat", "timestamp",
    "events_sent", "connection_uptime_seconds"}`` every
    ``AUDITSTREAM_STREAM_HEARTBEAT_SECONDS`` (30), the timestamp in whole seconds as in the
    reference; ``{"type": "error", "code", "message"}`` with ``invalid_filter`` or
    ``invalid_message``.

The reconnect buffer ("server buffers up to 1000 messages during brief disconnects")
    kept on the store, not in memory: when a connection that has a subscription ends, the
    server remembers its credential, its filters and the last seq it was sent, for
    :data:`GRACE_SECONDS` (60). A new connection of the same credential whose ``subscribe``
    carries the same filters within that window first receives what it missed, read from
    the store (at most the last :data:`BUFFER_MESSAGES`, 1,000, matching events), then the
    live stream, with no gap and no duplicate in between. "Same filters" means the same
    values in any order. Each ended connection is taken by one reconnect; when several
    connections of a credential with the same filters end together, each reconnect starts
    from the earliest of their positions, so none misses an event (one may see a few
    twice; records carry their ``id``). "Sent" is what the server handed to the
    connection: an event in flight when the network failed is not replayed.

    The memory is a few bytes per credential and filters (:data:`MAX_REMEMBERED` entries
    at most, the oldest forgotten first), one small file each beside the stream slots
    (``stream.slots``): a directory all processes of one server share, so with several
    HTTP workers (``AUDITSTREAM_WORKERS``) a reconnect that lands on another worker, or
    on a restarted one, is replayed just the same. The positions are in the file, the
    events in the store; a server restart (a new runtime directory) forgets them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import orjson
from fastapi import APIRouter, FastAPI, WebSocket

from ...model.times import US, format_us
from ...query.filter import Cmp, Eq, Node, Or, and_, check_size
from ...query.predicate import compile_predicate
from ...stream.hub import Item
from ..native.stream import Dialect, WebSocketSession, identity, serve_websocket
from .fields import scalars_shown_as
from .scope import scope
from .turqoa import (
    ALL,
    CATEGORY,
    SEVERITIES,
    SEVERITY,
    ZONE_PATHS,
    Zones,
    event_record,
    invalid_filter,
)

log = logging.getLogger("auditstream")

#: Seconds a connection's position is kept for its reconnect.
GRACE_SECONDS = 60.0
#: A reconnect replays at most this many of the newest events it missed.
BUFFER_MESSAGES = 1000
#: Credential-and-filters entries kept per process at most.
MAX_REMEMBERED = 10_000
#: Ended connections kept per credential and filters at most (the per-credential limit is
#: 10 open at once; a few more cover churn within the window).
MAX_PER_FILTER = 16
FILTERS = ("categories", "min_severity", "zones", "source_modules")

#: A subscription's filters, normalised: the same values in any order are the same key.
FilterKey = tuple[tuple[str, tuple[str, ...]], ...]


class Reconnects:
    """Where the connections that ended within ``GRACE_SECONDS`` were, by credential and
    filters: one small file each in ``directory``, shared by the server's processes (so
    a reconnect may land on any worker), under ``flock``. ``clock`` (seconds since the
    epoch) is injected so tests move time instead of sleeping; files carry it as mtime."""

    def __init__(self, directory: str | os.PathLike[str],
                 clock: Callable[[], float] = time.time):
        self.dir = Path(directory)
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.clock = clock
        self._pruned = 0.0

    def left(self, credential: str, filters: Hashable, seq: int) -> None:
        """A connection of ``credential`` with ``filters`` ended after sending ``seq``."""
        now = self.clock()
        with self._entry(credential, filters, create=True) as (ended, keep):
            keep([*self._live(ended, now), (seq, now)][-MAX_PER_FILTER:], now)
        self._prune(now)

    def resume(self, credential: str, filters: Hashable) -> int | None:
        """The seq a reconnect with ``filters`` starts after (taking one ended connection),
        or None when none ended within the window."""
        now = self.clock()
        with self._entry(credential, filters, create=False) as (ended, keep):
            ended = self._live(ended, now)
            if not ended:
                keep([], now)
                return None
            # Which of them this is, nobody can tell: start from the earliest position
            # (no miss), and take the latest away (each ended connection resumes once).
            start = min(seq for seq, _ in ended)
            ended.remove(max(ended))
            keep(ended, now)
            return start

    def remembered(self) -> int:
        """Ended connections kept (for tests and metrics)."""
        now, n = self.clock(), 0
        for path in self.dir.glob("*.json"):
            with contextlib.suppress(FileNotFoundError, ValueError):
                n += len(self._live(orjson.loads(path.read_bytes()), now))
        return n

    @staticmethod
    def _live(ended: list[tuple[int, float]], now: float) -> list[tuple[int, float]]:
        return [(int(seq), t) for seq, t in ended if now - t <= GRACE_SECONDS]

    @contextlib.contextmanager
    def _entry(self, credential: str, filters: Hashable, *, create: bool) -> Iterator[
            tuple[list[tuple[int, float]], Callable[[list[tuple[int, float]], float], None]]]:
        """The entry's ended connections, and how to store them (an empty list removes
        the entry), under the entry's lock."""
        name = hashlib.sha256(orjson.dumps([credential, filters])).hexdigest()[:32]
        path = self.dir / f"{name}.json"
        fd = _lock(path, create)
        if fd is None:
            yield [], lambda ended, now: None
            return

        def keep(ended: list[tuple[int, float]], now: float) -> None:
            if not ended:
                path.unlink(missing_ok=True)
                return
            data = orjson.dumps(ended)
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
            os.utime(fd, (now, now))

        try:
            raw = b""
            while chunk := os.read(fd, 65536):
                raw += chunk
            try:
                ended = [(int(s), float(t)) for s, t in orjson.loads(raw)] if raw else []
            except (ValueError, TypeError):  # a torn or foreign file: start it afresh
                ended = []
            yield ended, keep
        finally:
            os.close(fd)  # and with it the lock

    def _prune(self, now: float) -> None:
        """Remove entries older than the window and, beyond ``MAX_REMEMBERED``, the oldest
        (at most once a second: it lists the directory)."""
        if now - self._pruned < 1.0:
            return
        self._pruned = now
        entries = []
        for path in self.dir.glob("*.json"):
            with contextlib.suppress(FileNotFoundError):
                entries.append((path.stat().st_mtime, path))
        entries.sort()
        excess = len(entries) - MAX_REMEMBERED
        for i, (mtime, path) in enumerate(entries):
            if now - mtime <= GRACE_SECONDS and i >= excess:
                break
            fd = _lock(path, create=False)
            if fd is not None:  # under the lock: a writer is not writing into a removed file
                if i < excess or now - os.fstat(fd).st_mtime > GRACE_SECONDS:
                    path.unlink(missing_ok=True)
                os.close(fd)


def _lock(path: Path, create: bool) -> int | None:
    """``path`` opened and locked (None if it does not exist and ``create`` is false)."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
        except FileNotFoundError:
            return None
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # removed between open and lock (taken or expired): open it anew
        if not create:
            return None


@dataclass(eq=False)
class Profile:
    """The turqoa stream's state in one app: the zone directory and the reconnect memory."""

    zones: Zones
    reconnects: Reconnects

    def message(self, item: Item) -> bytes:
        """An event message. The session sends ``item.message(profile.message)``: built
        once per event for every turqoa subscriber of the app (one bound method, one key)."""
        return orjson.dumps({"type": "event", **event_record(item.event, self.zones)})


def profile(app: FastAPI) -> Profile:
    """The app's ``Profile`` (made on first use)."""
    found: Profile | None = getattr(app.state, "turqoa_stream", None)
    if found is None:
        # Beside the stream slots: a directory every process of the server shares.
        shared = app.state.services.stream_slots.shared_dir()
        found = app.state.turqoa_stream = Profile(
            app.state.turqoa_zones, Reconnects(Path(shared) / "turqoa-reconnects"))
    return found


# ------------------------------------------------------------------ filters


def _strings(name: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise invalid_filter(f"Invalid {name}: must be a list of strings")


def _enum(name: str, plural: str, value: Any, allowed: tuple[str, ...]) -> tuple[str, ...]:
    vals = _strings(plural, value)
    if ALL in vals:
        return ()
    for v in vals:
        if v not in allowed:
            raise invalid_filter(
                f"Unknown {name}: {v[:40]!r}. Valid {plural}: {', '.join(allowed)}")
    return vals


def parse_filters(filters: Any, zones: Zones) -> tuple[list[Node], FilterKey]:
    """The filter nodes of a ``filters`` object and its normalised key (raises
    ``invalid_filter`` errors in the documented wording)."""
    if filters is None:
        filters = {}
    if not isinstance(filters, dict):
        raise invalid_filter("Invalid filters: must be an object")
    for name in filters:
        if name not in FILTERS:
            raise invalid_filter(f"Unknown filter: {str(name)[:40]!r}. Valid filters: "
                                 f"{', '.join(FILTERS)}")
    nodes: list[Node] = []
    given: dict[str, tuple[str, ...]] = {}
    if cats := _enum("category", "categories", filters.get("categories"), CATEGORY.allowed):
        nodes.append(CATEGORY.filter(cats))
        given["categories"] = cats
    if (raw := filters.get("min_severity")) is not None:
        if not isinstance(raw, str) or raw not in SEVERITIES:
            shown = repr(raw[:40]) if isinstance(raw, str) else orjson.dumps(raw).decode()[:40]
            raise invalid_filter(
                f"Unknown severity: {shown}. Valid severities: {', '.join(SEVERITIES)}")
        nodes.append(SEVERITY.filter(SEVERITIES[SEVERITIES.index(raw):]))
        given["min_severity"] = (raw,)
    if names := _strings("zones", filters.get("zones")):
        vals = tuple(x for v in names for z in zones.spellings(v) for x in scalars_shown_as(z))
        nodes.append(Or(tuple(Eq(path, vals) for path in ZONE_PATHS)))
        given["zones"] = names
    modules = _strings("source_modules", filters.get("source_modules"))
    if modules and ALL not in modules:
        nodes.append(Eq("source.module", tuple(x for m in modules
                                                for x in scalars_shown_as(m))))
        given["source_modules"] = modules
    key = tuple((name, tuple(sorted(set(vals)))) for name, vals in sorted(given.items()))
    return nodes, key


# ------------------------------------------------------------------ the dialect


async def replay_start(session: WebSocketSession, where: Node, after: int) -> int:
    """``after``, or the seq after which at most ``BUFFER_MESSAGES`` matching events
    follow (a binary search over counts: no event is read)."""
    store, tenant = session.svc.store, session.principal.tenant

    async def newer(seq: int) -> int:
        return int(await store.count(tenant, and_(where, Cmp("seq", ">", seq))))

    if await newer(after) <= BUFFER_MESSAGES:
        return after
    lo, hi = after, int(await store.last_seq(tenant))  # newer(lo) > limit >= newer(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if await newer(mid) <= BUFFER_MESSAGES:
            hi = mid
        else:
            lo = mid
    return hi


class Connection:
    """One turqoa connection's view of its filters, for the reconnect buffer."""

    def __init__(self, profile: Profile):
        self.profile = profile
        #: The last filter made, and its key (what ``session.sub.where`` is compared to).
        self.where: Node | None = None
        self.key: FilterKey = ()

    def dialect(self) -> Dialect:
        return Dialect(where=self.make_filter, event=self.profile.message, native=False,
                       start=self.start, ended=self.ended, timestamp=whole_seconds)

    def make_filter(self, ws: WebSocket, msg: dict[str, Any]) -> Node:
        nodes, key = parse_filters(msg.get("filters"), self.profile.zones)
        # scope() reads only ``.app.state``, which a WebSocket has as a Request does.
        where = and_(scope(cast(Any, ws), "turqoa"), *nodes)
        check_size(where)
        try:
            compile_predicate(where)
        except ValueError as exc:  # what the predicate cannot decide, the stream cannot serve
            raise invalid_filter(f"Invalid filters: {exc}") from None
        self.where, self.key = where, key
        return where

    async def start(self, session: WebSocketSession, where: Node) -> int | None:
        """A reconnect's replay: after the position its ended connection had, if any."""
        if where is not self.where:
            return None
        try:
            after = self.profile.reconnects.resume(identity(session.principal), self.key)
        except OSError:  # the buffer is a courtesy: the stream goes on live without it
            log.exception("turqoa stream: reading the reconnect positions failed")
            return None
        return None if after is None else await replay_start(session, where, after)

    def ended(self, session: WebSocketSession) -> None:
        """Remember where a connection that had a subscription ended."""
        sub = session.sub
        if sub is None or sub.where is not self.where:
            return
        try:
            self.profile.reconnects.left(identity(session.principal), self.key,
                                         session.sent_seq)
        except OSError:
            log.exception("turqoa stream: keeping a reconnect position failed")


def whole_seconds(us: int) -> str:
    return format_us(us - us % US)


async def stream_websocket(ws: WebSocket) -> None:
    await serve_websocket(ws, Connection(profile(ws.app)).dialect())


def add_routes(router: APIRouter) -> None:
    """The stream at the reference's example path and under its heading's ``/api``."""
    router.add_api_websocket_route("/v1/events/stream", stream_websocket)
    router.add_api_websocket_route("/api/v1/events/stream", stream_websocket)


__all__ = ["BUFFER_MESSAGES", "GRACE_SECONDS", "Reconnects", "add_routes", "parse_filters",
           "profile"]
