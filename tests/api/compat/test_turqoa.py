"""The turqoa compat profile against a real server: every documented request example of
``turqoa-events-api`` (curl, Python requests, Node fetch), its fields, defaults and errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from auditstream.model.times import US, format_us, now_us, parse_time
from conftest import Server

BASE = "/compat/turqoa"
RECORD_KEYS = ["id", "timestamp", "category", "severity", "source_module", "source_device",
               "title", "description", "location", "metadata", "requires_action",
               "assigned_to", "incident_id"]

#: The two records of the seed's response example, exactly as documented.
SEED_RECORDS: list[dict[str, Any]] = [
    {
        "id": "evt_20260406_1045_001",
        "timestamp": "2026-04-06T10:45:00Z",
        "category": "maritime",
        "severity": "high",
        "source_module": "maritime_security",
        "source_device": "ais_receiver_01",
        "title": "AIS gap detected for MV Nordic Star",
        "description": "Vessel MMSI 123456789 lost AIS signal for 8 minutes while in "
                       "restricted zone 'LNG Terminal'.",
        "location": {"lat": 51.4835, "lng": -0.0472, "zone": "LNG Terminal Restricted"},
        "metadata": {"mmsi": 123456789, "vessel_name": "MV Nordic Star",
                     "gap_duration_seconds": 480, "risk_score": 62,
                     "last_known_speed_knots": 3.2, "last_known_heading": 195},
        "requires_action": True,
        "assigned_to": "maritime_operator_01",
        "incident_id": "inc_20260406_003",
    },
    {
        "id": "evt_20260406_1042_005",
        "timestamp": "2026-04-06T10:42:15Z",
        "category": "perimeter",
        "severity": "high",
        "source_module": "terminal_security",
        "source_device": "camera_north_07",
        "title": "Motion detected in restricted zone",
        "description": "Unidentified movement detected by camera_north_07 in sector North-3.",
        "location": {"lat": 51.489, "lng": -0.051, "zone": "North Perimeter Sector 3"},
        "metadata": {"camera_id": "camera_north_07", "confidence": 0.87,
                     "object_class": "person", "drone_dispatched": True,
                     "drone_mission_id": "msn_20260406_012"},
        "requires_action": True,
        "assigned_to": "perimeter_operator_02",
        "incident_id": None,
    },
]


def to_canonical(rec: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A turqoa record as a producer sends it to the native ingest API."""
    ev = {k: v for k, v in rec.items()
          if k not in ("source_module", "source_device", "location") and v is not None}
    ev["type"] = extra.pop("type", "ais_gap")
    ev["source"] = {"module": rec["source_module"], "device": rec["source_device"]}
    ev["location"] = dict(rec["location"], **extra.pop("location", {}))
    ev.update(extra)
    return ev


def ago(hours: float) -> str:
    return format_us(now_us() - int(hours * 3600 * US))


def ev(hours: float, category: str = "maritime", severity: str = "high", *,
       title: str = "Vessel event", description: str = "", zone: str = "berth_7",
       module: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "type": f"{category}_event", "timestamp": ago(hours), "category": category,
        "severity": severity, "title": title, "description": description,
        "source": {"module": module or f"{category}_security", "device": "dev_01"},
        "location": {"lat": 51.48, "lng": -0.04, "zone": zone}, **extra,
    }


def ingest(server: Server, key: str, events: list[dict[str, Any]]) -> None:
    r = server.client(key).post("/v1/events", content=orjson.dumps(events))
    assert r.status_code == 201, r.text


def bearer(server: Server, key: str) -> httpx.Client:
    """Headers exactly as the seed's examples send them."""
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"},
                        timeout=30)


def get(c: httpx.Client, query: str = "", **params: Any) -> dict[str, Any]:
    r = c.get(f"{BASE}/v1/events{query}", params=params or None)
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    assert list(doc) == ["data", "meta", "pagination"]
    for rec in doc["data"]:
        assert list(rec) == RECORD_KEYS
        assert list(rec["location"]) == ["lat", "lng", "zone"]
    return doc


def assert_error(r: httpx.Response, status: int, code: str, message: str | None = None) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert list(body) == ["type", "code", "message"] and body["type"] == "error", body
    assert body["code"] == code, body
    if message is not None:
        assert body["message"] == message


