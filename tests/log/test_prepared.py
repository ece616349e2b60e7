"""``log.prepared``: an event's body is split around a placeholder seq, one per batch;
an event that holds the placeholder's bytes itself is serialised again with another."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from auditstream.log import prepared
from auditstream.log.prepared import prepare


def test_an_event_holding_the_placeholder_is_split_around_another(
        monkeypatch: pytest.MonkeyPatch) -> None:
    draws: Iterator[int] = iter([123456789012345, 987654321098765])
    monkeypatch.setattr(prepared, "_placeholder", lambda: next(draws))
    at = {"timestamp": "2026-11-28T00:00:00Z", "received_at": "2026-11-28T00:00:01Z",
          "type": "a", "severity": "info"}
    events = [{"id": "evt_1", **at, "n": 1},
              # Guesses the batch's placeholder: serialised again with the next draw.
              {"id": "evt_2", **at, "note": {"seq": 123456789012345}},
              {"id": "evt_3", **at, "n": 3}]
    out = prepare(events, canonical=True, path_segments=[])
    bodies = [orjson.loads(p.body(7)) for p in out]
    assert [b["seq"] for b in bodies] == [7, 7, 7]
    assert bodies[1]["note"] == {"seq": 123456789012345}
    assert [b["id"] for b in bodies] == ["evt_1", "evt_2", "evt_3"]
