"""The ``splunk_hec`` sink against a real local HEC-shaped endpoint."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import pydantic
import pytest

from auditstream.delivery.guard import DestinationPolicy
from auditstream.delivery.payload import FORMATS, Format, formatter
from auditstream.delivery.sinks import SINKS
from auditstream.delivery.sinks.splunk_hec import SplunkHecConfig, SplunkHecSink
from auditstream.errors import InvalidRequest

from ..conftest import Answer, Receiver
from .events import HOSTILE, context, event, stub

pytestmark = pytest.mark.anyio

SUCCESS = Answer(200, b'{"text":"Success","code":0}')
TOKEN = "12345678-1234-1234-1234-123456789012"


@pytest.fixture
def hec(receiver: Receiver) -> Receiver:
    receiver.default = SUCCESS
    return receiver


def sink(receiver: Receiver, fmt: Format = "native", allow: str = "127.0.0.1",
         url: str | None = None, **config: Any) -> SplunkHecSink:
    cfg = SplunkHecConfig.model_validate(
        {"url": url or receiver.url, "token": TOKEN, **config})
    return SplunkHecSink(cfg, fmt, context(allow))


def objects(body: bytes) -> list[dict[str, Any]]:
    """HEC's batch form: JSON objects one after another (whitespace between allowed)."""
    decoder, text, i, out = json.JSONDecoder(), body.decode(), 0, []
    while i < len(text):
        obj, i = decoder.raw_decode(text, i)
        out.append(obj)
        while i < len(text) and text[i].isspace():
            i += 1
    return out


async def test_a_batch_is_concatenated_hec_events(hec: Receiver) -> None:
    s = sink(hec, index="security", host="web-1")
    events = [event(seq=1), event(seq=2, timestamp="2026-01-02T03:04:06Z")]
    outcome = await s.send(events, "m")
    await s.aclose()
    assert outcome.ok and outcome.status_code == 200
    [request] = hec.requests
    assert (request.method, request.path) == ("POST", "/services/collector/event")
    assert request.headers["authorization"] == f"Splunk {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    uuid.UUID(request.headers["x-splunk-request-channel"])
    # Exact epoch seconds with microseconds, not a float's approximation.
    assert b'"time":1767323045.123456,' in request.body
    assert b'"time":1767323046,' in request.body
    meta = {"host": "web-1", "source": "auditstream", "sourcetype": "auditstream:event",
            "index": "security"}
    assert objects(request.body) == [
        {"time": 1767323045.123456, **meta, "event": events[0]},
        {"time": 1767323046, **meta, "event": events[1]}]


async def test_defaults_leave_index_out_and_name_the_deployment(hec: Receiver) -> None:
    s = sink(hec, url=hec.url + "/")
    assert s.max_batch == 100
    assert (await s.send([event()], "m")).ok
    await s.aclose()
    [obj] = objects(hec.requests[0].body)
    assert obj == {"time": 1767323045.123456, "host": "audit.example",
                   "source": "auditstream", "sourcetype": "auditstream:event",
                   "event": event()}
    assert hec.requests[0].path == "/services/collector/event"


async def test_a_url_naming_the_endpoint_is_used_as_it_is(hec: Receiver) -> None:
    s = sink(hec, url=hec.url + "/services/collector/event")
    assert (await s.send([event()], "m")).ok
    await s.aclose()
    assert hec.requests[0].path == "/services/collector/event"


@pytest.mark.parametrize("fmt", FORMATS)
async def test_every_format_is_the_event_field(hec: Receiver, fmt: Format) -> None:
    s = sink(hec, fmt)
    e = event(description=HOSTILE, title="\U0001F600" * 3 + "x" * 20_000)
    assert (await s.send([e], "m")).ok
    await s.aclose()
    [obj] = objects(hec.requests[0].body)
    assert obj["event"] == formatter(fmt, "audit.example")(e)


async def test_a_redacted_event(hec: Receiver) -> None:
    s = sink(hec)
    assert (await s.send([stub()], "m")).ok
    await s.aclose()
    assert objects(hec.requests[0].body)[0]["event"] == stub()


@pytest.mark.parametrize(("timestamp", "time"), [
    ("2026-01-02T03:04:05Z", b"1767323045"),
    ("2026-01-02T03:04:05.5Z", b"1767323045.5"),
    ("2026-01-02T03:04:05.000001Z", b"1767323045.000001"),
    ("1969-12-31T23:59:59.75Z", b"-0.25"),
    ("1970-01-01T00:00:00Z", b"0"),
])
async def test_time_is_exact(hec: Receiver, timestamp: str, time: bytes) -> None:
    s = sink(hec)
    assert (await s.send([event(timestamp=timestamp)], "m")).ok
    await s.aclose()
    assert hec.requests[0].body.startswith(b'{"time":' + time + b',"host"')


