"""``Channel``: how a request reaches the writer and its reply comes back.

* ``LocalChannel``: the writer thread runs in this process (``serve --workers 1``, the
  CLI, tests).
* ``RemoteChannel`` (``log.process``): the writer is its own process, reached over a
  Unix socket (``serve --workers N``).
* ``ClosedChannel``: nothing may be written (a full disk, a signed log opened without its
  key); every request gets ``StoreUnavailable`` with the reason.

Guarantee (every implementation): ``request`` returns only after the commit that made the
request durable, or raises; a raised ``StoreUnavailable`` means nothing was acknowledged
(the request may or may not have been committed if the writer died meanwhile, so retries
should carry client ids or an ``Idempotency-Key``).
"""

from __future__ import annotations

import abc
import asyncio
from typing import Any

import anyio.to_thread

from ..errors import StoreClosed, StoreUnavailable
from .protocol import Reply, Request
from .writer import WriterThread


class Channel(abc.ABC):
    @abc.abstractmethod
    async def request(self, request: Request) -> Any:
        """The reply's value (``Reply.result``), once durable; raises the reply's error."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop accepting requests; those already accepted are finished first."""


class LocalChannel(Channel):
    def __init__(self, writer: WriterThread, on_close: Any = None):
        self.writer = writer
        self.on_close = on_close
        writer.start()

    async def request(self, request: Request) -> Any:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Reply] = loop.create_future()

        def deliver(reply: Reply) -> None:
            loop.call_soon_threadsafe(_set, fut, reply)

        self.writer.submit(request, deliver)
        return (await fut).result()

    async def close(self) -> None:
        await anyio.to_thread.run_sync(self.writer.stop)
        if self.on_close is not None:
            self.on_close()


class ClosedChannel(Channel):
    def __init__(self, reason: str):
        self.reason = reason

    async def request(self, request: Request) -> Any:
        raise StoreUnavailable(f"the log cannot be written: {self.reason}; reads still work")

    async def close(self) -> None:
        pass


def _set(fut: asyncio.Future[Reply], reply: Reply) -> None:
    if not fut.done():
        fut.set_result(reply)


__all__ = ["Channel", "ClosedChannel", "LocalChannel", "StoreClosed"]
