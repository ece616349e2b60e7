"""``/v1/integrations`` against a real server delivering to real local receivers."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from conftest import Server
from delivery.receiver import Answer, Receiver

PROBLEM = "application/problem+json"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture
def push_server(make_server: Any) -> Server:
    return make_server(push_allow_private="127.0.0.1")  # type: ignore[no-any-return]


@pytest.fixture
def admin(push_server: Server) -> httpx.Client:
    return push_server.client(push_server.key("acme", "events:read", "events:write", "admin"))


def wait(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def create(client: httpx.Client, url: str, **doc: Any) -> dict[str, Any]:
    config = doc.pop("config", {})
    r = client.post("/v1/integrations", json={"name": "siem", "kind": "webhook",
                                               "config": {"url": url, **config}, **doc})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def ingest(client: httpx.Client, events: list[dict[str, Any]]) -> list[str]:
    r = client.post("/v1/events", json=events)
    assert r.status_code in (200, 201), r.text
    return [e["id"] for e in r.json()["data"]]


def problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    return r.json()  # type: ignore[no-any-return]


def test_create_returns_the_generated_secret_once_and_masks_it_after(
        admin: httpx.Client, receiver: Receiver) -> None:
    made = create(admin, receiver.url, rule="severity:>=high -type:heartbeat")
    assert made["id"].startswith("int_") and made["secret"].startswith("whsec_")
    assert made["config"]["secret"] == "********"
    assert (made["kind"], made["format"], made["state"], made["lag"]) == (
        "webhook", "native", "active", 0)
    shown = admin.get(f"/v1/integrations/{made['id']}").json()
    assert "secret" not in shown and shown["config"]["secret"] == "********"
    listed = admin.get("/v1/integrations").json()["data"]
    assert [i["id"] for i in listed] == [made["id"]]
    assert made["secret"] not in admin.get("/v1/integrations").text
    given = create(admin, receiver.url, config={"secret": made["secret"]})
    assert "secret" not in given  # the caller's own secret is not echoed


def test_events_arrive_signed_in_seq_order_as_canonical_events(
        admin: httpx.Client, receiver: Receiver) -> None:
    made = create(admin, receiver.url, rule="severity:>=high -type:heartbeat")
    ids = ingest(admin, [
        {"type": "user.role_changed", "severity": "high", "title": "a"},
        {"type": "heartbeat", "severity": "critical", "title": "b"},
        {"type": "user.login", "severity": "info", "title": "c"},
        {"type": "vessel.dark", "severity": "critical", "title": "d"},
    ])
    wait(lambda: len(receiver.delivered()) == 2)
    got = receiver.delivered()
    assert [e["id"] for e in got] == [ids[0], ids[3]]
    assert [e["seq"] for e in got] == [1, 4]
    assert got[0] == admin.get(f"/v1/events/{ids[0]}").json()  # the canonical event
    for r in receiver.ok():
        Webhook(made["secret"]).verify(r.body, r.headers)
    wait(lambda: admin.get(f"/v1/integrations/{made['id']}").json()["cursor"] == 4)
    shown = admin.get(f"/v1/integrations/{made['id']}").json()
    assert shown["last_success_at"] and shown["lag"] == 0 and shown["state"] == "active"


def test_vaultterm_and_authpi_payloads_are_the_profiles_records(
        admin: httpx.Client, receiver: Receiver) -> None:
    other = Receiver()
    try:
        create(admin, receiver.url, format="vaultterm")
        create(admin, other.url, format="authpi")
        ids = ingest(admin, [{
            "type": "user.role_changed", "severity": "high", "title": "Admin role granted",
            "description": "Role admin", "actor": {"id": "u1", "name": "Ann", "ip": "10.1.2.3"},
            "subject": {"type": "user", "id": "u2"},
            "context": {"user_id": "u1", "request_id": "r1"}}])
        wait(lambda: receiver.ok() != [] and other.ok() != [])
        pulled = admin.get("/compat/vaultterm/events/v1").json()["data"]
        assert receiver.ok()[0].json()["data"] == pulled
        authpi = admin.get(f"/compat/authpi/v1/accounts/acme/events/{ids[0]}").json()
        assert other.ok()[0].json()["data"] == [authpi]
    finally:
        other.stop()


def test_cloudevents_single_and_batched(admin: httpx.Client, receiver: Receiver) -> None:
    other = Receiver()
    try:
        create(admin, receiver.url, format="cloudevents", config={"batch_size": 1})
        create(admin, other.url, format="cloudevents", config={"batch_size": 50})
        ids = ingest(admin, [{"type": "a.b", "title": "x"}, {"type": "c.d", "title": "y"}])
        wait(lambda: len(receiver.ok()) == 2 and len(other.ok()) == 1)
        single = receiver.ok()[0]
        assert single.headers["content-type"] == "application/cloudevents+json"
        doc = single.json()
        assert (doc["specversion"], doc["id"], doc["type"]) == ("1.0", ids[0], "io.auditstream.a.b")
        assert doc["data"]["seq"] == 1 and doc["source"] == "//auditstream.local/tenants/acme"
        batch = other.ok()[0]
        assert batch.headers["content-type"] == "application/cloudevents-batch+json"
        assert [e["id"] for e in batch.json()] == ids
    finally:
        other.stop()


def test_test_action_and_attempts(admin: httpx.Client, receiver: Receiver) -> None:
    made = create(admin, receiver.url)
    answer = admin.post(f"/v1/integrations/{made['id']}/test")
    assert answer.status_code == 200, answer.text
    assert answer.json()["ok"] is True and answer.json()["status_code"] == 200
    (sent,) = receiver.ok()
    assert sent.json()["data"][0]["type"] == "auditstream.test"
    Webhook(made["secret"]).verify(sent.body, sent.headers)
    receiver.default = Answer(503)
    failed = admin.post(f"/v1/integrations/{made['id']}/test").json()
    assert (failed["ok"], failed["status_code"], failed["error"]) == (False, 503, "HTTP 503")
    attempts = admin.get(f"/v1/integrations/{made['id']}/attempts?limit=5").json()["data"]
    assert [(a["action"], a["status_code"]) for a in attempts] == [("test", 503), ("test", 200)]
    assert all(a["latency_ms"] >= 0 for a in attempts)
    # A test message moves no cursor and counts no failure.
    shown = admin.get(f"/v1/integrations/{made['id']}").json()
    assert (shown["cursor"], shown["failures"], shown["state"]) == (0, 0, "active")


def test_pause_update_and_delete(admin: httpx.Client, receiver: Receiver) -> None:
    made = create(admin, receiver.url)
    r = admin.patch(f"/v1/integrations/{made['id']}", json={"enabled": False, "name": "x"})
    assert r.status_code == 200 and r.json()["state"] == "paused" and r.json()["name"] == "x"
    ingest(admin, [{"type": "a", "title": "1"}])
    time.sleep(1.5)  # a paused integration sends nothing, also after a poll interval
    assert receiver.requests == []
    assert admin.get(f"/v1/integrations/{made['id']}").json()["lag"] == 1
    other = Receiver()
    try:  # moving the URL keeps the secret: the merge is key by key
        r = admin.patch(f"/v1/integrations/{made['id']}",
                        json={"enabled": True, "config": {"url": other.url}})
        assert r.status_code == 200 and r.json()["config"]["url"] == other.url
        wait(lambda: len(other.delivered()) == 1)
        Webhook(made["secret"]).verify(other.ok()[0].body, other.ok()[0].headers)
    finally:
        other.stop()
    assert admin.delete(f"/v1/integrations/{made['id']}").status_code == 204
    problem(admin.get(f"/v1/integrations/{made['id']}"), 404)
    problem(admin.delete(f"/v1/integrations/{made['id']}"), 404)


def test_dead_letters_and_redeliver_through_the_api(
        push_server: Server, receiver: Receiver) -> None:
    admin = push_server.client(push_server.key("acme", "events:write", "admin"))
    receiver.respond = lambda r: 400 if r.json()["data"][0]["title"] == "bad" else 200
    made = create(admin, receiver.url, config={"batch_size": 1})
    # The server's schedule is real time here: make the retries quick.
    ingest(admin, [{"type": "a", "title": "bad"}, {"type": "a", "title": "good"}])
    wait(lambda: admin.get(f"/v1/integrations/{made['id']}").json()["failures"] >= 1)
    # Fix nothing; instead the admin redelivers after it lands in the dead letters. The
    # default schedule would take minutes, so this test checks the API around it only.
    problem(admin.post(f"/v1/integrations/{made['id']}/redeliver", json={"seqs": "1"}), 400)
    problem(admin.post(f"/v1/integrations/{made['id']}/redeliver", json={"x": 1}), 400)
    assert admin.post(f"/v1/integrations/{made['id']}/redeliver").json() == {"requested": 0}
    page = admin.get(f"/v1/integrations/{made['id']}/dead-letters?limit=10").json()
    assert page == {"data": [], "next_after_seq": None}
    problem(admin.get(f"/v1/integrations/{made['id']}/dead-letters?limit=0"), 400)
    problem(admin.get(f"/v1/integrations/{made['id']}/dead-letters?after_seq=-1"), 400)
    problem(admin.get(f"/v1/integrations/{made['id']}/dead-letters?nope=1"), 400)
    shown = admin.get(f"/v1/integrations/{made['id']}").json()
    assert shown["state"] == "failing" and shown["last_error"] == "HTTP 400"
    assert shown["next_attempt_at"] is not None and shown["lag"] == 2


def test_admin_scope_and_tenant_walls(push_server: Server, admin: httpx.Client,
                                      receiver: Receiver) -> None:
    made = create(admin, receiver.url)
    reader = push_server.client(push_server.key("acme", "events:read", "events:write"))
    problem(reader.get("/v1/integrations"), 403)
    problem(reader.post("/v1/integrations", json={}), 403)
    problem(push_server.client().get("/v1/integrations"), 401)
    intruder = push_server.client(push_server.key("evil", "admin"))
    assert intruder.get("/v1/integrations").json() == {"data": []}
    base = f"/v1/integrations/{made['id']}"
    for method, path, body in [
        ("GET", base, None), ("PATCH", base, {"enabled": False}), ("DELETE", base, None),
        ("POST", base + "/test", None), ("GET", base + "/attempts", None),
        ("GET", base + "/dead-letters", None), ("POST", base + "/redeliver", None),
    ]:
        problem(intruder.request(method, path, json=body), 404)
    assert receiver.requests == []  # the intruder's test sent nothing
    assert admin.get(base).json()["enabled"] is True
    # Guessed ids, well formed or not, are as absent as another tenant's.
    for guess in [f"int_{secrets.token_hex(12)}" for _ in range(30)] + [
            "int_", "x" * 300, "int_%00", "..%2F..%2Fadmin"]:
        r = intruder.get(f"/v1/integrations/{guess}/attempts")
        assert r.status_code == 404, (guess, r.text)


def test_dead_letter_pages_take_any_seq_up_to_2_63(admin: httpx.Client,
                                                   receiver: Receiver) -> None:
    base = f"/v1/integrations/{create(admin, receiver.url)['id']}/dead-letters"
    assert admin.get(base, params={"after_seq": 2**63 - 1}).json()["data"] == []
    for bad in (2**63, -1, "1e3", "", "0x10", "٣"):
        body = problem(admin.get(base, params={"after_seq": bad}), 400)
        assert body["errors"][0]["field"] == "after_seq", body


def _nested(depth: int) -> Any:
    doc: Any = "x"
    for _ in range(depth):
        doc = {"a": doc}
    return doc


@pytest.mark.parametrize(("doc", "field"), [
    ({"kind": "webhook", "config": {"url": "https://example.com"}}, "name"),
    ({"name": "x", "kind": "pager", "config": {}}, "kind"),
    ({"name": "x", "kind": {"a": 1}, "config": {}}, "kind"),  # found by the fuzzer: a 500
    ({"name": "x", "kind": "webhook", "format": ["native"], "config": {}}, "format"),
    ({"name": "x", "kind": "slack", "format": "vaultterm",
      "config": {"url": "https://hooks.slack.com/x"}}, "format"),
    ({"name": "x", "kind": "syslog", "format": "authpi",
      "config": {"host": "siem.example", "body": "cef"}}, "format"),
    ({"name": "x", "kind": "splunk_hec", "config": {"url": "https://splunk.example"}},
     "config.token"),
    ({"name": "x", "kind": "webhook", "config": {"url": "ftp://example.com"}}, "config.url"),
    ({"name": "x", "kind": "webhook", "config": {"url": "https://u:p@example.com"}},
     "config.url"),
    ({"name": "x", "kind": "webhook", "config": {}}, "config.url"),
    ({"name": "x", "kind": "webhook", "config": {"url": "https://example.com", "x": 1}},
     "config.x"),
    ({"name": "x", "kind": "webhook", "config": {"url": "http://10.0.0.7/hook"}}, "config.url"),
    ({"name": "x", "kind": "webhook", "config": {"url": "http://169.254.169.254/"}},
     "config.url"),
    ({"name": "x", "kind": "webhook", "config": {"url": "http://[::1]:8080/"}}, "config.url"),
    ({"name": "x", "kind": "webhook", "config": {"url": "http://localhost/"}}, "config.url"),
    ({"name": "x", "kind": "webhook", "config": {"url": "https://e.com", "secret": "nope"}},
     "config.secret"),
    ({"name": "x", "kind": "webhook", "config": {"url": "https://e.com", "batch_size": 0}},
     "config.batch_size"),
    ({"name": "x", "kind": "webhook", "config": {"url": "https://e.com", "batch_size": "9"}},
     "config.batch_size"),
    ({"name": "x", "kind": "webhook", "config": {"url": "https://e.com",
                                                 "headers": {"webhook-id": "x"}}},
     "config.headers"),
    ({"name": "x", "kind": "webhook", "config": {"url": "https://e.com",
                                                 "headers": {"x-a": "1\r\nHost: evil"}}},
     "config.headers"),
    ({"name": "x", "kind": "webhook", "config": {"url": "https://e.com",
                                                 "headers": {"x a": "1"}}}, "config.headers"),
    ({"name": "x", "kind": "webhook", "config": {"url": "https://e.com",
                                                 "headers": {"x-a": "€"}}}, "config.headers"),
    ({"name": "x", "kind": "webhook", "rule": "severity:>=", "config": {"url": "https://e.com"}},
     "rule"),
    ({"name": "x", "kind": "webhook", "rule": 5, "config": {"url": "https://e.com"}}, "rule"),
    ({"name": "x", "kind": "webhook", "format": "xml", "config": {"url": "https://e.com"}},
     "format"),
    ({"name": "x", "kind": "webhook", "enabled": "yes", "config": {"url": "https://e.com"}},
     "enabled"),
    ({"name": "x", "kind": "webhook", "start_after_seq": 5, "config": {"url": "https://e.com"}},
     "start_after_seq"),
    ({"name": "x", "kind": "webhook", "start_after_seq": True,
      "config": {"url": "https://e.com"}}, "start_after_seq"),
    ({"name": "x" * 201, "kind": "webhook", "config": {"url": "https://e.com"}}, "name"),
    # Names are shown in the console and the CLI: no controls, no bidi overrides.
    ({"name": "a\x00b", "kind": "webhook", "config": {"url": "https://e.com"}}, "name"),
    ({"name": "siem\u202egpj.exe", "kind": "webhook", "config": {"url": "https://e.com"}},
     "name"),
    ({"name": "\x1b[2Jok", "kind": "webhook", "config": {"url": "https://e.com"}}, "name"),
    ({"name": "x", "kind": "webhook", "config": {"url": "https://e.com",
                                                 "headers": {"x-a": _nested(200)}}},
     "config.headers.x-a"),
    ({"name": "x", "kind": "webhook", "config": {"url": "https://e.com",
                                                 "batch_size": 2**64}}, "config.batch_size"),
    ({"name": "x", "kind": "webhook", "config": "https://e.com"}, "config"),
    ({"name": "x", "kind": "webhook", "config": {"url": "https://e.com"}, "extra": 1}, "extra"),
])
def test_bad_integrations_are_400_with_the_field_and_create_nothing(
        make_server: Any, doc: dict[str, Any], field: str) -> None:
    server = make_server()  # no private address allowed
    admin = server.client(server.key("acme", "admin"))
    body = problem(admin.post("/v1/integrations", json=doc), 400)
    assert field in [e["field"] for e in body["errors"]], body
    assert admin.get("/v1/integrations").json() == {"data": []}


def test_bodies_that_are_not_json_objects_or_too_large(admin: httpx.Client) -> None:
    problem(admin.post("/v1/integrations", content=b"{nope"), 400)
    # Nested beyond what any parser here takes: refused whole, not a crash.
    problem(admin.post("/v1/integrations", content=b'{"config":' * 5000 + b"1" + b"}" * 5000,
                       headers={"Content-Type": "application/json"}), 400)
    problem(admin.post("/v1/integrations", json=[1, 2]), 400)
    problem(admin.post("/v1/integrations", json={"name": "x", "kind": "webhook", "config": {
        "url": "https://e.com", "headers": {"a": "b" * 70_000}}}), 413)
    problem(admin.post("/v1/integrations?x=1", json={}), 400)
    assert admin.get("/v1/integrations").json() == {"data": []}


def test_private_destinations_are_refused_when_delivering(
        make_server: Any, receiver: Receiver) -> None:
    """A name that resolves to loopback passes the create-time check of literals, and is
    still refused at connect time: nothing reaches the receiver."""
    server = make_server(push_allow_private="localhost.invalid")  # not 127.0.0.1
    admin = server.client(server.key("acme", "admin", "events:write"))
    made = create(admin, f"http://127.0.0.1.nip.invalid:{receiver.port}/")
    answer = admin.post(f"/v1/integrations/{made['id']}/test").json()
    assert answer["ok"] is False and answer["status_code"] is None
    r = admin.post("/v1/integrations", json={
        "name": "x", "kind": "webhook", "config": {"url": f"http://127.0.0.1:{receiver.port}"}})
    problem(r, 400)
    assert receiver.requests == []


def test_an_update_is_checked_with_the_rest_of_the_integration(admin: httpx.Client) -> None:
    r = admin.post("/v1/integrations", json={
        "name": "s", "kind": "syslog", "format": "authpi",
        "config": {"host": "siem.example", "body": "json"}})
    assert r.status_code == 201, r.text
    base = f"/v1/integrations/{r.json()['id']}"
    body = problem(admin.patch(base, json={"config": {"body": "cef"}}), 400)
    assert body["errors"][0]["field"] == "format"
    assert problem(admin.patch(base, json={"config": {"port": 0}}), 400)["errors"][0][
        "field"] == "config.port"
    assert admin.patch(base, json={"format": "native", "config": {"body": "cef"}}).json()[
        "config"]["body"] == "cef"
    problem(admin.patch(base, json={"format": "vaultterm"}), 400)
