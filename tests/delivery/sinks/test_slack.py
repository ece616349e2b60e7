"""The ``slack`` sink against a real local HTTP receiver."""

from __future__ import annotations

import json

import pydantic
import pytest

from auditstream.delivery.sinks import SINKS
from auditstream.delivery.sinks.slack import SlackConfig, SlackSink
from auditstream.errors import InvalidRequest

from ..conftest import Answer, Receiver
from .events import HOSTILE, context, event, stub

pytestmark = pytest.mark.anyio


def sink(receiver: Receiver, allow: str = "127.0.0.1", **config: object) -> SlackSink:
    cfg = SlackConfig.model_validate({"url": receiver.url + "/services/T/B/x", **config})
    return SlackSink(cfg, "native", context(allow))


def fields(*pairs: tuple[str, str]) -> dict[str, object]:
    return {"type": "section",
            "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in pairs]}


EXPECTED_FIELDS = fields(
    ("Type", "user.login"), ("Category", "auth"), ("Outcome", "failure"),
    ("Actor", "alice"), ("Subject", "account:acct-7"), ("Source IP", "198.51.100.4"),
    ("Time", "2026-01-02T03:04:05.123456Z"), ("Seq", "1"), ("Tenant", "acme"))


async def test_one_event_is_a_block_kit_message(receiver: Receiver) -> None:
    s = sink(receiver)
    outcome = await s.send([event()], "msg_1")
    await s.aclose()
    assert outcome.ok and outcome.status_code == 200
    [request] = receiver.requests
    assert (request.method, request.path) == ("POST", "/services/T/B/x")
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == {
        "text": "[HIGH] Failed login",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                        "text": ":large_orange_circle: HIGH: Failed login"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "Wrong password"}},
            EXPECTED_FIELDS,
        ]}


async def test_a_batch_is_one_message_of_sections_between_dividers(
        receiver: Receiver) -> None:
    s = sink(receiver, batch_size=10)
    assert s.max_batch == 10
    events = [event(seq=n, severity=sev, title=None, description=None)
              for n, sev in enumerate(["info", "low", "medium", "high", "critical"] * 2, 1)]
    assert (await s.send(events, "m")).ok
    await s.aclose()
    body = json.loads(receiver.requests[0].body)
    assert body["text"] == "\n".join(f"[{e['severity'].upper()}] user.login" for e in events)
    blocks = body["blocks"]
    assert len(blocks) == 10 * 2 + 9 <= 50
    assert [b["type"] for b in blocks[:5]] == ["header", "section", "divider", "header",
                                               "section"]
    assert blocks[0]["text"]["text"] == ":white_circle: INFO: user.login"
    assert blocks[-2]["text"]["text"] == ":red_circle: CRITICAL: user.login"
    assert blocks[-1]["fields"][7] == {"type": "mrkdwn", "text": "*Seq*\n10"}


async def test_the_largest_batch_stays_within_fifty_blocks(receiver: Receiver) -> None:
    s = sink(receiver, batch_size=10)
    assert (await s.send([event(seq=n) for n in range(1, 11)], "m")).ok
    await s.aclose()
    assert len(json.loads(receiver.requests[0].body)["blocks"]) == 39


async def test_user_data_is_escaped_for_mrkdwn(receiver: Receiver) -> None:
    s = sink(receiver)
    hostile = event(title=HOSTILE, description=HOSTILE, type=HOSTILE,
                    actor={"name": "<@U123> & <!here>"})
    assert (await s.send([hostile], "m")).ok
    await s.aclose()
    body = json.loads(receiver.requests[0].body)
    escaped = HOSTILE.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # plain_text is shown as it is: not escaped, and nothing in it is a mention or link.
    assert body["blocks"][0]["text"]["text"] == ":large_orange_circle: HIGH: " + HOSTILE
    assert body["blocks"][1]["text"]["text"] == escaped
    assert body["blocks"][2]["fields"][0]["text"] == "*Type*\n" + escaped
    assert body["blocks"][2]["fields"][3]["text"] == "*Actor*\n&lt;@U123&gt; &amp; &lt;!here&gt;"
    assert body["text"] == "[HIGH] " + escaped
    for text in (body["text"], body["blocks"][1]["text"]["text"]):
        assert "<" not in text and ">" not in text


