"""``slack``: a Block Kit message to a Slack incoming webhook.

Config: ``url`` (the incoming webhook URL, ``https://hooks.slack.com/services/…``: anyone
holding it can post to the channel, so it is a secret, stored and never shown back) and
``batch_size`` (1 to 10 events in one message, default 1). No ``channel``/``username``
overrides: Slack ignores them for the webhooks of Slack apps, which are the only ones it
still issues; the channel is the one the webhook was made for.

Wire format: one POST of ``application/json``::

    {"text": "<fallback>", "blocks": [<event 1 blocks>, {"type": "divider"}, <event 2 …>]}

Each event is three blocks: a ``header`` (``plain_text``: an emoji, the severity in
capitals and the title, or the type when there is no title), a ``section`` with the
description (left out when there is none) and a ``section`` of ``fields``: Type,
Category, Outcome, Actor (name, else id), Subject (``type:id``), Source IP
(``source.ip``, else ``actor.ip``), Time, Seq and Tenant, those the event has. Ten events
make at most 39 blocks, within Slack's 50. ``text`` is one line per event
(``[SEVERITY] title``), what notifications and clients without blocks show.

User data is escaped for mrkdwn (``&`` → ``&amp;``, ``<`` → ``&lt;``, ``>`` → ``&gt;``: no
event can mention ``@channel`` or hide a link), then cut to Slack's limits counted in
UTF-16 code units (so an astral character counts as two, as Slack counts it): header 150,
section text 3,000, a field 2,000, ``text`` 3,000. A cut never splits a character or an
escape and ends with ``…``. The header is ``plain_text``, which Slack shows literally, so
it is not escaped.

Outcomes: 2xx is ok. Slack answers 400 (``invalid_payload``, ``invalid_blocks``…) for a
message it will not take: a refusal. 429 (rate limited, with ``Retry-After``) and 5xx are
an outage (``http.post``). 403, 404 and 410 (``action_prohibited``, ``no_service``,
``channel_not_found``, ``channel_is_archived``) say the *webhook* is revoked or its
channel gone, not that the events are wrong: they are an outage here, so the events wait
(the integration shows as failing) while an admin fixes the URL, instead of filling the
dead letters.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, ClassVar

import orjson
from pydantic import Field

from ..payload import Format, object_of, text_of
from .base import Outcome, SinkConfig
from .http import URL, HttpSink

#: Slack's limits, in UTF-16 code units.
HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000
TEXT_MAX = 3000
#: Answers that mean the webhook itself is gone or revoked (see the module docstring).
WEBHOOK_GONE = frozenset({401, 403, 404, 410})

SEVERITY_EMOJI = {
    "critical": ":red_circle:",
    "high": ":large_orange_circle:",
    "medium": ":large_yellow_circle:",
    "low": ":large_blue_circle:",
    "info": ":white_circle:",
}

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_ELLIPSIS = "…"


def _units(text: str) -> int:
    """Length in UTF-16 code units."""
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


def clip(text: str, limit: int, escape: bool = True) -> str:
    """``text`` (mrkdwn-escaped when ``escape``) in at most ``limit`` UTF-16 code units,
    cut at a character or escape boundary and marked with ``…`` when cut."""
    pieces = [_ESCAPES.get(c, c) for c in text] if escape else list(text)
    total = sum(_units(p) for p in pieces)
    if total <= limit:
        return "".join(pieces)
    room, kept = limit - _units(_ELLIPSIS), []
    for piece in pieces:
        size = _units(piece)
        if size > room:
            break
        kept.append(piece)
        room -= size
    return "".join(kept) + _ELLIPSIS


def key_fields(event: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, raw value) of the fields a message shows, those the event has."""
    actor, subject, source = (object_of(event, k) for k in ("actor", "subject", "source"))
    who = actor.get("name") if actor.get("name") is not None else actor.get("id")
    what = ":".join(text_of(subject[k]) for k in ("type", "id") if subject.get(k) is not None)
    ip = source.get("ip") if source.get("ip") is not None else actor.get("ip")
    fields = [
        ("Type", event.get("type")), ("Category", event.get("category")),
        ("Outcome", event.get("outcome")), ("Actor", who), ("Subject", what or None),
        ("Source IP", ip), ("Time", event.get("timestamp")), ("Seq", event.get("seq")),
        ("Tenant", event.get("tenant")),
    ]
    return [(label, text_of(value)) for label, value in fields if text_of(value) != ""]


def event_blocks(event: dict[str, Any]) -> list[dict[str, Any]]:
    severity = str(event.get("severity") or "info")
    title = text_of(event.get("title")) or text_of(event.get("type"))
    heading = f"{SEVERITY_EMOJI.get(severity, '')} {severity.upper()}: {title}".strip()
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {
        "type": "plain_text", "text": clip(heading, HEADER_MAX, escape=False), "emoji": True}}]
    description = text_of(event.get("description"))
    if description.strip():
        blocks.append({"type": "section", "text": {
            "type": "mrkdwn", "text": clip(description, SECTION_MAX)}})
    fields = []
    for label, value in key_fields(event):
        prefix = f"*{label}*\n"
        fields.append({"type": "mrkdwn",
                       "text": prefix + clip(value, FIELD_MAX - _units(prefix))})
    if fields:
        blocks.append({"type": "section", "fields": fields})
    return blocks


def message(events: list[dict[str, Any]]) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = []
    lines = []
    for event in events:
        if blocks:
            blocks.append({"type": "divider"})
        blocks.extend(event_blocks(event))
        severity = str(event.get("severity") or "info").upper()
        lines.append(f"[{severity}] "
                     + (text_of(event.get("title")) or text_of(event.get("type"))))
    return {"text": clip("\n".join(lines), TEXT_MAX), "blocks": blocks}


class SlackConfig(SinkConfig):
    url: Annotated[str, URL]
    batch_size: int = Field(1, ge=1, le=10)


class SlackSink(HttpSink):
    kind: ClassVar[str] = "slack"
    Config = SlackConfig
    SECRETS = ("url",)
    FORMATS: ClassVar[tuple[Format, ...]] = ("native",)
    config: SlackConfig

    async def send(self, events: list[dict[str, Any]], message_id: str) -> Outcome:
        body = orjson.dumps(message(events))
        outcome = await self.post(self.config.url, body,
                                  {"content-type": "application/json",
                                   "user-agent": "auditstream-slack"})
        if outcome.status_code in WEBHOOK_GONE:
            return dataclasses.replace(outcome, refused=False)
        return outcome


__all__ = ["SlackConfig", "SlackSink", "clip", "message"]
