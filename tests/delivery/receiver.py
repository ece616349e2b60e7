"""``Receiver``: a real HTTP server on 127.0.0.1 that records what push delivery sends.

It answers each request with the next status of ``statuses`` (then ``default``), or
what ``respond(request)`` returns, can hang (a timeout for the sender), and can be
stopped and started again on the same port (a receiver that is down for a while).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    def json(self) -> Any:
        return orjson.loads(self.body)


class Receiver:
    def __init__(self, port: int = 0):
        self.requests: list[Received] = []
        self.statuses: list[int] = []
        self.default = 200
        self.respond: Callable[[Received], int] | None = None
        self.hang = 0.0
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                got = Received("POST", self.path, {k.lower(): v for k, v in self.headers.items()},
                               body, 0)
                if receiver.hang:
                    time.sleep(receiver.hang)
                with receiver._lock:
                    if receiver.respond is not None:
                        got.status = receiver.respond(got)
                    else:
                        got.status = (receiver.statuses.pop(0) if receiver.statuses
                                      else receiver.default)
                    receiver.requests.append(got)
                self.send_response(got.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

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
    import asyncio

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
