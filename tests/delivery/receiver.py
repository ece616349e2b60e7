"""``Receiver``: a real HTTP server on 127.0.0.1 that records what push delivery sends.

Each request gets the next queued ``Answer`` (``answer(...)``), else what ``respond``
returns for it, else ``default``. ``hang`` delays every answer (a timeout for the
sender); ``stop()`` and ``start()`` again on the same port make a receiver that is down
for a while. HTTP/1.0: each request has its own connection, so a stopped receiver is
really unreachable.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    #: Held until this event is set (a receiver that hangs: the test sets it at the end).
    hold: threading.Event | None = None


@dataclass
class Received:
    method: str
    path: str
    #: Header names in lower case (the last value of a repeated header).
    headers: dict[str, str]
    body: bytes
    status: int = 0

    def json(self) -> Any:
        return orjson.loads(self.body)


class Receiver:
    def __init__(self, port: int = 0):
        self.requests: list[Received] = []
        self.answers: deque[Answer] = deque()
        self.default = Answer()
        self.respond: Callable[[Received], int] | None = None
        self.hang = 0.0
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, *answers: Answer) -> None:
        with self._lock:
            self.answers.extend(answers)

    def _next(self, got: Received) -> Answer:
        with self._lock:
            if self.answers:
                return self.answers.popleft()
        if self.respond is not None:
            return Answer(self.respond(got))
        return self.default

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                self._handle()

            def do_GET(self) -> None:  # noqa: N802
                self._handle()

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                got = Received(self.command, self.path,
                               {k.lower(): v for k, v in self.headers.items()}, body)
                answer = receiver._next(got)
                got.status = answer.status
                with receiver._lock:  # recorded before it answers (and before any hang)
                    receiver.requests.append(got)
                if receiver.hang:
                    time.sleep(receiver.hang)
                if answer.hold is not None:
                    answer.hold.wait()
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        # A short poll: shutdown waits for it.
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def ok(self) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if 200 <= r.status < 300]

    def delivered(self) -> list[dict[str, Any]]:
        """The events of every acknowledged native-format message, in arrival order."""
        return [e for r in self.ok() for e in r.json()["data"]]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver: condition not met; got {len(self.requests)} "
                                     f"requests")
            time.sleep(0.02)


async def until(predicate: Callable[[], bool], timeout: float = 20.0,
                what: str = "condition") -> None:
    """Wait (on the event loop) until ``predicate()``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
