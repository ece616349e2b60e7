"""The turqoa WebSocket stream over real sockets: a server on a free port, the
``websockets`` client, HTTP ingest beside it. Every documented message, auth path, the
per-key limit, the errors, the reconnect buffer, and the seed's own Python and Node
clients, run unchanged but for the URL."""

from __future__ import annotations

import contextlib
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from auditstream.api.compat import turqoa_stream
from auditstream.api.native import stream as stream_api
from auditstream.stream.hub import Item
from conftest import Server

BASE = "/compat/turqoa"
WAIT = 10.0  # seconds a test waits for a message before it fails
RECORD_KEYS = ["id", "timestamp", "category", "severity", "source_module", "source_device",
               "title", "description", "location", "metadata", "requires_action",
               "assigned_to", "incident_id"]
VALID_CATEGORIES = "Valid categories: gate, perimeter, maritime, drone, system, decision"
SEED = Path(__file__).resolve().parents[4] / "shared" / "seeds" / "turqoa-events-api.txt"
SEED_URL = "wss://api.turqoa.com/v1/events/stream?token=tqa_live_..."


def ws_url(server: Server, token: str | None = None, path: str = f"{BASE}/v1/events/stream",
           ) -> str:
    url = server.url.replace("http://", "ws://") + path
    return f"{url}?token={token}" if token else url


@pytest.fixture
def open_ws(server: Server) -> Iterator[Callable[..., ClientConnection]]:
    with contextlib.ExitStack() as stack:
        def make(token: str | None = None, **kw: Any) -> ClientConnection:
            return stack.enter_context(connect(ws_url(server, token, **kw), open_timeout=WAIT))

        yield make


def recv(ws: ClientConnection, timeout: float = WAIT) -> dict[str, Any]:
    return orjson.loads(ws.recv(timeout=timeout))  # type: ignore[no-any-return]


def sync(ws: ClientConnection) -> list[dict[str, Any]]:
    """Every message but heartbeats that came before the answer to a ``ping`` sent now
    (messages are handled in order: what was sent before has been handled)."""
    ws.send('{"type":"ping"}')
    got = []
    while (msg := recv(ws))["type"] != "pong":
        if msg["type"] != "heartbeat":
            got.append(msg)
    return got


def subscribe(ws: ClientConnection, kind: str = "subscribe", **filters: Any
              ) -> list[dict[str, Any]]:
    ws.send(orjson.dumps({"type": kind, "filters": filters}).decode())
    return sync(ws)


def events(ws: ClientConnection, n: int) -> list[dict[str, Any]]:
    got = []
    while len(got) < n:
        msg = recv(ws)
        if msg["type"] != "heartbeat":
            assert msg["type"] == "event", msg
            got.append(msg)
    return got


def titles(msgs: list[dict[str, Any]]) -> list[str]:
    assert all(m["type"] == "event" for m in msgs), msgs
    return [m["title"] for m in msgs]


def closed_with(ws: ClientConnection) -> tuple[int | None, str | None]:
    with pytest.raises(ConnectionClosed) as info:
        while True:
            ws.recv(timeout=WAIT)
    rcvd = info.value.rcvd
    return (rcvd.code, rcvd.reason) if rcvd else (None, None)


def ev(title: str, category: str = "maritime", severity: str = "high", *,
       zone: str = "lng_terminal", module: str = "maritime_security", **extra: Any
       ) -> dict[str, Any]:
    return {"type": f"{category}_event", "category": category, "severity": severity,
            "title": title, "description": f"about {title}",
            "source": {"module": module, "device": "dev_01"},
            "location": {"lat": 51.4835, "lng": -0.0472, "zone": zone}, **extra}


def ingest(server: Server, key: str, *docs: dict[str, Any]) -> list[int]:
    with server.client(key) as c:
        r = c.post("/v1/events", content=orjson.dumps(list(docs)))
        assert r.status_code == 201, r.text
        return [d["seq"] for d in r.json()["data"]]


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def remembered(server: Server) -> int:
    """Ended connections the server keeps for their reconnect."""
    return turqoa_stream.profile(server.app).reconnects.remembered()


