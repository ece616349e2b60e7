"""Ingest bodies under attack, against a real server: every hostile body is refused the same
way in all three forms (one object, a JSON array, NDJSON), and nothing of it is stored.
Whatever is accepted can be read back by every read route and export format."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest

from auditstream.errors import UnsupportedMediaType
from auditstream.ingest.pipeline import parse_body
from auditstream.model.event import MAX_DEPTH
from conftest import Server

PROBLEM = "application/problem+json"
NDJSON = "application/x-ndjson"
FORMS = ["single", "array", "ndjson"]


def nest(levels: int, leaf: str = "1", *, key: str = "a") -> str:
    """JSON text of ``levels`` objects, one inside the other, around ``leaf``."""
    return f'{{"{key}":' * levels + leaf + "}" * levels


def body(form: str, event: str) -> tuple[bytes, str]:
    """``event`` (JSON text) as the second event of a body of the given form."""
    if form == "single":
        return event.encode(), "application/json"
    if form == "array":
        return f'[{{"type":"ok"}},{event}]'.encode(), "application/json"
    return f'{{"type":"ok"}}\n{event}\n'.encode(), NDJSON


def tenant_client(server: Server) -> httpx.Client:
    return server.client(server.key(f"t{uuid.uuid4().hex[:12]}", "events:read",
                                    "events:write"))


def stored(c: httpx.Client) -> list[dict[str, Any]]:
    r = c.get("/v1/events", params={"limit": 1000})
    assert r.status_code == 200, r.text[:300]
    data: list[dict[str, Any]] = r.json()["data"]
    return data


#: Event texts that must be refused: (JSON text, field the error names, or None when the
#: body is not JSON at all and no field can be named).
HOSTILE_EVENTS: dict[str, tuple[str, str | None]] = {
    "NaN": ('{"type":"x","payload":{"a":NaN}}', None),
    "Infinity": ('{"type":"x","payload":{"a":Infinity}}', None),
    "-Infinity": ('{"type":"x","payload":{"a":-Infinity}}', None),
    "1e999": ('{"type":"x","payload":{"a":1e999}}', None),
    "-1e999": ('{"type":"x","context":{"a":-1e999}}', None),
    "NaN in a list": ('{"type":"x","metadata":{"a":[1,NaN]}}', None),
    "timestamp 10^400": ('{"type":"x","timestamp":1' + "0" * 400 + "}", None),
    "timestamp 10^30": ('{"type":"x","timestamp":1' + "0" * 30 + "}", "timestamp"),
    "timestamp -10^30": ('{"type":"x","timestamp":-1' + "0" * 30 + "}", "timestamp"),
    "timestamp 2^63": ('{"type":"x","timestamp":9223372036854775808}', "timestamp"),
    "timestamp 2026-13-45": ('{"type":"x","timestamp":"2026-13-45"}', "timestamp"),
    "timestamp year 0": ('{"type":"x","timestamp":"0000-01-01T00:00:00Z"}', "timestamp"),
    "timestamp year 10000": ('{"type":"x","timestamp":"10000-01-01T00:00:00Z"}', "timestamp"),
    "timestamp year 0 in UTC": ('{"type":"x","timestamp":"0001-01-01T00:00:00+01:00"}',
                                "timestamp"),
    "timestamp year 10000 in UTC": ('{"type":"x","timestamp":"9999-12-31T23:59:59-01:00"}',
                                    "timestamp"),
    "timestamp superscript": ('{"type":"x","timestamp":"²"}', "timestamp"),
    "timestamp 5000 digits": ('{"type":"x","timestamp":"' + "1" * 5000 + '"}', "timestamp"),
    "int 2^53": ('{"type":"x","payload":{"n":9007199254740992}}', "payload"),
    "int -2^53": ('{"type":"x","llm":{"n":-9007199254740992}}', "llm"),
    "int 2^63": ('{"type":"x","context":{"n":9223372036854775807}}', "context"),
    "int 2^64-1": ('{"type":"x","context":{"n":18446744073709551615}}', "context"),
    f"{MAX_DEPTH + 1} levels": ('{"type":"x","payload":' + nest(MAX_DEPTH) + "}", "payload"),
    f"{MAX_DEPTH + 1} levels of lists": ('{"type":"x","metadata":{"a":' + "[" * (MAX_DEPTH - 1)
                                         + "]" * (MAX_DEPTH - 1) + "}}", "metadata"),
    "254 levels": ('{"type":"x","payload":' + nest(253) + "}", "payload"),
    "300 levels": ('{"type":"x","payload":' + nest(299) + "}", "payload"),
    "300 levels of lists": ('{"type":"x","metadata":{"a":' + "[" * 298 + "]" * 298 + "}}",
                            "metadata"),
    "2000 levels": ('{"type":"x","payload":' + nest(1999) + "}", None),
}


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("name", list(HOSTILE_EVENTS))
def test_hostile_event_is_refused_in_every_form(shared_server: Server, name: str,
                                                form: str) -> None:
    event, field = HOSTILE_EVENTS[name]
    content, ctype = body(form, event)
    c = tenant_client(shared_server)
    r = c.post("/v1/events", content=content, headers={"Content-Type": ctype})
    assert r.status_code == 400, (r.status_code, r.text[:300])
    assert r.headers["content-type"] == PROBLEM
    doc = r.json()
    if form != "single" and (field is not None or form == "ndjson"):
        assert doc["errors"][0]["index"] == 1, doc
    if field is not None:
        assert doc["title"] == "Validation failed"
        assert doc["errors"][0]["field"] == field, doc
    assert stored(c) == []


def test_nesting_error_names_the_limit_and_path(shared_server: Server) -> None:
    c = tenant_client(shared_server)
    # payload is level 2, its "b" level 3, and the 31st "c" below it level 33.
    r = c.post("/v1/events", content=body("array", '{"type":"x","payload":{"b":'
                                          + nest(MAX_DEPTH - 1, key="c") + "}}")[0])
    err = r.json()["errors"][0]
    assert (err["index"], err["field"]) == (1, "payload")
    assert f"deeper than {MAX_DEPTH} levels" in err["reason"]
    assert err["reason"].endswith("at b" + ".c" * (MAX_DEPTH - 2)), err["reason"]


ODD_BUT_VALID: dict[str, str] = {
    f"{MAX_DEPTH} levels": '{"type":"deep","payload":' + nest(MAX_DEPTH - 1) + "}",
    f"{MAX_DEPTH} levels of lists": '{"type":"deep","metadata":{"a":'
                                    + "[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2) + "}}",
    "safe integers": '{"type":"n","payload":{"a":9007199254740991,"b":-9007199254740991}}',
    "big floats": '{"type":"n","payload":{"a":1e308,"b":-1e308,"c":1e30,"d":-0.0}}',
    "ints beyond 64 bits parse as floats": '{"type":"n","payload":{"a":1' + "0" * 30 + "}}",
    "last code point and NUL": '{"type":"\\u0000\U0010ffff","title":"a\\u0000b"}',
    "edges of time": '{"type":"t","timestamp":"0001-01-01T00:00:00Z"}',
    "edges of time, offset": '{"type":"t","timestamp":"9999-12-31T23:59:59+00:00"}',
}


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("name", list(ODD_BUT_VALID))
def test_accepted_events_are_readable_everywhere(shared_server: Server, name: str,
                                                 form: str) -> None:
    content, ctype = body(form, ODD_BUT_VALID[name])
    c = tenant_client(shared_server)
    r = c.post("/v1/events", content=content, headers={"Content-Type": ctype})
    assert r.status_code == 201, r.text[:300]
    ids = [d["id"] for d in r.json()["data"]]
    events = stored(c)
    assert {e["id"] for e in events} == set(ids)
    for event_id in ids:
        assert c.get(f"/v1/events/{event_id}").status_code == 200
        assert c.get(f"/v1/events/{event_id}", params={"include": "proof"}).status_code == 200
    for fmt in ("ndjson", "csv", "parquet"):
        r = c.get("/v1/events/export", params={"format": fmt})
        assert r.status_code == 200 and r.content, fmt
    nd = c.get("/v1/events/export").content.splitlines()
    assert len(nd) == len(ids)
    assert c.get("/v1/events/aggregate", params={"group_by": "type"}).status_code == 200


def test_timestamp_edges_are_stored_in_rfc3339(shared_server: Server) -> None:
    c = tenant_client(shared_server)
    c.post("/v1/events", content=b'[{"type":"a","timestamp":"0001-01-01T00:00:00+00:00"},'
                                 b'{"type":"b","timestamp":"0999-06-01"}]')
    assert sorted(e["timestamp"] for e in stored(c)) == [
        "0001-01-01T00:00:00Z", "0999-06-01T00:00:00Z"]


# ------------------------------------------------------------------ media types

REFUSED_TYPES = ["text/plain", "application/x-www-form-urlencoded",
                 "multipart/form-data; boundary=x", "application/xml", "text/xml",
                 "text/json", "application/jsonx", "application/json-seq", "*/*"]
ACCEPTED_TYPES = [None, "application/json", "application/json; charset=utf-8",
                  "Application/JSON", "application/cloudevents+json", NDJSON,
                  "application/ndjson", "application/jsonl"]


@pytest.mark.parametrize("ctype", REFUSED_TYPES)
def test_non_json_content_types_get_415(shared_server: Server, ctype: str) -> None:
    c = tenant_client(shared_server)
    r = c.post("/v1/events", content=b'{"type":"x"}', headers={"Content-Type": ctype})
    assert r.status_code == 415, r.text[:300]
    assert r.headers["content-type"] == PROBLEM
    doc = r.json()
    assert (doc["status"], doc["title"]) == (415, "Unsupported Media Type")
    for accepted in ("application/json", "application/x-ndjson", "application/*+json"):
        assert accepted in doc["detail"] and accepted in doc["accept"]
    assert stored(c) == []


@pytest.mark.parametrize("ctype", ACCEPTED_TYPES)
def test_json_content_types_are_accepted(shared_server: Server, ctype: str | None) -> None:
    c = tenant_client(shared_server)
    headers = {"Content-Type": ctype} if ctype else {}
    r = c.post("/v1/events", content=b'{"type":"x"}', headers=headers)
    assert r.status_code == 201, r.text[:300]
    assert len(stored(c)) == 1


def test_a_cross_site_form_cannot_write(shared_server: Server) -> None:
    """What a browser form posts (urlencoded, JSON-looking name): refused, not parsed."""
    c = tenant_client(shared_server)
    r = c.post("/v1/events", data={'{"type":"x","a":"': '"}'})
    assert r.status_code == 415
    assert stored(c) == []


def test_parse_body_refuses_the_media_type_before_parsing() -> None:
    with pytest.raises(UnsupportedMediaType):
        parse_body(b"not json at all", "text/plain", 10)
    assert parse_body(b'{"type":"x"}', "", 10) == [{"type": "x"}]


def test_every_form_yields_the_same_events() -> None:
    one = parse_body(b'{"type":"x","payload":{"a":1.5}}', "application/json", 10)
    arr = parse_body(b'[{"type":"x","payload":{"a":1.5}}]', "application/json", 10)
    nd = parse_body(b'{"type":"x","payload":{"a":1.5}}\n', NDJSON, 10)
    assert one == arr == nd == [{"type": "x", "payload": {"a": 1.5}}]
    assert orjson.dumps(one[0]) == b'{"type":"x","payload":{"a":1.5}}'
