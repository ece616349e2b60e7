"""``splunk_hec``: batches to a Splunk HTTP Event Collector.

Config: ``url`` (the HEC base, ``https://splunk.example:8088``; a URL that already ends in
``/services/collector/event`` is taken as the endpoint itself; a query or fragment is
dropped), ``token`` (secret),
``index`` (else the token's default index), ``source`` (``auditstream``), ``sourcetype``
(``auditstream:event``), ``host`` (else the deployment's name) and ``batch_size``
(default 100, at most 1,000).

Wire format: ``POST <url>/services/collector/event`` with ``Authorization: Splunk
<token>``, ``X-Splunk-Request-Channel: <a UUID per sink>`` (HEC tokens with indexer
acknowledgement refuse requests without one; the others ignore it) and
``Content-Type: application/json``; the body is HEC's batch form, one JSON object per
event, in seq order, separated by ``\\n``::

    {"time":1767225600.123456,"host":"…","source":"…","sourcetype":"…","index":"…","event":{…}}

``time`` is the event's timestamp in epoch seconds with its microseconds, written exactly
(not through a float); ``index`` only when configured; ``event`` the format's record.

Outcomes: ok only for a 2xx whose body is HEC's ``{"text":"Success","code":0}`` (a 2xx
from something that is not HEC, a proxy's page say, is not an acknowledgement: an outage
naming what answered). Otherwise by HEC's ``code``, else the HTTP status:

* refused (the events themselves): codes 5 (no data), 6 (invalid data format), 12 and 13
  (event field required / blank), 15 (indexed fields);
* outage (the receiver or *its configuration*, which an admin fixes while the events
  wait, instead of sending good events to the dead letters): 401 and 403 (codes 1 to 4,
  token disabled, missing or invalid), 7 (incorrect index), 10, 11 and 14 (channel and
  acknowledgement set-up), 16, 8 and 9 (internal error, server busy: 503), 18 to 20
  (unhealthy), and 408, 429, 5xx;
* any other 4xx: refused.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Annotated, Any, ClassVar

import orjson
from pydantic import Field

from ...model.times import parse_time
from ..payload import FORMATS, Format, formatter
from .base import Outcome, SinkConfig, SinkContext
from .http import URL, HttpSink

ENDPOINT = "/services/collector/event"
#: HEC codes that blame the events (see the module docstring); every other code is an outage.
REFUSED_CODES = frozenset({5, 6, 12, 13, 15})
OUTAGE_CODES = frozenset({1, 2, 3, 4, 7, 8, 9, 10, 11, 14, 16, 18, 19, 20})

Name = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")]


class SplunkHecConfig(SinkConfig):
    url: Annotated[str, URL]
    #: HEC tokens are GUIDs; any visible ASCII is taken (no spaces: it goes in a header).
    token: Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[\x21-\x7e]+$")]
    index: Annotated[str, Field(min_length=1, max_length=80,
                                pattern=r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$")] | None = None
    source: Name = "auditstream"
    sourcetype: Name = "auditstream:event"
    host: Name | None = None
    batch_size: int = Field(100, ge=1, le=1000)


def epoch(timestamp: str) -> orjson.Fragment:
    """An RFC 3339 timestamp as exact epoch seconds with their fraction (``1.5``,
    ``-0.25``, ``1767225600``)."""
    us = parse_time(timestamp)
    seconds, fraction = divmod(abs(us), 1_000_000)
    text = f"{seconds}.{fraction:06d}".rstrip("0").rstrip(".")
    return orjson.Fragment(("-" if us < 0 else "") + text)


def endpoint(url: str) -> str:
    base = url.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    return base if base.endswith(ENDPOINT) else base + ENDPOINT


def hec_code(text: str) -> int | None:
    try:
        answer = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    code = answer.get("code") if isinstance(answer, dict) else None
    return code if type(code) is int else None


def classify(outcome: Outcome) -> Outcome:
    """``http.post``'s outcome read the way HEC means it (see the module docstring)."""
    code = hec_code(outcome.response)
    if outcome.ok:
        if code == 0:
            return outcome
        return dataclasses.replace(
            outcome, ok=False, refused=code in REFUSED_CODES,
            error=f"HEC code {code}" if code is not None else "not a Splunk HEC answer")
    if outcome.status_code is None:
        return outcome  # no answer at all: post's outage stands
    if code in REFUSED_CODES:
        refused = True
    elif code in OUTAGE_CODES or outcome.status_code in (401, 403):
        refused = False
    else:
        refused = outcome.refused
    error = f"HTTP {outcome.status_code}" + (f", HEC code {code}" if code is not None else "")
    return dataclasses.replace(outcome, refused=refused, error=error)


class SplunkHecSink(HttpSink):
    kind: ClassVar[str] = "splunk_hec"
    Config = SplunkHecConfig
    SECRETS = ("token",)
    FORMATS = FORMATS
    config: SplunkHecConfig

    def __init__(self, config: SplunkHecConfig, fmt: Format, context: SinkContext):
        super().__init__(config, fmt, context)
        self._record = formatter(fmt, context.deployment)
        self._url = endpoint(config.url)
        self._channel = str(uuid.uuid4())

    def body(self, events: list[dict[str, Any]]) -> bytes:
        meta: dict[str, Any] = {
            "host": self.config.host or self.context.deployment,
            "source": self.config.source,
            "sourcetype": self.config.sourcetype,
        }
        if self.config.index is not None:
            meta["index"] = self.config.index
        return b"\n".join(
            orjson.dumps({"time": epoch(e["timestamp"]), **meta, "event": self._record(e)})
            for e in events)

    async def send(self, events: list[dict[str, Any]], message_id: str) -> Outcome:
        headers = {
            "authorization": f"Splunk {self.config.token}",
            "content-type": "application/json",
            "user-agent": "auditstream-splunk-hec",
            "x-splunk-request-channel": self._channel,
        }
        return classify(await self.post(self._url, self.body(events), headers))


__all__ = ["SplunkHecConfig", "SplunkHecSink", "classify", "endpoint", "epoch"]