# ------------------------------------------------------------------ messages


def test_events_are_the_flat_documented_records_filtered_as_documented(
        server: Server, open_ws: Any) -> None:
    key = server.key("port")
    ws = open_ws(key)
    # The reference's Subscribe example, verbatim: no answer (no "subscribed" message).
    assert subscribe(ws, categories=["maritime", "perimeter", "gate"], min_severity="medium",
                     zones=["lng_terminal", "north_perimeter"],
                     source_modules=["maritime_security"]) == []
    ingest(server, key,
           ev("by zone name", zone="LNG Terminal Restricted"),       # the id's name: in
           ev("too low", severity="low"),
           ev("drone", "drone"),
           ev("other zone", "maritime", "critical", zone="berth_7"),
           ev("other module", "perimeter", "medium", zone="north_perimeter",
              module="terminal_security"),
           ev("gate", "gate", "medium", zone="north_perimeter", metadata={"lane": 3},
              requires_action=True, incident_id="inc_1", assigned_to="op_1"),
           ev("out of scope", "auth"))
    got = events(ws, 2)
    assert titles(got) == ["by zone name", "gate"]
    assert sync(ws) == []  # and nothing else
    with server.client(key) as c:
        rest = c.get(f"{BASE}/v1/events", params={"order": "asc", "category": "gate,maritime",
                                                 "severity": "high,medium"}).json()["data"]
    by_title = {r["title"]: r for r in rest}
    for msg in got:
        assert list(msg) == ["type", *RECORD_KEYS]  # flat, in the record's key order
        assert {k: v for k, v in msg.items() if k != "type"} == by_title[msg["title"]]
    assert got[0]["location"] == {"lat": 51.4835, "lng": -0.0472,
                                  "zone": "LNG Terminal Restricted"}
    assert got[1]["location"]["zone"] == "North Perimeter Sector 3"
    assert (got[1]["metadata"], got[1]["requires_action"], got[1]["incident_id"],
            got[1]["assigned_to"]) == ({"lane": 3}, True, "inc_1", "op_1")


def test_an_event_message_is_built_once_for_every_turqoa_subscriber(server: Server) -> None:
    profile = turqoa_stream.profile(server.app)
    one, other = (turqoa_stream.Connection(profile).dialect().event for _ in range(2))
    item = Item(1, {"id": "evt_1", "timestamp": "2026-04-06T10:45:00Z", "severity": "info"})
    assert item.message(one) is item.message(other)
    assert orjson.loads(item.message(one))["severity"] == "low"


def test_min_severity_update_filters_and_unsubscribe(server: Server, open_ws: Any) -> None:
    key = server.key("port")
    ws = open_ws(key, path=f"{BASE}/api/v1/events/stream")  # the heading's path too
    subscribe(ws, categories=["maritime"], min_severity="high")
    ingest(server, key, ev("info", severity="info"), ev("crit", severity="critical"),
           ev("drone", "drone", "critical"))
    assert titles(events(ws, 1)) == ["crit"]
    # The position is kept: the drone event after "crit" is judged by the new filter.
    ws.send('{"type":"update_filters","filters":{"categories":["drone"],'
            '"min_severity":"low"}}')
    ingest(server, key, ev("drone info", "drone", "info"))
    got = titles(events(ws, 2))
    assert got == ["drone", "drone info"]
    ws.send('{"type":"update_filters","filters":{"min_severity":"low"}}')
    ingest(server, key, ev("info again", severity="info"))
    info = events(ws, 1)[0]
    assert info["title"] == "info again" and info["severity"] == "low"  # info reads low
    ws.send('{"type":"unsubscribe"}')
    assert sync(ws) == []
    ingest(server, key, ev("after unsubscribe"))
    assert sync(ws) == []
    assert subscribe(ws) == []  # no filters: everything in the profile's scope
    ingest(server, key, ev("auth", "auth"), ev("all", "perimeter", "low"))
    assert titles(events(ws, 1)) == ["all"]


