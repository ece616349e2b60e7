"""The client side of ``/v1/events/stream`` (docs/stream.md), without I/O.

A ``StreamSession`` is one logical subscription that outlives its connections: it
writes the ``auth`` and ``subscribe`` messages of each new connection, reads the
server's messages, and keeps the position, the seq of the last event handed to the
caller. Each reconnection subscribes with ``resume_from=<position>``; the server replays
from the store every matching event after it, so the caller sees each event exactly once
across disconnects and server restarts (an event at or below the position is a duplicate
and is dropped, should a server ever send one).

The sync and async clients drive it (``Client.stream``, ``AsyncClient.stream``), with
the close-code policy of ``close_action``:

* 4401, 4403 (the credential is invalid, revoked or lacks ``events:read``): fatal, raised;
* 4429 (too many streams of this credential), 1001 (server shutting down), 4008, 4408
  and any other close or network error: reconnect after the backoff delay.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import orjson

from .errors import StreamAuthError, StreamError
from .types import Event

__all__ = ["CLOSE_SECONDS", "FATAL_CLOSE_CODES", "WAKE_SECONDS", "Message", "StreamSession",
           "close_action", "sleep_awake", "stream_url"]

#: Close codes after which reconnecting cannot help.
FATAL_CLOSE_CODES = {4401: "the credential is missing, invalid or revoked",
                     4403: "the credential lacks the events:read scope"}
#: How long without any message (heartbeats come every 30 s) means a dead connection.
DEAD_AFTER_SECONDS = 60.0
STREAM_PATH = "/v1/events/stream"
#: The longest the blocking client waits in one call. The kernel may hand a Ctrl-C to any
#: thread of the process, e.g. one of the WebSocket's; Python then only flags it, and the
#: main thread raises ``KeyboardInterrupt`` when its wait returns: after up to a 30 s
#: heartbeat, were it one wait.
WAKE_SECONDS = 0.5
#: How long closing a connection waits for the server's close frame. A consumer that stops
#: with messages still queued has paused the reading (websockets' backpressure), so the
#: frame is never read and the wait runs out: websockets' own 10 s stalled every early
#: exit, Ctrl-C in ``auditstream tail`` with a backlog included.
CLOSE_SECONDS = 2.0


def sleep_awake(seconds: float) -> None:
    """``time.sleep`` in slices of ``WAKE_SECONDS``, so that a Ctrl-C ends it (see there)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, WAKE_SECONDS))


def stream_url(base_url: str) -> str:
    """``http(s)://host[:port][/prefix]`` → ``ws(s)://host[:port][/prefix]/v1/events/stream``."""
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None:
        raise ValueError(f"base_url must be http(s)://…, not {base_url!r}")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + STREAM_PATH, "", ""))


def close_action(code: int | None, reason: str) -> None:
    """Raise ``StreamAuthError`` for a fatal close code; return to reconnect otherwise."""
    if code in FATAL_CLOSE_CODES:
        raise StreamAuthError(code, reason or FATAL_CLOSE_CODES[code])


@dataclass(frozen=True, slots=True)
class Message:
    """One server message, as the driver needs it."""

    kind: Literal["subscribed", "event", "checkpoint", "other"]
    event: Event | None = None
    proof: Any = None
    checkpoint: str | None = None


@dataclass
class StreamSession:
    """One subscription across connections (see the module docstring)."""

    filters: dict[str, Any] = field(default_factory=dict)
    q: str | None = None
    #: The seq of the last event delivered (or, before the first, the ``resume_from`` the
    #: caller gave: a seq or an event id); ``None`` means "from now on".
    position: int | str | None = None
    include_proof: bool = False

    def auth_message(self, token: str) -> str:
        # First-message auth rather than ``?token=``: the secret stays out of URLs, and so
        # out of proxies' and servers' access logs.
        return orjson.dumps({"type": "auth", "token": token}).decode()

    def subscribe_message(self) -> str:
        msg: dict[str, Any] = {"type": "subscribe", "filters": self.filters}
        if self.q is not None:
            msg["q"] = self.q
        if self.position is not None:
            msg["resume_from"] = self.position
        if self.include_proof:
            msg["include_proof"] = True
        return orjson.dumps(msg).decode()

    def receive(self, raw: str | bytes) -> Message:
        """Read one server message. Raises ``StreamError`` for an ``error`` message (they
        answer a bad filter, message or ``resume_from``: asking again cannot help)."""
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise StreamError("invalid_message", "the server sent a message that is not "
                              "JSON") from None
        kind = msg.get("type") if isinstance(msg, dict) else None
        if kind == "event":
            event = msg.get("event")
            seq = event.get("seq") if isinstance(event, dict) else None
            if type(seq) is not int:
                raise StreamError("invalid_message", "the server sent an event without a seq")
            if isinstance(self.position, int) and seq <= self.position:
                return Message("other")  # already delivered: never twice
            return Message("event", event=event, proof=msg.get("proof"))  # type: ignore[arg-type]
        if kind == "subscribed":
            after = msg.get("after_seq")
            if type(after) is int and not isinstance(self.position, int):
                # "From now on" and "after this id" become a seq: a reconnection must
                # resume there, not at whatever is newest by then.
                self.position = after
            return Message("subscribed")
        if kind == "checkpoint":
            note = msg.get("checkpoint")
            if not isinstance(note, str):
                raise StreamError("invalid_message", "a checkpoint message without a note")
            return Message("checkpoint", checkpoint=note)
        if kind == "error":
            code = msg.get("code")
            raise StreamError(code if isinstance(code, str) else "error",
                              str(msg.get("message") or ""))
        return Message("other")  # heartbeat, pong, and types newer than this client

    def delivered(self, event: Event) -> None:
        """Record that ``event`` went to the caller: reconnections resume after it."""
        self.position = event["seq"]