def test_seed_curl_response_shape_and_defaults(server: Server) -> None:
    key = server.key("port")
    ingest(server, key,
           [ev(h / 2 + 0.1) for h in range(30)]                    # maritime/high, < 24 h
           + [ev(1, severity="medium"), ev(2, "perimeter")]       # other severity / category
           + [ev(30), ev(48)])                                    # older than 24 h
    c = bearer(server, key)
    # curl ".../v1/events?severity=high&category=maritime&per_page=25" -H "Authorization: Bearer"
    before = now_us()
    doc = get(c, "?severity=high&category=maritime&per_page=25")
    assert doc["pagination"] == {"page": 1, "per_page": 25, "total_items": 30, "total_pages": 2,
                                 "has_next": True, "has_previous": False}
    assert len(doc["data"]) == 25
    assert all((r["category"], r["severity"]) == ("maritime", "high") for r in doc["data"])
    stamps = [r["timestamp"] for r in doc["data"]]
    assert stamps == sorted(stamps, reverse=True)  # default sort=timestamp, order=desc
    meta = doc["meta"]
    assert meta["request_id"].startswith("req_") and len(meta["request_id"]) > 4
    assert abs(parse_time(meta["timestamp"]) - before) < 5 * US
    assert get(c, "?severity=high&category=maritime&per_page=25")["meta"]["request_id"] != \
        meta["request_id"]
    page2 = get(c, "?severity=high&category=maritime&per_page=25&page=2")
    assert page2["pagination"] == {"page": 2, "per_page": 25, "total_items": 30,
                                   "total_pages": 2, "has_next": False, "has_previous": True}
    assert len(page2["data"]) == 5
    assert not {r["id"] for r in page2["data"]} & {r["id"] for r in doc["data"]}
    # Defaults: last 24 h (start_date), now (end_date), page 1, per_page 50.
    doc = get(c)
    assert doc["pagination"] == {"page": 1, "per_page": 50, "total_items": 32, "total_pages": 1,
                                 "has_next": False, "has_previous": False}
    assert get(c, "?page=3")["data"] == []
    assert get(c, "?page=3")["pagination"]["total_items"] == 32
    empty = get(bearer(server, server.key("other")))
    assert empty["data"] == [] and empty["pagination"]["total_pages"] == 0


def test_start_date_defaults_to_24_hours_before_end(server: Server) -> None:
    key = server.key("port")
    ingest(server, key, [ev(23.9, title="inside"), ev(24.1, title="outside"),
                         ev(-1, title="future")])
    c = bearer(server, key)
    assert [r["title"] for r in get(c)["data"]] == ["inside"]
    assert [r["title"] for r in get(c, start_date=ago(25))["data"]] == ["inside", "outside"]
    # An explicit end_date moves the default start with it: the 24 h before it.
    assert [r["title"] for r in get(c, end_date=ago(-2))["data"]] == ["future"]
    assert [r["title"] for r in get(c, end_date=ago(-2), start_date=ago(24))["data"]] == [
        "future", "inside"]
    assert [r["title"] for r in get(c, end_date=ago(23.95))["data"]] == ["outside"]
    # A start after the end selects nothing; it is not an error.
    assert get(c, start_date=ago(1), end_date=ago(2))["data"] == []