def test_invalid_filters_are_documented_errors_and_change_nothing(server: Server,
                                                                 open_ws: Any) -> None:
    key = server.key("port")
    ws = open_ws(key)
    subscribe(ws, categories=["maritime"])
    for filters, message in [
        ({"categories": ["unknown"]}, f"Unknown category: 'unknown'. {VALID_CATEGORIES}"),
        ({"categories": ["maritime", "Maritime"]},
         f"Unknown category: 'Maritime'. {VALID_CATEGORIES}"),
        ({"categories": "unknown"}, f"Unknown category: 'unknown'. {VALID_CATEGORIES}"),
        ({"min_severity": "info"},
         "Unknown severity: 'info'. Valid severities: low, medium, high, critical"),
        ({"min_severity": ["high"]},
         'Unknown severity: ["high"]. Valid severities: low, medium, high, critical'),
        ({"severity": "high"}, "Unknown filter: 'severity'. Valid filters: categories, "
                               "min_severity, zones, source_modules"),
        ({"zones": [7]}, "Invalid zones: must be a list of strings"),
        ({"categories": {"$ne": "x"}}, "Invalid categories: must be a list of strings"),
    ]:
        for kind in ("subscribe", "update_filters"):
            ws.send(orjson.dumps({"type": kind, "filters": filters}).decode())
            assert sync(ws) == [{"type": "error", "code": "invalid_filter",
                                 "message": message}], filters
    ws.send('{"type":"subscribe","filters":["maritime"]}')
    assert sync(ws) == [{"type": "error", "code": "invalid_filter",
                         "message": "Invalid filters: must be an object"}]
    for raw in ["not json", '{"type":"dance"}']:
        ws.send(raw)
        err = sync(ws)[0]
        assert err["type"] == "error" and err["code"] == "invalid_message", err
    # The first subscription is still the one in force.
    ingest(server, key, ev("drone", "drone"), ev("maritime"))
    assert titles(events(ws, 1)) == ["maritime"]


def test_a_connection_that_never_subscribes_gets_heartbeats_only(make_server: Any) -> None:
    server = make_server(stream_heartbeat_seconds=0.2)
    key = server.key("port")
    with connect(ws_url(server, key), open_timeout=WAIT) as ws:
        ingest(server, key, ev("before any subscribe"))
        beat = recv(ws)
        assert list(beat) == ["type", "timestamp", "events_sent", "connection_uptime_seconds"]
        assert beat["type"] == "heartbeat" and beat["events_sent"] == 0
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", beat["timestamp"]), beat
        assert isinstance(beat["connection_uptime_seconds"], int)
        assert recv(ws)["type"] == "heartbeat"  # still nothing but heartbeats
        subscribe(ws)
        ingest(server, key, ev("after"))
        assert titles(events(ws, 1)) == ["after"]
        while (beat := recv(ws))["type"] != "heartbeat":
            pass
        assert beat["events_sent"] == 1


# ------------------------------------------------------------------ auth and limits


