"""How the profiles are mounted: a root profile never replaces a native route, bad profile
settings stop the start-up, and ``/metrics`` tells the profiles' requests apart."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from auditstream.app import create_app
from auditstream.settings import Settings


def scrape(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """``name``'s samples in a Prometheus text page: sorted labels → value."""
    out = {}
    for line in text.splitlines():
        m = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if m:
            labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', m.group(1))))
            out[labels] = float(m.group(2))
    return out


def test_root_profile_takes_only_free_paths_and_says_which_it_left(
        make_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="auditstream"):
        srv = make_server(compat_root="turqoa")
    assert "GET /v1/events, WebSocket /v1/events/stream stay native" in caplog.text
    key = srv.key("acme")
    c = srv.client(key)
    assert c.post("/v1/events", json={"type": "ais_gap", "category": "maritime"}
                  ).status_code == 201
    native = c.get("/v1/events")
    assert native.status_code == 200 and "next_cursor" in native.json()
    turqoa = c.get("/api/v1/events")
    assert turqoa.status_code == 200 and "pagination" in turqoa.json()
    spec = c.get("/openapi.json").json()["paths"]
    assert spec["/v1/events"]["get"]["summary"] == native_summary()
    assert "/api/v1/events" in spec


def native_summary() -> str:
    from auditstream.api.native import events

    route = next(r for r in events.router.routes if getattr(r, "name", "") == "list_events")
    return str(route.summary)  # type: ignore[attr-defined]


@pytest.mark.parametrize("profile", ["turen", "platform-audit", "vaultterm", "authpi"])
def test_root_profiles_without_collisions_keep_every_path(make_server: Any,
                                                          profile: str) -> None:
    srv = make_server(compat_root=profile)
    paths = srv.client().get("/openapi.json").json()["paths"]
    prefixed = [p for p in paths if p.startswith(f"/compat/{profile}/")]
    assert prefixed
    for p in prefixed:
        assert p.removeprefix(f"/compat/{profile}") in paths, p


def test_root_profile_with_no_free_path_is_refused(db_path: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from auditstream.api.compat import turqoa

    original = turqoa.router

    def only_native_paths() -> Any:
        r = original()
        r.routes[:] = [x for x in r.routes if getattr(x, "path", "") == "/v1/events"]
        return r

    monkeypatch.setattr(turqoa, "router", only_native_paths)
    with pytest.raises(ValueError, match="every path of the profile is a native one"):
        create_app(Settings(db=str(db_path), demo=False, compat_root="turqoa"))


def test_bad_settings_stop_the_start(db_path: Any) -> None:
    with pytest.raises(ValueError, match="unknown profile"):
        create_app(Settings(db=str(db_path), demo=False, compat_root="nosuch"))
    with pytest.raises(ValueError, match="AUDITSTREAM_COMPAT_TURQOA_SCOPE"):
        create_app(Settings(db=str(db_path), demo=False, compat_turqoa_scope="category:(x"))
    with pytest.raises(ValueError, match="AUDITSTREAM_COMPAT_TURQOA_ZONES"):
        create_app(Settings(db=str(db_path), demo=False, compat_turqoa_zones="no equals sign"))


def test_metrics_label_requests_by_profile(make_server: Any) -> None:
    srv = make_server(compat_root="turqoa")
    c = srv.client(srv.key("acme"))
    for path in ("/v1/events", "/compat/turqoa/v1/events", "/compat/turqoa/v1/events",
                 "/api/v1/events", "/compat/turen/api/v1/events",
                 "/compat/platform-audit/v1/audit/events", "/compat/vaultterm/events/v1",
                 "/compat/authpi/v1/accounts/acme/events", "/compat/turen/api/v1/nope"):
        c.get(path)
    requests = scrape(c.get("/metrics").text, "auditstream_http_requests_total")

    def count(route: str, profile: str, status: str = "200") -> float:
        key = (("method", "GET"), ("profile", profile), ("route", route), ("status", status))
        return requests.get(key, 0.0)

    assert count("/v1/events", "native") == 1
    assert count("/compat/turqoa/v1/events", "turqoa") == 2
    assert count("/api/v1/events", "turqoa") == 1
    assert count("/compat/turen/api/v1/events", "turen") == 1
    assert count("/compat/platform-audit/v1/audit/events", "platform-audit") == 1
    assert count("/compat/vaultterm/events/v1", "vaultterm") == 1
    assert count("/compat/authpi/v1/accounts/{account_id}/events", "authpi") == 1
    assert count("unmatched", "turen", "404") == 1
    latency = scrape(c.get("/metrics").text, "auditstream_http_request_seconds_count")
    assert latency[(("profile", "turqoa"), ("route", "/compat/turqoa/v1/events"))] == 2