def test_seed_examples_date_window_search_zone_and_combined(server: Server) -> None:
    key = server.key("port")
    seed = [to_canonical(SEED_RECORDS[0], location={"zone_id": "lng_terminal"}),
            to_canonical(SEED_RECORDS[1], type="motion_detected")]
    ingest(server, key, seed + [
        # Same day, outside the 08:00-12:00 window.
        {"type": "ais_gap", "timestamp": "2026-04-06T13:00:00Z", "category": "maritime",
         "severity": "critical", "title": "AIS gap detected for MT Sea Falcon",
         "location": {"zone": "lng_terminal"}},
        {"type": "zone_entry", "timestamp": "2026-04-06T07:00:00Z", "category": "maritime",
         "severity": "critical", "title": "MV Nordic Star entered LNG Terminal Restricted",
         "location": {"zone": "berth_7"}},
    ])
    c = bearer(server, key)
    # curl ".../v1/events?start_date=2026-04-06T08:00:00Z&end_date=2026-04-06T12:00:00Z"
    doc = get(c, "?start_date=2026-04-06T08:00:00Z&end_date=2026-04-06T12:00:00Z")
    assert doc["data"] == SEED_RECORDS  # the documented records, field for field
    # A date-only end_date means through the end of that day.
    doc = get(c, "?start_date=2026-04-06&end_date=2026-04-06")
    assert len(doc["data"]) == 4
    # curl ".../v1/events?search=Nordic+Star" (over the window that holds the data)
    win = "&start_date=2026-04-01T00:00:00Z&end_date=2026-04-07T00:00:00Z"
    doc = get(c, "?search=Nordic+Star" + win)
    assert [r["id"] for r in doc["data"]][0] == "evt_20260406_1045_001"
    assert all("Nordic Star" in (r["title"] + (r["description"] or "")) for r in doc["data"])
    assert len(doc["data"]) == 2
    assert [r["id"] for r in get(c, '?search="Star Nordic"' + win)["data"]] == []
    assert len(get(c, "?search=sector+North-3" + win)["data"]) == 1
    assert len(get(c, "?search=Falc*" + win)["data"]) == 1
    # curl ".../v1/events?category=maritime&severity=critical&zone=lng_terminal
    #       &start_date=2026-04-06T00:00:00Z" (end_date defaults to now)
    doc = get(c, "?category=maritime&severity=critical&zone=lng_terminal"
                 "&start_date=2026-04-06T00:00:00Z")
    assert [r["title"] for r in doc["data"]] == ["AIS gap detected for MT Sea Falcon"]
    # Zone by id or by name, and lists of them.
    assert [r["id"] for r in get(c, "?zone=lng_terminal&severity=high" + win)["data"]] == [
        "evt_20260406_1045_001"]
    # The name also finds the events stored under its id (the zone directory).
    assert [r["title"] for r in get(c, "?zone=LNG Terminal Restricted" + win)["data"]] == [
        "AIS gap detected for MT Sea Falcon", "AIS gap detected for MV Nordic Star"]
    assert len(get(c, "?zone=North Perimeter Sector 3,berth_7" + win)["data"]) == 2
    assert get(c, "?zone=nowhere" + win)["data"] == []


def test_filters_lists_and_flags(server: Server) -> None:
    key = server.key("port")
    ingest(server, key, [
        ev(1, "maritime", "high", requires_action=True, incident_id="inc_1"),
        ev(2, "perimeter", "critical", requires_action=True, module="terminal_security"),
        ev(3, "gate", "low", requires_action=False),
        ev(4, "drone", "medium", module="drone_ops"),  # no requires_action at all
        ev(5, "system", "info"),
    ])
    c = bearer(server, key)

    def cats(query: str) -> list[str]:
        return [r["category"] for r in get(c, query)["data"]]

    # curl ".../v1/events?category=maritime,perimeter" and "?severity=high,critical"
    assert cats("?category=maritime,perimeter") == ["maritime", "perimeter"]
    assert cats("?severity=high,critical") == ["maritime", "perimeter"]
    assert cats("?source_module=terminal_security,drone_ops") == ["perimeter", "drone"]
    assert cats("?requires_action=true") == ["maritime", "perimeter"]
    assert cats("?requires_action=false") == ["gate", "drone", "system"]
    assert cats("?incident_id=inc_1") == ["maritime"]
    assert cats("?category=system") == ["system"]
    rec = get(c, "?category=drone")["data"][0]
    assert rec["requires_action"] is False and rec["incident_id"] is None
    assert rec["assigned_to"] is None and rec["metadata"] == {}
    # sort and order
    assert cats("?sort=severity") == ["perimeter", "maritime", "drone", "gate", "system"]
    assert cats("?sort=severity&order=asc") == ["system", "gate", "drone", "maritime",
                                                "perimeter"]
    assert cats("?order=asc") == ["system", "drone", "gate", "perimeter", "maritime"]
    assert cats("?sort=severity&per_page=2&page=2") == ["drone", "gate"]