def test_auth_by_token_header_or_first_message(server: Server, open_ws: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    key = server.key("port")
    ws = open_ws()
    ws.send(orjson.dumps({"type": "auth", "token": key}).decode())
    subscribe(ws)
    with connect(ws_url(server), open_timeout=WAIT,
                 additional_headers={"Authorization": f"Bearer {key}"}) as by_header:
        subscribe(by_header)
        ingest(server, key, ev("both"))
        assert titles(events(ws, 1)) == titles(events(by_header, 1)) == ["both"]
    assert closed_with(open_ws("tqa_live_not_a_key"))[0] == 4401
    silent = open_ws()
    silent.send('{"type":"subscribe","filters":{}}')  # not an auth message
    assert closed_with(silent)[0] == 4401
    assert closed_with(open_ws(server.key("port", "events:write")))[0] == 4403
    monkeypatch.setattr(stream_api, "AUTH_SECONDS", 0.2)
    code, reason = closed_with(open_ws())  # says nothing
    assert code == 4408 and reason and "auth" in reason


def test_at_most_the_per_key_limit_of_streams_native_and_turqoa_together(
        make_server: Any) -> None:
    server = make_server(stream_max_connections_per_key=2)
    key, other = server.key("port"), server.key("port")
    with contextlib.ExitStack() as stack:
        held = [stack.enter_context(connect(ws_url(server, key, path=path), open_timeout=WAIT))
                for path in (f"{BASE}/v1/events/stream", "/v1/events/stream")]
        for ws in held:
            sync(ws)
        with connect(ws_url(server, key), open_timeout=WAIT) as extra:
            code, reason = closed_with(extra)
            assert code == 4429 and reason and "more than 2 streams" in reason
        with connect(ws_url(server, other), open_timeout=WAIT) as ws:  # another key: fine
            assert subscribe(ws) == []


def test_the_root_mount_serves_the_stream_under_api(make_server: Any,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="auditstream"):
        server = make_server(compat_root="turqoa")
    # The start-up log says the root keeps the native stream (turqoa's is under its prefix).
    assert "WebSocket /v1/events/stream" in caplog.text
    key = server.key("port")
    with connect(ws_url(server, key, path="/api/v1/events/stream"), open_timeout=WAIT) as ws, \
            connect(ws_url(server, key, path="/v1/events/stream"), open_timeout=WAIT) as native:
        subscribe(ws)
        native.send('{"type":"subscribe"}')
        assert recv(native)["type"] == "subscribed"  # /v1/events/stream stays native
        ingest(server, key, ev("flat"))
        assert titles(events(ws, 1)) == ["flat"]
        assert recv(native)["event"]["title"] == "flat"


# ------------------------------------------------------------------ the reconnect buffer


def test_a_reconnect_gets_what_it_missed_then_goes_live(server: Server, open_ws: Any) -> None:
    key = server.key("port")
    filters = {"categories": ["maritime", "gate"], "zones": ["lng_terminal"]}
    first = open_ws(key)
    subscribe(first, **filters)
    ingest(server, key, ev("seen"))
    assert titles(events(first, 1)) == ["seen"]
    first.close()
    wait_for(lambda: remembered(server) == 1)
    ingest(server, key, ev("missed 1"), ev("no match", "drone"), ev("missed 2", "gate"))
    again = open_ws(key)
    # The same filters in another order are the same subscription.
    got = subscribe(again, zones=["lng_terminal"], categories=["gate", "maritime"])
    ingest(server, key, ev("live"))
    got += events(again, 3 - len(got))
    assert titles(got) == ["missed 1", "missed 2", "live"]
    assert remembered(server) == 0  # taken by this reconnect
    assert sync(again) == []
    # A second new connection (the first reconnect is still open) starts live.
    third = open_ws(key)
    assert subscribe(third, **filters) == []


def test_no_replay_for_other_filters_another_key_or_after_the_window(
        server: Server, open_ws: Any) -> None:
    key, other_key = server.key("port"), server.key("port")
    reconnects = turqoa_stream.profile(server.app).reconnects
    now = [1000.0]
    reconnects.clock = lambda: now[0]
    first = open_ws(key)
    subscribe(first, categories=["maritime"])
    first.close()
    wait_for(lambda: remembered(server) == 1)
    ingest(server, key, ev("missed"))
    assert subscribe(open_ws(other_key), categories=["maritime"]) == []
    assert subscribe(open_ws(key), categories=["maritime", "gate"]) == []
    assert subscribe(open_ws(key)) == []
    assert remembered(server) == 1  # none of them was this connection's reconnect
    now[0] += turqoa_stream.GRACE_SECONDS + 1
    assert subscribe(open_ws(key), categories=["maritime"]) == []
    assert remembered(server) == 0


def test_a_reconnect_replays_at_most_the_newest_buffered_messages(
        server: Server, open_ws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(turqoa_stream, "BUFFER_MESSAGES", 5)
    key = server.key("port")
    first = open_ws(key)
    subscribe(first, categories=["maritime"])
    first.close()
    wait_for(lambda: remembered(server) == 1)
    for i in range(12):
        ingest(server, key, ev(f"m{i}"), ev(f"d{i}", "drone"))
    again = open_ws(key)
    got = subscribe(again, categories=["maritime"])
    got += events(again, 5 - len(got))
    assert titles(got) == [f"m{i}" for i in range(7, 12)]
    ingest(server, key, ev("live"))
    assert titles(events(again, 1)) == ["live"]


def test_reconnects_each_ended_connection_resumes_once_from_the_earliest_position(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    r = turqoa_stream.Reconnects(tmp_path, clock=lambda: now[0])
    f, g = (("categories", ("maritime",)),), ()
    r.left("key", f, 100)
    r.left("key", f, 90)  # two connections with the same filters ended together
    r.left("key", g, 50)
    assert r.remembered() == 3
    assert r.resume("key", f) == 90 and r.resume("key", f) == 90  # neither misses
    assert r.resume("key", f) is None  # each ended connection resumes once
    assert r.resume("other key", g) is None
    # Another process of the same server shares the directory.
    other = turqoa_stream.Reconnects(tmp_path, clock=lambda: now[0])
    other.left("key", f, 70)
    now[0] += turqoa_stream.GRACE_SECONDS
    assert r.resume("key", f) == 70
    now[0] += 0.5
    assert r.resume("key", g) is None  # too late
    assert r.remembered() == 0 and not list(tmp_path.iterdir())
    for i in range(40):
        r.left("key", f, i)
    assert r.resume("key", f) == 40 - turqoa_stream.MAX_PER_FILTER  # the newest 16 kept
    monkeypatch.setattr(turqoa_stream, "MAX_REMEMBERED", 3)
    for i in range(5):
        now[0] += 2
        r.left(f"key{i}", f, i)
    assert r.remembered() == 3  # the oldest were forgotten
    assert r.resume("key0", f) is None and r.resume("key1", f) is None
    assert r.resume("key4", f) == 4
    now[0] += turqoa_stream.GRACE_SECONDS + 1
    r.left("key5", f, 5)  # every entry older than the window goes
    assert r.remembered() == 1 and len(list(tmp_path.iterdir())) == 1


# ------------------------------------------------------------------ the seed's clients

#: The reference's "Python WebSocket Client", unchanged (its indentation restored).
PYTHON_CLIENT = r'''
import asyncio
import json
import websockets

async def listen_events():
    uri = "wss://api.turqoa.com/v1/events/stream?token=tqa_live_..."
    async with websockets.connect(uri) as ws:
        # Subscribe to maritime events
        await ws.send(json.dumps({
            "type": "subscribe",
            "filters": {
                "categories": ["maritime"],
                "min_severity": "high",
            },
        }))

        async for message in ws:
            event = json.loads(message)
            if event.get("type") == "event":
                print(f"[{event['severity']}] {event['title']}")
                print(f" {event['description']}")
            elif event.get("type") == "heartbeat":
                pass # connection keepalive
            elif event.get("type") == "error":
                print(f"Error: {event['message']}")

asyncio.run(listen_events())
'''

#: The reference's JavaScript client ("Authentication"), unchanged (indentation restored).
NODE_CLIENT = r'''
const ws = new WebSocket(
  "wss://api.turqoa.com/v1/events/stream?token=tqa_live_..."
);

ws.onopen = () => {
  console.log("Connected to event stream");
  // Subscribe to specific categories
  ws.send(
    JSON.stringify({
      type: "subscribe",
      filters: {
        categories: ["maritime", "perimeter"],
        min_severity: "medium",
      },
    })
  );
};

ws.onmessage = (msg) => {
  const event = JSON.parse(msg.data);
  console.log(`[${event.severity}] ${event.title}`);
};

ws.onerror = (err) => {
  console.error("WebSocket error:", err);
};

ws.onclose = (e) => {
  console.log(`Connection closed: ${e.code} ${e.reason}`);
  // Implement reconnection logic
};
'''

#: Preloaded (``node -r``): where Node has no global WebSocket (before 22 without
#: ``--experimental-websocket``), the ``ws`` package plays it, if installed.
NODE_SHIM = 'if (typeof WebSocket !== "function") globalThis.WebSocket = require("ws");\n'


def lines_of(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def test_the_clients_here_are_the_seeds_own() -> None:
    if not SEED.exists():
        pytest.skip(f"the seed is not at {SEED}")
    seed = lines_of(SEED.read_text())
    for client in (PYTHON_CLIENT, NODE_CLIENT):
        mine = lines_of(client)
        assert any(seed[i:i + len(mine)] == mine for i in range(len(seed))), mine[:3]


class Output:
    """A child process's stdout, line by line, read by a thread (so reads can time out)."""

    def __init__(self, proc: subprocess.Popen[str]):
        self.proc, self.lines = proc, queue.Queue[str]()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def until(self, wanted: str) -> list[str]:
        """Every line up to and including ``wanted``."""
        seen = []
        while True:
            try:
                line = self.lines.get(timeout=WAIT)
            except queue.Empty:
                ended = self.proc.poll() is not None and self.proc.stderr is not None
                error = self.proc.stderr.read() if ended else ""  # type: ignore[union-attr]
                raise AssertionError(f"no {wanted!r} after {seen} {error}") from None
            seen.append(line)
            if line == wanted:
                return seen


@contextlib.contextmanager
def run(*command: str) -> Iterator[Output]:
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        yield Output(proc)
    finally:
        proc.kill()
        proc.wait(timeout=WAIT)


def subscribed(server: Server, n: int = 1) -> None:
    """Wait until ``n`` subscriptions are live (the protocol does not answer subscribe)."""
    hub = server.app.state.services.hub
    wait_for(lambda: hub.subscriptions >= n)


def test_the_seeds_python_client(server: Server, tmp_path: Path) -> None:
    key = server.key("port")
    client = tmp_path / "client.py"
    client.write_text(PYTHON_CLIENT.replace(SEED_URL, ws_url(server, key)))
    with run(sys.executable, "-u", str(client)) as out:
        subscribed(server)
        ingest(server, key, ev("AIS gap detected for MV Nordic Star"),
               ev("medium", severity="medium"), ev("perimeter", "perimeter", "critical"),
               ev("critical", severity="critical"))
        assert out.until(" about critical") == [
            "[high] AIS gap detected for MV Nordic Star",
            " about AIS gap detected for MV Nordic Star",
            "[critical] critical", " about critical"]


def node_command(tmp_path: Path) -> list[str] | None:
    """``node`` with a global WebSocket (Node 22+; 20.10+ with a flag; or ``ws``)."""
    node = shutil.which("node")
    if node is None:
        return None
    shim = tmp_path / "shim.cjs"
    shim.write_text(NODE_SHIM)
    check = "process.exit(typeof WebSocket === 'function' ? 0 : 1)"
    for flags in ([], ["--experimental-websocket"]):
        command = [node, *flags, "-r", str(shim)]
        if subprocess.run([*command, "-e", check], capture_output=True,
                          timeout=WAIT).returncode == 0:
            return command
    return None


def test_the_seeds_node_client(server: Server, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    node = node_command(tmp_path)
    if node is None:
        pytest.skip("no Node.js with a WebSocket here (Node >= 22, Node >= 20.10 with "
                    "--experimental-websocket, or Node with the ws package); .ci/run "
                    "installs Node where it is missing")
    monkeypatch.setattr(stream_api, "RECHECK_SECONDS", 0.1)
    key = server.key("port")
    client = tmp_path / "client.js"
    client.write_text(NODE_CLIENT.replace(SEED_URL, ws_url(server, key)))
    with run(*node, str(client)) as out:
        assert out.until("Connected to event stream") == ["Connected to event stream"]
        subscribed(server)
        ingest(server, key, ev("AIS gap"), ev("low", severity="low"),
               ev("drone", "drone", "critical"), ev("motion", "perimeter", "medium"))
        assert out.until("[medium] motion") == ["[high] AIS gap", "[medium] motion"]
        # The server closes the stream of a revoked key: onclose shows code and reason.
        server.catalog.revoke_key(next(k.id for k in server.catalog.keys("port")))
        closed = out.until("Connection closed: 4401 the credential was revoked")
        assert all(line.startswith("[undefined]") for line in closed[:-1])  # heartbeats
