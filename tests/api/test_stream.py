"""``/v1/events/stream`` over real sockets: a server on a free port, the ``websockets``
client, HTTP ingest beside it. Every message type, auth path, limit and close code of
``docs/stream.md``, resume without gap or duplicate, SSE."""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from auditstream.api.native import stream as stream_api
from auditstream.integrity import merkle
from auditstream.integrity.canonical import canonical_bytes
from auditstream.integrity.checkpoint import Checkpoint, open_checkpoint
from conftest import Server

WAIT = 10.0  # seconds a test waits for a message before it fails


def ws_url(server: Server, token: str | None = None) -> str:
    url = server.url.replace("http://", "ws://") + "/v1/events/stream"
    return f"{url}?token={token}" if token else url


@pytest.fixture
def open_ws(server: Server) -> Iterator[Any]:
    with contextlib.ExitStack() as stack:
        def make(token: str | None = None, **kw: Any) -> ClientConnection:
            return stack.enter_context(connect(ws_url(server, token), open_timeout=WAIT, **kw))

        yield make


def recv(ws: ClientConnection, timeout: float = WAIT) -> dict[str, Any]:
    return orjson.loads(ws.recv(timeout=timeout))  # type: ignore[no-any-return]


def recv_type(ws: ClientConnection, kind: str, timeout: float = WAIT) -> dict[str, Any]:
    """The next message of ``kind``, skipping heartbeats."""
    while True:
        msg = recv(ws, timeout)
        if msg["type"] == kind:
            return msg
        assert msg["type"] == "heartbeat", msg


def events(ws: ClientConnection, n: int) -> list[dict[str, Any]]:
    return [recv_type(ws, "event") for _ in range(n)]


def closed_with(ws: ClientConnection) -> tuple[int | None, str | None]:
    with pytest.raises(ConnectionClosed) as info:
        while True:
            ws.recv(timeout=WAIT)
    return info.value.rcvd.code if info.value.rcvd else None, (
        info.value.rcvd.reason if info.value.rcvd else None)


def ingest(server: Server, key: str, *docs: dict[str, Any]) -> list[int]:
    with server.client(key) as c:
        r = c.post("/v1/events", content=orjson.dumps(list(docs)))
        assert r.status_code == 201, r.text
        return [d["seq"] for d in r.json()["data"]]


def subscribe(ws: ClientConnection, **msg: Any) -> dict[str, Any]:
    ws.send(orjson.dumps({"type": "subscribe", **msg}).decode())
    return recv_type(ws, "subscribed")


def test_live_events_matching_the_filter_arrive_once_in_order(server: Server,
                                                              open_ws: Any) -> None:
    key = server.key("acme")
    ws = open_ws(key)
    # The client offers permessage-deflate (websockets does by default); it is taken.
    assert [e.name for e in ws.protocol.extensions] == ["permessage-deflate"]
    sub = subscribe(ws, filters={"type": ["login", "logout"]})
    assert sub["tenant"] == "acme" and sub["after_seq"] == 0
    ingest(server, key, {"type": "login", "title": "a"}, {"type": "noise"},
           {"type": "logout", "title": "b"})
    got = events(ws, 2)
    assert [(m["seq"], m["event"]["type"]) for m in got] == [(1, "login"), (3, "logout")]
    assert got[0]["event"]["tenant"] == "acme" and got[0]["event"]["seq"] == 1
    ws.send('{"type":"ping"}')
    assert recv_type(ws, "pong") == {"type": "pong"}  # and nothing else came before it


