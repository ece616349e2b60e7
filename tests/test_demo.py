"""The demo data set: valid producer events, every domain present, reproducible."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from pydantic import TypeAdapter

from auditstream.demo import DOMAINS, LLM_PRICES, demo_events, domain_of, turqoa_catalog
from auditstream.model.event import EventIn
from auditstream.model.times import US, parse_time

NOW = 1_775_000_000 * US  # fixed, so the test never depends on the wall clock
N = 600


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return demo_events(N, now_us=NOW)


def test_every_event_validates_as_event_in(events: list[dict[str, Any]]) -> None:
    adapter = TypeAdapter(EventIn)
    for event in events:
        adapter.validate_python(event)
        # the server assigns these; a producer must not send them
        assert not {"id", "tenant", "seq"} & event.keys()
        # the native API stores JSON: the demo must round-trip through it unchanged
        assert json.loads(json.dumps(event)) == event


def test_all_five_domains_in_roughly_equal_shares(events: list[dict[str, Any]]) -> None:
    counts = Counter(domain_of(e) for e in events)
    assert set(counts) == set(DOMAINS)
    assert all(count == N // len(DOMAINS) for count in counts.values())


def test_deterministic_for_a_seed() -> None:
    assert demo_events(50, seed=3, now_us=NOW) == demo_events(50, seed=3, now_us=NOW)
    assert demo_events(50, seed=3, now_us=NOW) != demo_events(50, seed=4, now_us=NOW)


def test_timestamps_within_last_30_days_oldest_first(events: list[dict[str, Any]]) -> None:
    times = [parse_time(e["timestamp"]) for e in events]
    assert all(e["timestamp"].endswith("Z") for e in events)
    assert times == sorted(times)
    assert times[0] > NOW - 30 * 86_400 * US and times[-1] <= NOW
    # denser recently: the last 10 days hold more than a third of the month
    recent = sum(t > NOW - 10 * 86_400 * US for t in times)
    assert recent > len(times) / 3


def test_turen_outcomes_and_reasons(events: list[dict[str, Any]]) -> None:
    turen = [e for e in events if domain_of(e) == "turen"]
    assert {e["type"] for e in turen} <= {"install", "audit"}
    outcomes = Counter(e["outcome"] for e in turen)
    assert outcomes["allow"] > outcomes["review"] > 0 and outcomes["block"] > 0
    for e in turen:
        assert len(e["source"]["client_id"]) == 16
        assert e["subject"]["ecosystem"] in {"npm", "pip", "go", "cargo"}
        assert ("payload" in e) == (e["outcome"] != "allow")


def test_turqoa_types_follow_the_catalog(events: list[dict[str, Any]]) -> None:
    catalog = {t["type"]: t for t in turqoa_catalog()["types"]}
    zones = {"lng_terminal", "north_perimeter", "gate_3", "container_yard", "berth_7"}
    for e in (e for e in events if domain_of(e) == "turqoa"):
        spec = catalog[e["type"]]
        assert e["category"] == spec["category"]
        assert spec["severity"] in (None, e["severity"])
        assert e["location"]["zone"] in zones


def test_llm_cost_matches_price_table(events: list[dict[str, Any]]) -> None:
    for e in (e for e in events if domain_of(e) == "llm"):
        llm = e["llm"]
        provider, price_in, price_out = LLM_PRICES[llm["model"]]
        assert llm["provider"] == provider
        expected = llm["input_tokens"] * price_in / 1e6 + llm["output_tokens"] * price_out / 1e6
        assert llm["cost_usd"] == pytest.approx(expected, abs=1e-6)
