"""``webhook``: JSON POSTs signed per Standard Webhooks.

Body: for ``native``, ``vaultterm`` and ``authpi``, ``{"data": [record, …]}`` in seq
order; for ``cloudevents``, one structured CloudEvent (``application/cloudevents+json``)
when ``batch_size`` is 1, else a JSON array of them (``application/cloudevents-batch+json``).
Headers: ``webhook-id`` (stable for the same events of the same integration, so
receivers can drop duplicates), ``webhook-timestamp``, ``webhook-signature``
(``v1,<base64 HMAC-SHA256>`` by the ``standardwebhooks`` library).
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

import orjson
from pydantic import AfterValidator, Field
from standardwebhooks.webhooks import Webhook

from ..guard import DestinationPolicy
from ..payload import FORMATS, Format, formatter
from .base import Outcome, SinkConfig, SinkContext
from .http import URL, HttpSink


def _check_secret(value: str) -> str:
    """A Standard Webhooks secret: ``whsec_`` and the base64 of 24 to 64 random bytes."""
    reason = "must be whsec_ followed by the base64 of 24 to 64 bytes"
    if not value.startswith("whsec_") or len(value) > 100:
        raise ValueError(reason)
    try:
        key = base64.b64decode(value[len("whsec_"):], validate=True)
    except ValueError:
        raise ValueError(reason) from None
    if not 24 <= len(key) <= 64:
        raise ValueError(reason)
    return value


_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
_VALUE = re.compile(r"^[\t\x20-\x7e]*$")  # httpx sends header values as ASCII


def _check_headers(headers: dict[str, str]) -> dict[str, str]:
    """Names that are HTTP tokens, values without control characters (a CR or LF would
    split the request), none that auditstream sets itself."""
    for name, value in headers.items():
        if not _TOKEN.match(name):
            raise ValueError(f"{name[:100]!r} is not a header name")
        if not _VALUE.match(value):
            raise ValueError(f"the value of {name!r} must be printable ASCII")
        if name.lower().startswith("webhook-") or name.lower() in (
                "content-type", "content-length", "host", "transfer-encoding", "user-agent"):
            raise ValueError(f"{name!r} is set by auditstream")
    return headers


class WebhookConfig(SinkConfig):
    url: Annotated[str, URL]
    secret: Annotated[str, AfterValidator(_check_secret)] | None = None
    batch_size: int = Field(100, ge=1, le=1000)
    #: Extra request headers (an API key the receiver wants, say); not secret-masked names.
    headers: Annotated[dict[str, Annotated[str, Field(max_length=1024)]],
                       AfterValidator(_check_headers)] = Field(default_factory=dict,
                                                               max_length=20)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class WebhookSink(HttpSink):
    kind: ClassVar[str] = "webhook"
    Config = WebhookConfig
    SECRETS = ("secret",)
    FORMATS = FORMATS
    config: WebhookConfig

    def __init__(self, config: WebhookConfig, fmt: Format, context: SinkContext):
        super().__init__(config, fmt, context)
        self._record = formatter(fmt, context.deployment)
        assert config.secret is not None  # ``prepare`` generates one
        self._signer = Webhook(config.secret)

    @classmethod
    def prepare(cls, config: SinkConfig, policy: DestinationPolicy, fmt: Format
                ) -> dict[str, Any]:
        assert isinstance(config, WebhookConfig)
        super().prepare(config, policy, fmt)
        return {} if config.secret else {"secret": new_secret()}

    def body(self, events: list[dict[str, Any]]) -> tuple[bytes, str]:
        records = [self._record(e) for e in events]
        if self.format == "cloudevents":
            if self.config.batch_size == 1:
                return orjson.dumps(records[0]), "application/cloudevents+json"
            return orjson.dumps(records), "application/cloudevents-batch+json"
        return orjson.dumps({"data": records}), "application/json"

    async def send(self, events: list[dict[str, Any]], message_id: str) -> Outcome:
        body, content_type = self.body(events)
        # The wall clock, not the injected one: receivers reject a stale or future
        # timestamp (replay protection), whatever the schedule's time line.
        when = datetime.fromtimestamp(int(time.time()), UTC)
        headers = {
            **self.config.headers,
            "content-type": content_type,
            "user-agent": "auditstream-webhooks",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(when.timestamp())),
            "webhook-signature": self._signer.sign(message_id, when, body.decode()),
        }
        return await self.post(self.config.url, body, headers)


__all__ = ["WebhookConfig", "WebhookSink", "new_secret"]