def test_auth_by_first_message_header_or_refused(server: Server, open_ws: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    key = server.key("acme")
    ws = open_ws()
    ws.send(orjson.dumps({"type": "auth", "token": key}).decode())
    assert subscribe(ws)["tenant"] == "acme"
    ws2 = open_ws(additional_headers={"X-API-Key": key})
    assert subscribe(ws2)["tenant"] == "acme"
    assert closed_with(open_ws("sk_live_not_a_key"))[0] == 4401
    bad = open_ws()
    bad.send('{"type":"subscribe"}')  # not an auth message
    assert closed_with(bad)[0] == 4401
    assert closed_with(open_ws(server.key("acme", "events:write")))[0] == 4403
    monkeypatch.setattr(stream_api, "AUTH_SECONDS", 0.2)
    code, reason = closed_with(open_ws())  # says nothing
    assert code == 4408 and reason and "auth" in reason


def test_an_invalid_filter_is_an_error_message_and_the_stream_goes_on(
        server: Server, open_ws: Any) -> None:
    key = server.key("acme")
    ws = open_ws(key)
    for msg, field in [
        ({"filters": {"severity": "urgent"}}, "severity"),
        ({"filters": {"no_such_field": "x"}}, "no_such_field"),
        ({"filters": {"type": {"$ne": 1}}}, "type"),
        ({"filters": ["type"]}, "filters"),
        ({"q": "type:(unclosed"}, "position"),
        ({"filters": {"min_severity": ["low", "high"]}}, "min_severity"),
    ]:
        ws.send(orjson.dumps({"type": "subscribe", **msg}).decode())
        err = recv_type(ws, "error")
        assert err["code"] == "invalid_filter" and field in err["message"], (msg, err)
    ws.send('{"type":"subscribe","resume_from":"evt_nope"}')
    assert recv_type(ws, "error")["code"] == "not_found"
    for raw in ["not json", "[]", '{"type":"dance"}', "x" * 70_000]:
        ws.send(raw)
        err = recv_type(ws, "error")
        assert err["code"] == "invalid_message", (raw[:20], err)
    assert "subscribe" in err["message"] or "larger" in err["message"]
    assert subscribe(ws, filters={"severity": ["high", "critical"]})["after_seq"] == 0
    ingest(server, key, {"type": "x", "severity": "low"}, {"type": "y", "severity": "high"})
    assert [m["event"]["type"] for m in events(ws, 1)] == ["y"]


def test_resume_from_a_seq_or_an_id_replays_then_goes_live(server: Server,
                                                          open_ws: Any) -> None:
    key = server.key("acme")
    ingest(server, key, *[{"type": "old", "title": f"e{i}"} for i in range(10)])
    with server.client(key) as c:
        third = c.get("/v1/events?order=asc&limit=3").json()["data"][2]["id"]
    ws = open_ws(key)
    assert subscribe(ws, resume_from=7)["after_seq"] == 7
    assert [m["seq"] for m in events(ws, 3)] == [8, 9, 10]
    ws2 = open_ws(key)
    assert subscribe(ws2, resume_from=third)["after_seq"] == 3
    assert [m["seq"] for m in events(ws2, 7)] == list(range(4, 11))
    ingest(server, key, {"type": "new"})
    assert events(ws, 1)[0]["seq"] == 11 and events(ws2, 1)[0]["seq"] == 11


def test_other_tenants_events_and_ids_are_invisible(server: Server, open_ws: Any) -> None:
    a, b = server.key("acme"), server.key("globex")
    ingest(server, b, {"type": "secret"})
    with server.client(b) as c:
        their_id = c.get("/v1/events").json()["data"][0]["id"]
    ws = open_ws(a)
    ws.send(orjson.dumps({"type": "subscribe", "resume_from": their_id}).decode())
    assert recv_type(ws, "error")["code"] == "not_found"
    subscribe(ws, resume_from=0)
    ingest(server, b, {"type": "secret"})
    ingest(server, a, {"type": "mine"})
    assert [m["event"]["type"] for m in events(ws, 1)] == ["mine"]


def test_update_filters_keeps_the_position_and_unsubscribe_stops(server: Server,
                                                                open_ws: Any) -> None:
    key = server.key("acme")
    ws = open_ws(key)
    subscribe(ws, filters={"type": "a"})
    ingest(server, key, {"type": "a"}, {"type": "b"})
    assert events(ws, 1)[0]["seq"] == 1
    ws.send('{"type":"update_filters","filters":{"type":"b"}}')
    # From the last event sent (seq 1): b at seq 2 is sent now, under the new filter.
    assert recv_type(ws, "subscribed")["after_seq"] == 1
    assert [m["seq"] for m in events(ws, 1)] == [2]
    ws.send('{"type":"unsubscribe"}')
    ws.send('{"type":"ping"}')
    assert recv_type(ws, "pong")
    ingest(server, key, {"type": "b"})
    ws.send('{"type":"ping"}')
    assert recv(ws)["type"] == "pong"  # no event came in between


def test_heartbeats_count_events_and_uptime(make_server: Any) -> None:
    server = make_server(stream_heartbeat_seconds=0.2)
    key = server.key("acme")
    with connect(ws_url(server, key), open_timeout=WAIT) as ws:
        subscribe(ws)
        ingest(server, key, {"type": "a"})
        recv_type(ws, "event")
        beat = recv_type(ws, "heartbeat")
        assert beat["events_sent"] == 1 and beat["connection_uptime_seconds"] >= 0
        assert beat["timestamp"].endswith("Z")


def test_one_stream_more_than_the_limit_is_closed_with_4429(make_server: Any) -> None:
    server = make_server(stream_max_connections_per_key=2)
    key, other = server.key("acme"), server.key("acme")
    with contextlib.ExitStack() as stack:
        held = [stack.enter_context(connect(ws_url(server, key), open_timeout=WAIT))
                for _ in range(2)]
        for ws in held:
            subscribe(ws)
        with connect(ws_url(server, key), open_timeout=WAIT) as extra:
            assert closed_with(extra)[0] == 4429
        with connect(ws_url(server, other), open_timeout=WAIT) as ws:  # another key: fine
            subscribe(ws)
        held.pop().close()
        deadline = time.monotonic() + WAIT  # the server sees the close a moment later
        while True:
            with connect(ws_url(server, key), open_timeout=WAIT) as again:
                again.send('{"type":"ping"}')
                try:
                    assert recv(again)["type"] == "pong"
                    break
                except ConnectionClosed:
                    assert time.monotonic() < deadline
                    time.sleep(0.05)


def test_a_revoked_key_is_closed_within_5_seconds(server: Server, open_ws: Any) -> None:
    key = server.key("acme")
    ws = open_ws(key)
    subscribe(ws)
    key_id = next(k.id for k in server.catalog.keys("acme"))
    server.catalog.revoke_key(key_id)
    start = time.monotonic()
    assert closed_with(ws)[0] == 4401
    assert time.monotonic() - start < 5.5


def test_a_subscriber_that_falls_behind_catches_up_from_the_store(make_server: Any) -> None:
    """A queue of 5: the reader sleeps while 300 events are committed, so the queue
    overflows again and again; it still gets each event once, in order."""
    server = make_server(stream_queue_messages=5)
    key = server.key("acme")
    with connect(ws_url(server, key), open_timeout=WAIT) as ws:
        subscribe(ws)
        for i in range(30):
            ingest(server, key, *[{"type": "burst", "title": f"{i}-{j}"} for j in range(10)])
        seqs = [m["seq"] for m in events(ws, 300)]
    assert seqs == list(range(1, 301))
    hub = server.app.state.services.hub
    deadline = time.monotonic() + WAIT
    while hub.ended < 1:  # the server sees the close a moment later
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert hub.overflows > 0  # it did fall behind
    assert not hub.tails  # and its subscription is gone with the connection


def test_no_gap_and_no_duplicate_while_ingest_runs_during_the_switch_over(
        server: Server, open_ws: Any) -> None:
    key = server.key("acme")
    stop = threading.Event()
    acked: list[int] = []

    def producer() -> None:
        with server.client(key) as c:
            i = 0
            while not stop.is_set():
                r = c.post("/v1/events", content=orjson.dumps(
                    [{"type": "load", "title": f"{i}-{j}"} for j in range(20)]))
                acked.extend(d["seq"] for d in r.json()["data"])
                i += 1

    t = threading.Thread(target=producer)
    t.start()
    try:
        while len(acked) < 200:
            time.sleep(0.01)
        ws = open_ws(key)
        subscribe(ws, resume_from=0)  # replay from the start while ingest goes on
        while len(acked) < 1000:
            time.sleep(0.01)
    finally:
        stop.set()
        t.join()
    got = [m["seq"] for m in events(ws, len(acked))]
    assert got == list(range(1, len(acked) + 1))


def test_include_proof_makes_every_event_verifiable(server: Server, open_ws: Any) -> None:
    key = server.key("acme")
    with server.client(key) as c:
        public_key = c.get("/v1/integrity/public-key").text.strip()
    ws = open_ws(key)
    subscribe(ws, resume_from=0, include_proof=True)
    ingest(server, key, *[{"type": "p", "title": f"e{i}"} for i in range(5)])
    checkpoint: Checkpoint | None = None
    verified = 0
    while verified < 5:
        msg = recv(ws)
        if msg["type"] == "checkpoint":
            checkpoint = open_checkpoint(msg["checkpoint"], public_key)
            continue
        assert msg["type"] == "event" and checkpoint is not None
        proof = msg["proof"]
        assert proof["tree_size"] == checkpoint.size
        leaf = merkle.leaf_hash(canonical_bytes(msg["event"]))  # the stored bytes' hash
        assert base64.b64decode(proof["leaf_hash"]) == leaf
        assert proof["leaf_index"] == msg["seq"] - 1
        path = [base64.b64decode(h) for h in proof["inclusion_path"]]
        assert merkle.verify_inclusion(leaf, proof["leaf_index"], proof["tree_size"], path,
                                       checkpoint.root)
        verified += 1


def test_server_sent_events_resume_with_last_event_id(server: Server) -> None:
    key = server.key("acme")
    ingest(server, key, *[{"type": "s", "title": f"e{i}"} for i in range(4)])
    headers = {"X-API-Key": key, "Accept": "text/event-stream", "Last-Event-ID": "2"}
    with httpx.Client(base_url=server.url, timeout=WAIT) as c:
        assert c.get("/v1/events/stream", headers={"X-API-Key": key}).status_code == 406
        bad = c.get("/v1/events/stream?nope=1", headers=headers)
        assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "nope"
        with c.stream("GET", "/v1/events/stream?type=s", headers=headers) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            ids = []
            for line in r.iter_lines():
                if line.startswith("id: "):
                    ids.append(int(line[4:]))
                if len(ids) == 2:
                    break
            assert ids == [3, 4]


def test_a_client_that_stops_reading_is_closed_and_ingest_goes_on(make_server: Any) -> None:
    """The client's receive buffer is tiny and it never reads: the server's sends block,
    and after ``stream_stall_seconds`` it closes the stream (4008) and lets it go; the
    ingest calls meanwhile all answer."""
    server = make_server(stream_stall_seconds=0.5)
    key = server.key("acme")
    sock = socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    with connect(ws_url(server, key), sock=sock, open_timeout=WAIT, compression=None) as ws:
        subscribe(ws)
        hub = server.app.state.services.hub
        big = "x" * 4000
        deadline = time.monotonic() + 30
        while hub.stalled == 0:
            assert time.monotonic() < deadline, "the server never gave up on the reader"
            ingest(server, key, *[{"type": "big", "description": big} for _ in range(200)])
        while hub.ended == 0:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert not hub.tails  # nothing of it is kept
        # (The client sees the close only after reading what it left unread: the close
        # frame queues behind it.)


def test_hostile_resume_points_and_messages_are_errors_not_crashes(server: Server,
                                                                   open_ws: Any) -> None:
    key = server.key("acme")
    ingest(server, key, {"type": "a"})
    ws = open_ws(key)
    for bad in [-1, 1.5, True, [], {}, ""]:
        ws.send(orjson.dumps({"type": "subscribe", "resume_from": bad}).decode())
        assert recv_type(ws, "error")["code"] == "invalid_filter", bad
    for unknown in ["9" * 40, "evt_\u202e\u0000x", "x" * 10_000]:
        ws.send(orjson.dumps({"type": "subscribe", "resume_from": unknown}).decode())
        assert recv_type(ws, "error")["code"] == "not_found"
    ws.send("[" * 5000 + "]" * 5000)  # deeper than any JSON parser takes
    assert recv_type(ws, "error")["code"] == "invalid_message"
    ws.send('{"type":"subscribe","filters":{"q":"\\ud800"}}')  # a lone surrogate
    assert recv_type(ws, "error")["code"] in ("invalid_message", "invalid_filter")
    # A seq beyond the log is after everything: nothing old, the next new event comes.
    assert subscribe(ws, resume_from=2**63 - 1)["after_seq"] == 2**62
    ingest(server, key, {"type": "b"})
    ws.send('{"type":"ping"}')
    assert recv(ws)["type"] == "pong"