def test_python_and_node_examples(server: Server) -> None:
    key = server.key("port")
    ingest(server, key, [ev(1, title="recent high", incident_id="inc_9"),
                         ev(5, "perimeter", title="older high"),
                         ev(2, severity="low", title="recent low"), ev(7, title="too old")])
    # Python: requests.get(f"{base_url}/events", headers={...}, params={...})
    base_url = f"{server.url}{BASE}/v1"
    # datetime.utcnow() in the seed; the same naive-UTC string without the deprecated call.
    start = (datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=6)).isoformat() + "Z"
    response = httpx.get(f"{base_url}/events", headers={"Authorization": f"Bearer {key}"},
                         params={"severity": "high", "start_date": start, "per_page": 50})
    assert response.status_code == 200
    events = response.json()["data"]
    lines = []
    for event in events:
        lines.append(f"[{event['severity'].upper()}] {event['title']}")
        lines.append(f" Category: {event['category']} Time: {event['timestamp']}")
        if event.get("incident_id"):
            lines.append(f" Incident: {event['incident_id']}")
    assert lines[0] == "[HIGH] recent high" and " Incident: inc_9" in lines
    assert [e["title"] for e in events] == ["recent high", "older high"]
    # Node: fetch(`${baseUrl}/events?` + new URLSearchParams({...}), {headers: {...}})
    six_hours_ago = datetime.fromtimestamp(now_us() / US - 6 * 3600, UTC)
    iso = six_hours_ago.strftime("%Y-%m-%dT%H:%M:%S.") + f"{six_hours_ago.microsecond // 1000:03d}Z"
    qs = httpx.QueryParams({"severity": "high", "start_date": iso, "per_page": "50"})
    response = httpx.get(f"{base_url}/events?{qs}", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    assert [e["title"] for e in response.json()["data"]] == ["recent high", "older high"]


def test_errors(server: Server) -> None:
    key = server.key("port")
    c = bearer(server, key)
    url = f"{BASE}/v1/events"
    assert_error(c.get(url, params={"category": "unknown"}), 400, "invalid_filter",
                 "Unknown category: 'unknown'. Valid categories: gate, perimeter, maritime, "
                 "drone, system, decision")
    assert_error(c.get(url, params={"category": "maritime,unknown"}), 400, "invalid_filter",
                 "Unknown category: 'unknown'. Valid categories: gate, perimeter, maritime, "
                 "drone, system, decision")
    assert_error(c.get(url, params={"severity": "info"}), 400, "invalid_filter",
                 "Unknown severity: 'info'. Valid severities: low, medium, high, critical")
    for params in ({"requires_action": "maybe"}, {"start_date": "yesterday"},
                   {"end_date": "2026-13-01"}):
        assert_error(c.get(url, params=params), 400, "invalid_filter")
    # per_page above the documented maximum is refused, not clamped.
    assert get(c, per_page=200)["pagination"]["per_page"] == 200
    assert_error(c.get(url, params={"per_page": 201}), 400, "invalid_parameter",
                 "Invalid per_page: must be between 1 and 200, got 201")
    for params in ({"per_page": 0}, {"per_page": "x"}, {"page": 0}, {"page": "-1"},
                   {"sort": "title"}, {"order": "up"}, {"severity_min": "high"}):
        assert_error(c.get(url, params=params), 400, "invalid_parameter")
    r = httpx.get(f"{server.url}{url}")
    assert_error(r, 401, "unauthorized")
    assert r.headers["www-authenticate"] == "Bearer"
    assert_error(httpx.get(f"{server.url}{url}", headers={"Authorization": "Bearer nope"}),
                 401, "unauthorized")
    assert_error(httpx.get(f"{server.url}{url}", headers={"Authorization": "Basic eDp5"}),
                 401, "unauthorized")
    assert_error(bearer(server, server.key("port", "events:write")).get(url), 403, "forbidden")
    assert_error(c.get(f"{BASE}/v1/nothing"), 404, "not_found")


def test_mounted_at_root_only_where_nothing_native_is(make_server: Any) -> None:
    srv = make_server(compat_root="turqoa")
    key = srv.key("port")
    ingest(srv, key, [ev(1)])
    c = bearer(srv, key)
    # The reference's other spelling is free at the root: turqoa serves it there.
    r = c.get("/api/v1/events?severity=high&category=maritime&per_page=25")
    assert r.status_code == 200 and len(r.json()["data"]) == 1
    assert list(r.json()["data"][0]) == RECORD_KEYS
    assert_error(c.get("/api/v1/events?category=unknown"), 400, "invalid_filter")
    # GET /v1/events stays the native route, which is what /openapi.json describes.
    r = c.get("/v1/events?severity=high&category=maritime")
    assert r.status_code == 200 and list(r.json()) == ["data", "next_cursor", "has_more"]
    assert r.json()["data"][0]["type"] == "maritime_event"
    r = c.get("/v1/events?limit=0")
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    paths = c.get("/openapi.json").json()["paths"]
    assert "/api/v1/events" in paths and "/compat/turqoa/v1/events" in paths
    assert paths["/v1/events"]["get"]["summary"].startswith("List events")
    # The prefixed profile is unchanged.
    assert get(c, "?severity=high")["data"]


def test_documented_defaults_all_mean_no_filter(server: Server) -> None:
    key = server.key("port")
    ingest(server, key, [ev(1, "maritime", "high"), ev(2, "perimeter", "low", module="cams")])
    c = bearer(server, key)
    every = [r["id"] for r in get(c)["data"]]
    assert len(every) == 2
    for params in ({"category": "all"}, {"severity": "all"}, {"source_module": "all"},
                   {"category": "all", "severity": "all", "source_module": "all"}):
        assert [r["id"] for r in get(c, **params)["data"]] == every, params


def test_served_at_api_v1_events_too(server: Server) -> None:
    key = server.key("port")
    ingest(server, key, [ev(1), ev(2, "perimeter")])
    c = bearer(server, key)
    # GET /api/v1/events is the reference's heading; its examples use /v1/events.
    r = c.get(f"{BASE}/api/v1/events", params={"category": "perimeter"})
    assert r.status_code == 200, r.text
    assert [x["category"] for x in r.json()["data"]] == ["perimeter"]
    assert list(r.json()) == ["data", "meta", "pagination"]
    assert_error(c.get(f"{BASE}/api/v1/events", params={"page": 0}), 400, "invalid_parameter")


def test_zone_by_name_or_id_whichever_was_stored(server: Server) -> None:
    key = server.key("port")
    ingest(server, key, [
        ev(1, title="stored by id", zone="lng_terminal"),               # as the demo stores
        ev(2, title="stored by name", zone="North Perimeter Sector 3"),  # as the seed shows
        ev(3, title="unknown zone", zone="quay_9"),
    ])
    c = bearer(server, key)

    def titles(zone: str) -> list[str]:
        return [r["title"] for r in get(c, zone=zone)["data"]]

    assert titles("lng_terminal") == ["stored by id"]
    assert titles("LNG Terminal Restricted") == ["stored by id"]
    assert titles("north_perimeter") == ["stored by name"]
    assert titles("North Perimeter Sector 3") == ["stored by name"]
    assert titles("quay_9") == ["unknown zone"]
    assert titles("LNG Terminal Restricted,north_perimeter") == ["stored by id",
                                                                 "stored by name"]
    # Records show the zone's name, as the reference's records do.
    assert [r["location"]["zone"] for r in get(c)["data"]] == [
        "LNG Terminal Restricted", "North Perimeter Sector 3", "quay_9"]


def test_zone_directory_is_a_setting(make_server: Any) -> None:
    srv = make_server(compat_turqoa_zones="q9=Quay 9 Tankers; lng_terminal=LNG Jetty")
    key = srv.key("port")
    ingest(srv, key, [ev(1, zone="q9"), ev(2, zone="lng_terminal")])
    c = bearer(srv, key)
    assert [r["location"]["zone"] for r in get(c, zone="Quay 9 Tankers")["data"]] == [
        "Quay 9 Tankers"]
    assert [r["location"]["zone"] for r in get(c, zone="lng_terminal")["data"]] == [
        "LNG Jetty"]
    assert get(c, zone="LNG Terminal Restricted")["data"] == []


def test_values_outside_the_reference_are_mapped_and_filterable(make_server: Any) -> None:
    srv = make_server(compat_turqoa_scope="")  # the whole stream, to see the mapping
    key = srv.key("port")
    ingest(srv, key, [ev(1, "maritime", "info", title="info"),
                      ev(2, "auth", "high", title="auth"),
                      {"type": "llm.call", "timestamp": ago(3), "category": "llm",
                       "title": "llm"},
                      {"type": "login", "timestamp": ago(4), "title": "no category"}])
    c = bearer(srv, key)
    recs = {r["title"]: r for r in get(c)["data"]}
    assert {t: (r["category"], r["severity"]) for t, r in recs.items()} == {
        "info": ("maritime", "low"), "auth": ("system", "high"),
        "llm": ("system", "low"), "no category": ("system", "low")}
    assert [r["title"] for r in get(c, severity="low")["data"]] == ["info", "llm",
                                                                    "no category"]
    assert [r["title"] for r in get(c, category="system")["data"]] == ["auth", "llm",
                                                                       "no category"]
    assert [r["title"] for r in get(c, category="maritime")["data"]] == ["info"]
    # The same values the issue found refused are still refused: they are never shown.
    assert_error(c.get(f"{BASE}/v1/events", params={"severity": "info"}), 400, "invalid_filter")
    assert_error(c.get(f"{BASE}/v1/events", params={"category": "auth"}), 400, "invalid_filter")


def test_default_scope_is_the_references_categories(server: Server) -> None:
    key = server.key("port")
    ingest(server, key, [ev(1, "maritime", "info", title="port"),
                         ev(2, "auth", "high", title="login"),
                         {"type": "llm.call", "timestamp": ago(3), "category": "llm"}])
    c = bearer(server, key)
    doc = get(c)
    assert [(r["title"], r["severity"]) for r in doc["data"]] == [("port", "low")]
    assert doc["pagination"]["total_items"] == 1


def test_huge_numbers_are_400s(server: Server) -> None:
    c = bearer(server, server.key("port"))
    url = f"{BASE}/v1/events"
    huge = "1" + "0" * 30
    for params in ({"page": huge}, {"per_page": huge}, {"page": "-" + huge},
                   {"page": "1" + "0" * 5000}, {"page": "1e3"}):
        assert_error(c.get(url, params=params), 400, "invalid_parameter")
    for params in ({"start_date": huge}, {"end_date": "1" + "0" * 400},
                   {"start_date": "9" * 5000}, {"end_date": "-" + huge}):
        assert_error(c.get(url, params=params), 400, "invalid_filter")


def test_deep_pages_are_refused_past_the_documented_depth(server: Server) -> None:
    from auditstream.api.compat import turqoa

    key = server.key("port")
    ingest(server, key, [ev(1)])
    c = bearer(server, key)
    last = turqoa.MAX_DEPTH // 200
    doc = get(c, per_page=200, page=last, sort="severity")
    assert doc["data"] == [] and doc["pagination"]["page"] == last
    r = c.get(f"{BASE}/v1/events", params={"per_page": 200, "page": last + 1})
    assert_error(r, 400, "invalid_parameter")
    assert str(turqoa.MAX_DEPTH) in r.json()["message"] and "start_date" in r.json()["message"]


def test_severity_pages_are_the_stores_severity_order(server: Server) -> None:
    """Pages sorted by severity are walked one severity at a time (so an index serves
    every read); walked to the end they are exactly the native API's severity order,
    ties on the timestamp included, in both directions."""
    key = server.key("port")
    sevs = ["info", "low", "medium", "high", "critical"]
    stamp = ago(2)
    ingest(server, key, [ev(1 + (i % 7) / 10, "maritime", sevs[i % 5], title=f"e{i}")
                         for i in range(40)]
           + [dict(ev(1, "gate", "high", title=f"tie{i}"), timestamp=stamp) for i in range(6)])
    c = bearer(server, key)
    native = server.client(key)
    for order in ("desc", "asc"):
        expected: list[str] = []
        cursor = None
        while True:
            r = native.get("/v1/events", params={"sort": "severity", "order": order,
                                                 "limit": 7, **({"cursor": cursor} if cursor
                                                                 else {})}).json()
            expected += [e["id"] for e in r["data"]]
            if not (cursor := r["next_cursor"]):
                break
        for per_page in (1, 3, 7, 46, 50):
            got: list[str] = []
            page = 1
            while True:
                doc = get(c, sort="severity", order=order, per_page=per_page, page=page)
                got += [rec["id"] for rec in doc["data"]]
                assert doc["pagination"]["total_items"] == 46
                if not doc["pagination"]["has_next"]:
                    break
                page += 1
            assert got == expected, (order, per_page)
