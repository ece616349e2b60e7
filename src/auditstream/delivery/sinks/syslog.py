"""``syslog``: RFC 5424 messages over UDP, TCP or TLS, one message per event.

Config: ``host``, ``port`` (514 for ``udp`` and ``tcp``, 6514 for ``tls``), ``transport``
(``tcp`` by default: the one that tells a write failed), ``body`` (``json``, the format's
record; or ``cef``, built from the canonical event: only with the ``native`` format),
``facility`` (0–23, default 13 ``log audit``), ``app_name`` (``auditstream``),
``tls_ca`` (PEM certificates to trust instead of the system store), ``tls_verify``
(default true; false skips certificate and name checks) and ``batch_size`` (default 100).
The message itself is ``delivery.syslog_message``.

Transports:

* ``udp``: one message per datagram, fire-and-forget (ok means sent, not received); the
  MSG part is cut to ``UDP_MAX_MSG`` (8,192) bytes on a UTF-8 boundary, so a long event
  arrives truncated (its JSON or CEF then incomplete) rather than not at all. The name is
  resolved and checked for every batch.
* ``tcp`` and ``tls``: RFC 6587 octet counting, ``<length> SP <message>`` per message,
  with no truncation (receivers have their own limit: rsyslog's ``maxMessageSize``).
  The whole batch is one write; ok means written and flushed to the connection (syslog
  has no acknowledgement). The connection is kept for the next batch and dropped after
  any error; before reusing it the sink looks whether the receiver has closed it (a
  receiver sends nothing, so anything readable means closed or confused) and reconnects.
  TLS verifies the certificate against the configured ``host`` (also the SNI name) unless
  ``tls_verify`` is false; TLS 1.2 at least.

Every connection goes to an address that ``DestinationPolicy.resolve`` returned and
checked at that moment, and a whole ``send`` (resolve, connect, handshake, write) is
bounded by the context's timeout. Every failure is an outage (no connection, refused by
the policy, a TLS failure, a timeout, a reset): a syslog receiver never refuses a
payload.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal

import orjson
from pydantic import AfterValidator, Field

from ...errors import InvalidRequest
from ..guard import DestinationPolicy, DestinationRefused
from ..payload import FORMATS, Format, formatter
from ..syslog_message import AUDIT_FACILITY, cef, message
from .base import Outcome, Sink, SinkConfig, SinkContext

#: The most bytes of MSG in one UDP datagram (see the module docstring).
UDP_MAX_MSG = 8192
DEFAULT_PORTS = {"udp": 514, "tcp": 514, "tls": 6514}

_HOST = r"^(\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*|[A-Za-z0-9_.\-]+)$"


def _check_ca(pem: str) -> str:
    try:
        ssl.create_default_context(cadata=pem)
    except (ssl.SSLError, ValueError) as exc:
        raise ValueError(f"not PEM certificates: {exc}") from None
    return pem


class SyslogConfig(SinkConfig):
    host: Annotated[str, Field(min_length=1, max_length=253, pattern=_HOST)]
    port: int | None = Field(None, ge=1, le=65535)
    transport: Literal["udp", "tcp", "tls"] = "tcp"
    body: Literal["json", "cef"] = "json"
    facility: int = Field(AUDIT_FACILITY, ge=0, le=23)
    app_name: Annotated[str, Field(min_length=1, max_length=48,
                                   pattern=r"^[\x21-\x7e]+$")] = "auditstream"
    tls_ca: Annotated[str, Field(min_length=1, max_length=64 * 1024),
                     AfterValidator(_check_ca)] | None = None
    tls_verify: bool = True
    batch_size: int = Field(100, ge=1, le=1000)


def _family(address: str) -> socket.AddressFamily:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return socket.AF_INET6 if ip.version == 6 else socket.AF_INET


class _Connection:
    """An open TCP or TLS stream and the socket under it (to look for the receiver's
    close without reading through asyncio)."""

    def __init__(self, sock: socket.socket, writer: asyncio.StreamWriter,
                 reader: asyncio.StreamReader):
        self.sock, self.writer, self.reader = sock, writer, reader

    async def closed_by_peer(self) -> bool:
        """Whether the receiver closed the connection, looked up in the kernel (asyncio
        may not have run since the FIN arrived)."""
        while not (self.writer.is_closing() or self.reader.at_eof()
                   or self.reader.exception()):
            try:
                pending = self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                return False  # nothing to read: open
            except OSError:
                return True
            if not pending:
                return True  # end of stream
            # Bytes from the receiver (TLS session tickets, say): let asyncio take them,
            # then look again (a TLS close_notify closes the transport).
            await asyncio.sleep(0)
        return True

    def close(self) -> None:
        self.writer.close()


class SyslogSink(Sink):
    kind: ClassVar[str] = "syslog"
    Config = SyslogConfig
    FORMATS = FORMATS
    config: SyslogConfig

    def __init__(self, config: SyslogConfig, fmt: Format, context: SinkContext):
        super().__init__(config, fmt, context)
        self.port = config.port or DEFAULT_PORTS[config.transport]
        self.body: Callable[[dict[str, Any]], bytes]
        if config.body == "cef":
            self.body = lambda event: cef(event, context.deployment).encode()
        else:
            record = formatter(fmt, context.deployment)
            self.body = lambda event: orjson.dumps(record(event))
        self._tls = self._tls_context() if config.transport == "tls" else None
        self._conn: _Connection | None = None
        self._lock = asyncio.Lock()

    @property
    def max_batch(self) -> int:
        return self.config.batch_size

    @classmethod
    def prepare(cls, config: SinkConfig, policy: DestinationPolicy, fmt: Format
                ) -> dict[str, Any]:
        assert isinstance(config, SyslogConfig)
        policy.check_literal("config.host", config.host)
        if config.body == "cef" and fmt != "native":
            raise InvalidRequest("invalid integration", errors=[{
                "field": "format", "reason": "a CEF body is built from the canonical event: "
                "use the native format, or body json"}])
        return {}

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cadata=self.config.tls_ca)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if not self.config.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def messages(self, events: list[dict[str, Any]]) -> list[bytes]:
        udp = self.config.transport == "udp"
        return [message(e, self.body, facility=self.config.facility,
                        hostname=self.context.deployment, app_name=self.config.app_name,
                        max_msg_bytes=UDP_MAX_MSG if udp else None) for e in events]

    async def send(self, events: list[dict[str, Any]], message_id: str) -> Outcome:
        start = time.perf_counter()
        messages = self.messages(events)
        # One send at a time: a test delivery beside the deliverer must not open a second
        # connection or write between another send's frames.
        async with self._lock:
            try:
                if self.config.transport == "udp":
                    await asyncio.wait_for(self._send_udp(messages), self.context.timeout)
                else:
                    await asyncio.wait_for(self._send_stream(messages), self.context.timeout)
            except (OSError, DestinationRefused, TimeoutError) as exc:
                self._drop()
                reason = "timed out" if isinstance(exc, TimeoutError) else \
                    f"{type(exc).__name__}: {exc}"
                return Outcome(False, error=reason[:512],
                               latency_ms=(time.perf_counter() - start) * 1000)
            except BaseException:
                self._drop()  # cancelled mid-write: the stream may end inside a frame
                raise
        return Outcome(True, latency_ms=(time.perf_counter() - start) * 1000)

    async def _addresses(self) -> list[str]:
        return await self.context.policy.resolve(self.config.host, self.port)

    async def _send_udp(self, messages: list[bytes]) -> None:
        loop = asyncio.get_running_loop()
        address = (await self._addresses())[0]
        with socket.socket(_family(address), socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            await loop.sock_connect(sock, (address, self.port))
            for datagram in messages:
                await loop.sock_sendall(sock, datagram)

    async def _send_stream(self, messages: list[bytes]) -> None:
        if self._conn is not None and await self._conn.closed_by_peer():
            self._drop()
        if self._conn is None:
            self._conn = await self._connect()
        frames = b"".join(b"%d %s" % (len(m), m) for m in messages)
        self._conn.writer.write(frames)
        await self._conn.writer.drain()

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        error: OSError | None = None
        for address in await self._addresses():
            sock = socket.socket(_family(address), socket.SOCK_STREAM)
            try:
                sock.setblocking(False)
                try:
                    await loop.sock_connect(sock, (address, self.port))
                except OSError as exc:
                    sock.close()
                    error = exc
                    continue
                reader, writer = await asyncio.open_connection(
                    sock=sock, ssl=self._tls,
                    server_hostname=self.config.host.strip("[]") if self._tls else None)
            except BaseException:
                sock.close()  # a timeout or a failed handshake leaves no socket behind
                raise
            return _Connection(sock, writer, reader)
        raise error or OSError(f"{self.config.host}: no address")

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(conn.writer.wait_closed(), self.context.timeout)


__all__ = ["SyslogConfig", "SyslogSink"]
