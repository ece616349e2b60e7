"""``DestinationPolicy``: where push delivery may connect.

A tenant admin names the destination, so without a guard an integration is a way to
make the server call its own loopback services, the cloud metadata address or the
private network (SSRF). Every outbound connection therefore goes to an address that was
resolved *and checked at connect time* (a name that resolves to a public address when
the integration is created and to 127.0.0.1 later is still refused): the HTTP sinks
connect through ``GuardedBackend``, the syslog sink through ``resolve``.

Refused unless ``AUDITSTREAM_PUSH_ALLOW_PRIVATE`` lists the host name or a network that
holds the address: loopback, private (RFC 1918, ULA), link-local (169.254/16, fe80::/10:
the metadata services), shared (100.64/10), multicast, reserved and unspecified
addresses, IPv4-mapped IPv6 forms of those included.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from typing import TYPE_CHECKING

import httpcore

from ..errors import InvalidRequest

if TYPE_CHECKING:
    import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class DestinationRefused(Exception):
    """The destination resolves to an address the policy refuses (or does not resolve)."""


class DestinationPolicy:
    def __init__(self, allow: str = ""):
        """``allow``: comma-separated host names, addresses or CIDRs that may be private."""
        self.hosts: set[str] = set()
        self.networks: list[Network] = []
        for item in (part.strip() for part in allow.split(",")):
            if not item:
                continue
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                self.hosts.add(item.lower().rstrip("."))

    def check(self, host: str, address: str) -> None:
        """``DestinationRefused`` unless ``address`` (which ``host`` resolved to) may be
        connected to."""
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if ip.is_global and not ip.is_multicast:
            return
        if host.lower().rstrip(".") in self.hosts or any(ip in n for n in self.networks):
            return
        raise DestinationRefused(
            f"{host} resolves to {ip}, a private, loopback or link-local address; "
            "list it in AUDITSTREAM_PUSH_ALLOW_PRIVATE to deliver there")

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses of ``host`` that may be connected to, all checked; refused if any
        is not (a name with one private address among public ones is not a destination)."""
        host = host.strip("[]")
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise DestinationRefused(f"{host} does not resolve: {exc}") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in addresses:
            self.check(host, address)
        return addresses

    def check_literal(self, field: str, host: str) -> None:
        """At create time: ``InvalidRequest`` for a host that is an address the policy
        refuses (names are checked when delivering, as they may resolve differently)."""
        try:
            ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
        except ValueError:
            if host.lower().rstrip(".") in ("localhost", "localhost.localdomain") \
                    and host.lower().rstrip(".") not in self.hosts:
                raise InvalidRequest("invalid integration", errors=[{
                    "field": field, "reason": f"{host} is a loopback name; list it in "
                    "AUDITSTREAM_PUSH_ALLOW_PRIVATE to deliver there"}]) from None
            return
        try:
            self.check(host.strip("[]"), host.strip("[]"))
        except DestinationRefused as exc:
            raise InvalidRequest("invalid integration", errors=[
                {"field": field, "reason": str(exc)}]) from None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the policy applied to the address it connects to
    (TLS still verifies the certificate against the URL's host name)."""

    def __init__(self, policy: DestinationPolicy):
        self.policy = policy
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self.policy.resolve(host, port)
        except DestinationRefused as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        error: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(address, port, timeout, local_address,
                                                    socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error or httpcore.ConnectError(f"{host}: no address")

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("Unix sockets are not push destinations")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def guarded_client(policy: DestinationPolicy, timeout: float,
                   verify: ssl.SSLContext | bool = True) -> httpx.AsyncClient:
    """An httpx client for push: guarded connections, ``timeout`` on each phase, no
    redirects followed (a redirect could point anywhere), no proxy or netrc from the
    environment."""
    # Imported here: httpx (with the rich console it loads) took half a second of every
    # worker's start, and only a process that delivers needs it.
    import httpx

    transport = httpx.AsyncHTTPTransport(verify=verify, retries=0)
    # httpx takes no network backend; its transport's pool is the one place to put it.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=transport._pool._ssl_context,  # type: ignore[attr-defined]
        max_connections=4, max_keepalive_connections=4, keepalive_expiry=30.0,
        network_backend=GuardedBackend(policy))
    return httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False,
                             trust_env=False)


__all__ = ["DestinationPolicy", "DestinationRefused", "GuardedBackend", "guarded_client"]
