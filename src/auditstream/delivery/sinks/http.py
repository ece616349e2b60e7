"""One POST of an HTTP sink, as an ``Outcome``: the part webhook, Slack and Splunk HEC
share.

A connection that fails before the request was sent (refused, reset, DNS) is retried at
once a couple of times by stamina with a short jittered backoff: that is a blip, not an
outage, and the durable schedule (``delivery.schedule``) takes over after it.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator

from ...errors import InvalidRequest
from ..guard import DestinationPolicy, DestinationRefused, guarded_client
from ..payload import Format
from .base import Outcome, Sink, SinkConfig, SinkContext

if TYPE_CHECKING:
    import httpx

#: Answers that mean "not now" rather than "not this": retried until the receiver recovers.
OUTAGE_STATUSES = frozenset({408, 425, 429})
#: Characters of an answer kept for the attempts list.
RESPONSE_EXCERPT = 512


def check_url(url: str) -> str:
    """An absolute http(s) URL with a host and no credentials in it."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials (use the kind's secret fields)")
    if port == 0:
        raise ValueError("port 0 is not a destination")
    if len(url) > 2048:
        raise ValueError("at most 2048 characters")
    return url


#: A pydantic type for a config's ``url``.
URL = AfterValidator(check_url)


def check_host(policy: DestinationPolicy, field: str, url: str) -> None:
    host = urlsplit(url).hostname
    if host is None:
        raise InvalidRequest("invalid integration", errors=[
            {"field": field, "reason": "must name a host"}])
    policy.check_literal(field, host)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, min(float(value), 86_400.0))
    except ValueError:
        pass
    try:
        return max(0.0, min(parsedate_to_datetime(value).timestamp() - time.time(), 86_400.0))
    except (TypeError, ValueError, OverflowError):
        return None


def _blip(exc: Exception) -> bool:
    """A connection that failed before the request was sent, and not because the policy
    refused the destination (that is not going to change in a second)."""
    import httpx

    if not isinstance(exc, httpx.ConnectError | httpx.RemoteProtocolError):
        return False
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, DestinationRefused):
            return False
        cause = cause.__cause__ or cause.__context__
    return True


async def post(client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str],
               max_response_bytes: int) -> Outcome:
    import httpx  # only where something is delivered (see guard.guarded_client)
    import stamina

    start = time.perf_counter()
    try:
        async for attempt in stamina.retry_context(
                on=_blip, attempts=3,
                wait_initial=0.05, wait_max=0.5, timeout=None):
            with attempt:
                async with client.stream("POST", url, content=body, headers=headers) as r:
                    received = bytearray()
                    async for chunk in r.aiter_raw():
                        received += chunk[:max_response_bytes - len(received)]
                        if len(received) >= max_response_bytes:
                            break  # the rest is not read: a receiver cannot make us hold it
    except httpx.TimeoutException as exc:
        return Outcome(False, error=f"timed out ({type(exc).__name__})",
                       latency_ms=(time.perf_counter() - start) * 1000)
    except httpx.HTTPError as exc:
        return Outcome(False, error=f"{type(exc).__name__}: {exc}"[:RESPONSE_EXCERPT],
                       latency_ms=(time.perf_counter() - start) * 1000)
    latency = (time.perf_counter() - start) * 1000
    text = bytes(received[:RESPONSE_EXCERPT]).decode("utf-8", "replace")
    if 200 <= r.status_code < 300:
        return Outcome(True, r.status_code, latency_ms=latency, response=text)
    outage = r.status_code >= 500 or r.status_code in OUTAGE_STATUSES
    return Outcome(False, r.status_code, error=f"HTTP {r.status_code}",
                   refused=not outage, latency_ms=latency, response=text,
                   retry_after=_retry_after(r.headers.get("retry-after")) if outage else None)


class HttpSink(Sink):
    """A sink that POSTs to its config's ``url``, ``batch_size`` events at most (the part
    webhook, Slack and Splunk HEC share)."""

    def __init__(self, config: Any, fmt: Format, context: SinkContext):
        super().__init__(config, fmt, context)
        self._client = guarded_client(context.policy, context.timeout)

    @property
    def max_batch(self) -> int:
        return int(self.config.batch_size)

    @classmethod
    def prepare(cls, config: SinkConfig, policy: DestinationPolicy, fmt: Format
                ) -> dict[str, Any]:
        check_host(policy, "config.url", config.url)  # type: ignore[attr-defined]
        return {}

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        return await post(self._client, url, body, headers, self.context.max_response_bytes)

    async def aclose(self) -> None:
        await self._client.aclose()


__all__ = ["URL", "HttpSink", "check_host", "check_url", "post"]