async def test_long_values_are_cut_to_slack_limits_on_whole_characters_and_escapes(
        receiver: Receiver) -> None:
    s = sink(receiver)
    long = event(title="x" * 500, description="&" * 5000,
                 actor={"name": "\U0001F600" * 2000}, category="é" * 3000)
    assert (await s.send([long], "m")).ok
    await s.aclose()
    blocks = json.loads(receiver.requests[0].body)["blocks"]
    heading = ":large_orange_circle: HIGH: " + "x" * 500
    assert blocks[0]["text"]["text"] == heading[:149] + "…"
    # 3,000 units: 599 whole "&amp;" (2,995) and the ellipsis, never a cut "&am".
    assert blocks[1]["text"]["text"] == "&amp;" * 599 + "…"
    by_label = {f["text"].split("\n", 1)[0]: f["text"] for f in blocks[2]["fields"]}
    # A field is 2,000 UTF-16 units: an emoji counts two, and is never split.
    assert by_label["*Actor*"] == "*Actor*\n" + "\U0001F600" * 995 + "…"
    assert by_label["*Category*"] == "*Category*\n" + "é" * 1988 + "…"
    assert len(by_label["*Category*"]) == 2000


async def test_a_redacted_event(receiver: Receiver) -> None:
    s = sink(receiver)
    assert (await s.send([stub()], "m")).ok
    await s.aclose()
    assert json.loads(receiver.requests[0].body) == {
        "text": "[HIGH] user.login",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                        "text": ":large_orange_circle: HIGH: user.login"}},
            fields(("Type", "user.login"), ("Category", "auth"), ("Outcome", "failure"),
                   ("Time", "2026-01-02T03:04:05.123456Z"), ("Seq", "1"),
                   ("Tenant", "acme")),
        ]}


async def test_slack_answers(receiver: Receiver) -> None:
    s = sink(receiver)
    receiver.answer(
        Answer(400, b"invalid_blocks"),
        Answer(429, b"rate_limited", {"retry-after": "30"}),
        Answer(404, b"no_service"),
        Answer(403, b"action_prohibited"),
        Answer(410, b"channel_is_archived"),
        Answer(500, b"oops"),
        Answer(200, b"ok"),
    )
    outcomes = [await s.send([event()], "m") for _ in range(7)]
    await s.aclose()
    # A payload Slack will not take is refused; a revoked webhook or a gone channel is
    # the integration's problem, not the events': it waits like an outage.
    assert [(o.ok, o.refused, o.status_code) for o in outcomes] == [
        (False, True, 400), (False, False, 429), (False, False, 404), (False, False, 403),
        (False, False, 410), (False, False, 500), (True, False, 200)]
    assert outcomes[0].response == "invalid_blocks"
    assert outcomes[1].retry_after == 30.0


async def test_a_private_receiver_is_refused_unless_allowed(receiver: Receiver) -> None:
    s = sink(receiver, allow="")
    outcome = await s.send([event()], "m")
    await s.aclose()
    assert not outcome.ok and not outcome.refused and outcome.status_code is None
    assert "AUDITSTREAM_PUSH_ALLOW_PRIVATE" in (outcome.error or "")
    assert receiver.requests == []


def test_config() -> None:
    from auditstream.delivery.guard import DestinationPolicy

    assert SINKS["slack"] is SlackSink
    assert SlackSink.SECRETS == ("url",) and SlackSink.FORMATS == ("native",)
    assert SlackConfig.model_validate({"url": "https://hooks.slack.com/x"}).batch_size == 1
    for bad in ({"url": "https://h/x", "batch_size": 11}, {"url": "https://h/x",
                "batch_size": 0}, {"url": "ftp://h/x"}, {"url": "https://u:p@h/x"},
                {"url": "https://h/x", "channel": "#x"}):
        with pytest.raises(pydantic.ValidationError):
            SlackConfig.model_validate(bad)
    with pytest.raises(InvalidRequest):
        SlackSink.prepare(SlackConfig(url="http://169.254.169.254/x"), DestinationPolicy(),
                          "native")
    assert SlackSink.prepare(SlackConfig(url="https://hooks.slack.com/x"),
                             DestinationPolicy(), "native") == {}