@pytest.mark.parametrize(("answer", "ok", "refused"), [
    (Answer(200, b'{"text":"Success","code":0}'), True, False),
    (Answer(200, b'{"text":"Success","code":0,"ackId":7}'), True, False),
    # A 2xx is an acknowledgement only when it is HEC's.
    (Answer(200, b"<html>proxy</html>"), False, False),
    (Answer(200, b'{"text":"Invalid data format","code":6}'), False, True),
    (Answer(200, b'{"text":"Server is busy","code":9}'), False, False),
    (Answer(204, b""), False, False),
    # Bad events: refused, so they go to the dead letters after a few attempts.
    (Answer(400, b'{"text":"Invalid data format","code":6,"invalid-event-number":0}'),
     False, True),
    (Answer(400, b'{"text":"Event field cannot be blank","code":13}'), False, True),
    (Answer(400, b'{"text":"No data","code":5}'), False, True),
    # The token or the set-up is wrong, not the events: they wait for an admin.
    (Answer(403, b'{"text":"Invalid token","code":4}'), False, False),
    (Answer(403, b'{"text":"Token disabled","code":1}'), False, False),
    (Answer(401, b'{"text":"Token is required","code":2}'), False, False),
    (Answer(401, b""), False, False),
    (Answer(400, b'{"text":"Incorrect index","code":7}'), False, False),
    (Answer(400, b'{"text":"Data channel is missing","code":10}'), False, False),
    (Answer(503, b'{"text":"Server is busy","code":9}'), False, False),
    (Answer(503, b'{"text":"HEC is unhealthy, queues are full","code":18}'), False, False),
    (Answer(500, b'{"text":"Internal server error","code":8}'), False, False),
    (Answer(429, b""), False, False),
    (Answer(404, b"not found"), False, True),
])
async def test_hec_answers(hec: Receiver, answer: Answer, ok: bool, refused: bool) -> None:
    hec.answer(answer)
    s = sink(hec)
    outcome = await s.send([event()], "m")
    await s.aclose()
    assert (outcome.ok, outcome.refused, outcome.status_code) == (ok, refused, answer.status)
    if not ok:
        assert outcome.error
    assert outcome.response == answer.body.decode()


async def test_a_receiver_that_hangs_times_out(hec: Receiver) -> None:
    hold = threading.Event()
    hec.answer(Answer(200, SUCCESS.body, hold=hold))
    s = SplunkHecSink(SplunkHecConfig(url=hec.url, token=TOKEN), "native",
                      context(timeout=0.3))
    try:
        outcome = await s.send([event()], "m")
    finally:
        hold.set()
        await s.aclose()
    assert not outcome.ok and not outcome.refused and outcome.status_code is None
    assert (outcome.error or "").startswith("timed out")
    assert len(hec.requests) == 1


async def test_a_private_receiver_is_refused_unless_allowed(hec: Receiver) -> None:
    s = sink(hec, allow="")
    outcome = await s.send([event()], "m")
    await s.aclose()
    assert not outcome.ok and not outcome.refused and outcome.status_code is None
    assert "AUDITSTREAM_PUSH_ALLOW_PRIVATE" in (outcome.error or "")
    assert hec.requests == []


def test_config() -> None:
    assert SINKS["splunk_hec"] is SplunkHecSink
    assert SplunkHecSink.SECRETS == ("token",) and SplunkHecSink.FORMATS == FORMATS
    ok = {"url": "https://splunk.example:8088", "token": TOKEN}
    assert SplunkHecConfig.model_validate(ok).batch_size == 100
    assert SplunkHecConfig.model_validate({**ok, "batch_size": 1000}).batch_size == 1000
    for bad in ({**ok, "batch_size": 1001}, {**ok, "token": "a b"},
                {**ok, "token": "x\r\nX-Evil: 1"}, {**ok, "token": ""},
                {**ok, "index": "a b"}, {**ok, "source": "a\nb"}, {**ok, "host": ""},
                {**ok, "url": "splunk:8088"}, {"url": ok["url"]}, {**ok, "extra": 1}):
        with pytest.raises(pydantic.ValidationError):
            SplunkHecConfig.model_validate(bad)
    with pytest.raises(InvalidRequest):
        SplunkHecSink.prepare(SplunkHecConfig(url="https://10.0.0.5:8088", token=TOKEN),
                              DestinationPolicy(), "native")
    assert SplunkHecSink.prepare(SplunkHecConfig(url="https://10.0.0.5:8088", token=TOKEN),
                                 DestinationPolicy("10.0.0.0/8"), "native") == {}
