"""The writer process of a multi-process server, and ``RemoteChannel``, how workers reach it.

One process writes the log and holds the signing key; HTTP workers send it requests and
get replies and commit notices back over a Unix socket in a private directory:

* **Frames**: a 4-byte big-endian length, then a pickle. Python on both ends and values
  that are plain dataclasses, tuples and bytes: pickle is the library that already does
  this fast. Only peers that proved the key are ever unpickled.
* **Handshake**: the first frame from a peer is the server's 32-byte key (random per
  server run, passed to the processes it starts); anything else closes the connection.
* **Worker → writer**: ``(msg_id, request)``. **Writer → worker**: ``("reply", msg_id,
  Reply)`` and ``("notices", [CommitNotice…])``, to every peer, notices before the replies
  of their commit, so a worker's feed knows a commit by the time its request returns.
  A peer that only listens (a test, ``auditstream tail`` later) just never sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import logging
import os
import pickle
import signal
import struct
from collections.abc import Callable
from typing import Any

from ..errors import Overloaded, StoreClosed, StoreUnavailable
from .channel import Channel
from .feed import CommitFeed
from .protocol import CommitNotice, ErrorInfo, Reply, Request
from .writer import WriterThread

log = logging.getLogger("auditstream")
_LEN = struct.Struct(">I")
MAX_FRAME = 256 * 1024 * 1024


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = _LEN.unpack(await reader.readexactly(_LEN.size))
    if size > MAX_FRAME:
        raise ConnectionError(f"frame of {size} bytes")
    return await reader.readexactly(size)


def frame(payload: bytes) -> bytes:
    return _LEN.pack(len(payload)) + payload


def dump(obj: Any) -> bytes:
    return frame(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


# -- the writer side ------------------------------------------------------------------------


class WriterServer:
    """Accepts workers on ``socket_path`` and feeds their requests to ``writer``."""

    def __init__(self, socket_path: str, key: bytes,
                 make_writer: Callable[[Callable[[list[CommitNotice]], None]], WriterThread]):
        self.socket_path = socket_path
        self.key = key
        self.peers: set[asyncio.StreamWriter] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.writer = make_writer(self._notices_from_thread)

    def _notices_from_thread(self, notices: list[CommitNotice]) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self._broadcast, dump(("notices", notices)))

    def _broadcast(self, data: bytes) -> None:
        for peer in list(self.peers):
            if peer.is_closing():
                self.peers.discard(peer)
            else:
                peer.write(data)

    async def serve(self, stop: asyncio.Event) -> None:
        self.loop = asyncio.get_running_loop()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        server = await asyncio.start_unix_server(self._peer, path=self.socket_path)
        os.chmod(self.socket_path, 0o600)
        self.writer.start()
        try:
            await stop.wait()
        finally:
            server.close()
            for peer in list(self.peers):
                peer.close()
            # Commit what was accepted; the replies have nowhere to go, but it is durable.
            await asyncio.to_thread(self.writer.stop)

    async def _peer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if not hmac.compare_digest(await read_frame(reader), self.key):
                return
            self.peers.add(writer)
            loop = asyncio.get_running_loop()
            while True:
                msg_id, request = pickle.loads(await read_frame(reader))

                def deliver(reply: Reply, msg_id: int = msg_id) -> None:
                    loop.call_soon_threadsafe(_send, writer, dump(("reply", msg_id, reply)))

                try:
                    self.writer.submit(request, deliver)
                except (Overloaded, StoreClosed) as exc:
                    writer.write(dump(("reply", msg_id, Reply(error=ErrorInfo.of(exc)))))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.peers.discard(writer)
            writer.close()


def _send(writer: asyncio.StreamWriter, data: bytes) -> None:
    if not writer.is_closing():
        writer.write(data)


def run_writer(socket_path: str, key: bytes,
               make_writer: Callable[[Callable[[list[CommitNotice]], None]], WriterThread]
               ) -> None:
    """Serve until SIGTERM or SIGINT, then commit what was accepted and stop."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await WriterServer(socket_path, key, make_writer).serve(stop)

    asyncio.run(main())


# -- the worker side ------------------------------------------------------------------------


class RemoteChannel(Channel):
    """Requests to the writer process over its socket; its notices go into ``feed``.

    Connects on first use and again after the writer restarted (waiting up to
    ``connect_timeout`` for it). Requests in flight when the connection drops get
    ``StoreUnavailable``: nothing about them was acknowledged.
    """

    def __init__(self, socket_path: str, key: bytes, feed: CommitFeed, *,
                 connect_timeout: float = 10.0):
        self.socket_path = socket_path
        self.key = key
        self.feed = feed
        self.connect_timeout = connect_timeout
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self._closed = False

    async def _connected(self) -> asyncio.StreamWriter:
        if self._writer is not None and not self._writer.is_closing():
            return self._writer
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            if self._writer is not None and not self._writer.is_closing():
                return self._writer
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.connect_timeout
            while True:
                try:
                    reader, writer = await asyncio.open_unix_connection(self.socket_path)
                    break
                except OSError as exc:
                    if loop.time() >= deadline:
                        raise StoreUnavailable(f"the writer process is not reachable ({exc})") \
                            from None
                    await asyncio.sleep(0.05)
            writer.write(frame(self.key))
            self._writer = writer
            self._reader_task = asyncio.create_task(self._read(reader, writer))
            return writer

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                msg = pickle.loads(await read_frame(reader))
                if msg[0] == "notices":
                    self.feed.publish(msg[1])
                else:
                    fut = self._pending.pop(msg[1], None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg[2])
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            writer.close()
            if self._writer is writer:
                self._writer = None
            lost = StoreUnavailable("the connection to the writer process was lost; the "
                                    "request was not acknowledged")
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(lost)
            self._pending.clear()

    async def request(self, request: Request) -> Any:
        if self._closed:
            raise StoreClosed("store is closed")
        writer = await self._connected()
        msg_id = next(self._ids)
        fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        writer.write(dump((msg_id, request)))
        return (await fut).result()

    async def listen(self) -> None:
        """Connect only to receive notices (a process that never writes)."""
        await self._connected()

    async def close(self) -> None:
        self._closed = True
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task


__all__ = ["RemoteChannel", "WriterServer", "run_writer"]
