"""Compat fidelity, property-style, against a real server: whatever canonical events a
tenant holds, every value a profile answers is one its reference allows, and every value it
answers, used as that profile's filter, finds its record again. For the fields whose values
are mapped onto a reference's set, the filter selects exactly the records that show the
value. Events are drawn by hypothesis from pools that mix each reference's own values with
canonical values outside them (severity ``info``, categories ``auth``/``llm``, outcomes
``success``/``failure``, ecosystems ``pypi``/``maven``, numbers where strings are expected,
commas and spaces inside values), and the profiles run with their default scopes and with
every scope widened to the whole stream."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditstream.model.catalog import categories
from auditstream.model.times import US, format_us, now_us
from conftest import Server

TURQOA_CATEGORIES = tuple(categories())
TURQOA_SEVERITIES = ("low", "medium", "high", "critical")
TUREN_TYPES, TUREN_OUTCOMES = ("install", "audit"), ("allow", "review", "block")
TUREN_ECOSYSTEMS = ("npm", "pip", "go", "cargo")
WIDE = {"compat_turen_scope": "", "compat_turen_llm_scope": "", "compat_turqoa_scope": "",
        "compat_platform_audit_scope": "", "compat_vaultterm_scope": "",
        "compat_authpi_scope": ""}

# Pools of canonical values: each reference's own, plus what other producers send.
maybe = st.one_of
text_ids = st.sampled_from(["u_1", "42", "042", "a,b", " spaced ", "Ünï"])
scalars = maybe(st.none(), text_ids, st.sampled_from([42, 7.5, True, 1e20]))


@st.composite
def canonical_event(draw: st.DrawFn) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "type": draw(st.sampled_from(["install", "audit", "llm.call", "login", "ais_gap",
                                      "user.created", "deploy,v2"])),
        "timestamp": format_us(now_us() - draw(st.integers(60, 3 * 3600)) * US),
        "severity": draw(st.sampled_from(["info", "low", "medium", "high", "critical"])),
    }
    optional: dict[str, Any] = {
        "category": draw(maybe(st.none(), st.sampled_from(
            [*TURQOA_CATEGORIES, "auth", "llm", "install"]))),
        "outcome": draw(maybe(st.none(), st.sampled_from(
            [*TUREN_OUTCOMES, "success", "failure", "denied", "Block"]))),
        "incident_id": draw(maybe(st.none(), st.sampled_from(["inc_1", "inc 2"]))),
        "requires_action": draw(maybe(st.none(), st.booleans())),
    }
    ev.update({k: v for k, v in optional.items() if v is not None})
    objects = {
        "subject": {"ecosystem": draw(maybe(st.none(), st.sampled_from(
                        [*TUREN_ECOSYSTEMS, "pypi", "PyPI", "crates.io", "maven", 5]))),
                    "package": draw(maybe(st.none(), st.sampled_from(
                        ["react", "a,b", " left-pad", 7])))},
        "source": {"module": draw(maybe(st.none(), st.sampled_from(
                       ["maritime_security", "x,y", 3]))),
                   "client_id": draw(scalars), "issuer_id": draw(scalars)},
        "location": {"zone": draw(maybe(st.none(), st.sampled_from(
                         ["lng_terminal", "LNG Terminal Restricted", "Berth 7, North", 12]))),
                     "zone_id": draw(maybe(st.none(), st.just("north_perimeter")))},
        "context": {"user_id": draw(scalars), "vm_id": draw(scalars),
                    "session_id": draw(scalars)},
        "llm": {"provider": draw(maybe(st.none(), st.sampled_from(["openai", "a,b", 5]))),
                "model": draw(maybe(st.none(), st.just("gpt-4o-mini")))},
    }
    for name, obj in objects.items():
        kept = {k: v for k, v in obj.items() if v is not None}
        if kept:
            ev[name] = kept
    return ev


# -- one profile = how to list everything, and which record fields are filters ----------


class Profile:
    """``records()`` lists every record the profile serves; ``fields`` maps a record
    field (a getter) to the query parameter that filters it; ``exact`` names the fields
    whose filter must select exactly the records showing the value."""

    name: str
    fields: dict[str, tuple[Callable[[dict[str, Any]], Any], str]]
    exact: frozenset[str] = frozenset()
    allowed: dict[str, tuple[Any, ...]] = {}

    def __init__(self, c: httpx.Client, tenant: str):
        self.c, self.tenant = c, tenant

    def records(self, **params: Any) -> list[dict[str, Any]]:
        raise NotImplementedError


class Turen(Profile):
    name = "turen"
    fields = {"type": (lambda r: r["type"], "type"),
              "outcome": (lambda r: r["outcome"], "outcome"),
              "ecosystem": (lambda r: r["subject"]["ecosystem"], "ecosystem"),
              "package": (lambda r: r["subject"]["package"], "package")}
    exact = frozenset({"type", "outcome", "ecosystem"})
    allowed = {"type": TUREN_TYPES, "outcome": TUREN_OUTCOMES,
               "ecosystem": (*TUREN_ECOSYSTEMS, None)}

    def records(self, **params: Any) -> list[dict[str, Any]]:
        r = self.c.get("/compat/turen/api/v1/events", params={"limit": 1000, **params})
        assert r.status_code == 200, r.text
        return list(r.json()["events"])


class TurenLlm(Profile):
    name = "turen_llm"
    fields = {"provider": (lambda r: r["provider"], "provider"),
              "model": (lambda r: r["model"], "model")}

    def records(self, **params: Any) -> list[dict[str, Any]]:
        r = self.c.get("/compat/turen/api/v1/events/llm", params={"limit": 1000, **params})
        assert r.status_code == 200, r.text
        return list(r.json()["events"])


class Turqoa(Profile):
    name = "turqoa"
    fields = {"category": (lambda r: r["category"], "category"),
              "severity": (lambda r: r["severity"], "severity"),
              "source_module": (lambda r: r["source_module"], "source_module"),
              "zone": (lambda r: r["location"]["zone"], "zone"),
              "requires_action": (lambda r: r["requires_action"], "requires_action"),
              "incident_id": (lambda r: r["incident_id"], "incident_id")}
    exact = frozenset({"category", "severity", "requires_action"})
    allowed = {"category": TURQOA_CATEGORIES, "severity": TURQOA_SEVERITIES}

    def records(self, **params: Any) -> list[dict[str, Any]]:
        r = self.c.get("/compat/turqoa/v1/events", params={
            "per_page": 200, "start_date": format_us(now_us() - 4 * 3600 * US), **params})
        assert r.status_code == 200, r.text
        return list(r.json()["data"])


class PlatformAudit(Profile):
    name = "platform-audit"
    fields = {"event_group": (lambda r: r["event_group"], "event_group"),
              "event_type": (lambda r: r["event_type"], "event_type"),
              "status": (lambda r: r["status"], "status"),
              "user_id": (lambda r: r["user_id"], "user_id"),
              "vm_id": (lambda r: r["vm_id"], "vm_id"),
              "session_id": (lambda r: r["session_id"], "session_id")}

    def records(self, **params: Any) -> list[dict[str, Any]]:
        return list(walk(self.c, "/compat/platform-audit/v1/audit/events", "items",
                         {"limit": 200, **params}))


class Authpi(Profile):
    name = "authpi"
    fields = {"type": (lambda r: r["type"], "event_types"),
              "user_id": (lambda r: r["user_id"], "user_id"),
              "client_id": (lambda r: r["client_id"], "client_id"),
              "issuer_id": (lambda r: r["issuer_id"], "issuer_id")}

    def records(self, **params: Any) -> list[dict[str, Any]]:
        return list(walk(self.c, f"/compat/authpi/v1/accounts/{self.tenant}/events", "data",
                         {"limit": 100, **params}))


def walk(c: httpx.Client, url: str, key: str, params: dict[str, Any]) -> Iterator[Any]:
    cursor = None
    while True:
        r = c.get(url, params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        doc = r.json()
        yield from doc[key]
        cursor = doc["next_cursor"]
        if not cursor:
            return


PROFILES = (Turen, TurenLlm, Turqoa, PlatformAudit, Authpi)


def as_param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def check_profile(p: Profile) -> None:
    records = p.records()
    for field, (get, param) in p.fields.items():
        if field in p.allowed:
            bad = [get(r) for r in records if get(r) not in p.allowed[field]]
            assert not bad, f"{p.name}.{field} answered {bad[0]!r}"
        shown: dict[Any, set[str]] = {}
        for r in records:
            value = get(r)
            if value is not None:
                shown.setdefault(orjson.dumps(value), set()).add(r["id"])
        for raw, ids in shown.items():
            value = orjson.loads(raw)
            found = {r["id"] for r in p.records(**{param: as_param(value)})}
            if field in p.exact:
                assert found == ids, (p.name, field, value)
            else:
                assert ids <= found, (p.name, field, value, ids - found)


tenants = itertools.count()


@pytest.mark.parametrize("scopes", ["default", "wide"])
def test_every_value_shown_is_allowed_and_finds_its_record(make_server: Any,
                                                          scopes: str) -> None:
    server: Server = make_server(**(WIDE if scopes == "wide" else {}))

    @settings(max_examples=4, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow])
    @given(st.lists(canonical_event(), min_size=1, max_size=40))
    def check(events: list[dict[str, Any]]) -> None:
        tenant = f"t{next(tenants)}"
        key = server.key(tenant)
        r = server.client(key).post("/v1/events", content=orjson.dumps(events))
        assert r.status_code == 201, r.text
        c = server.client(key)
        for profile in PROFILES:
            check_profile(profile(c, tenant))

    check()
