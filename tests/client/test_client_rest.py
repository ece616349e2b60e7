"""The SDK's REST half against a real server: ingest, list (every page), get, aggregate,
export, and the errors a caller sees, for ``Client`` and ``AsyncClient``."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from auditstream.client import (
    APIConnectionError,
    APIError,
    AsyncClient,
    AuthError,
    Client,
    NotFoundError,
)
from conftest import free_port


def events(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"type": "login" if i % 2 else "logout", "title": f"event {i}",
             "severity": "high" if i % 3 == 0 else "low",
             "actor": {"id": f"u_{i % 4}"}, "llm": {"cost_usd": 0.5}, **extra}
            for i in range(n)]


def test_ingest_one_or_many_answers_ids_and_seqs(server: Any) -> None:
    with Client(server.url, api_key=server.key("acme")) as client:
        one = client.ingest({"type": "login"})
        many = client.ingest(events(3))
        again = client.ingest({"id": "evt_mine", "type": "login"})
        assert client.ingest({"id": "evt_mine", "type": "login"}) == again  # a no-op retry
    assert [r["seq"] for r in one + many + again] == [1, 2, 3, 4, 5]
    assert all(r["id"].startswith("evt_") for r in one + many) and again[0]["id"] == "evt_mine"


def test_list_follows_every_page_with_filters_as_keywords(server: Any) -> None:
    key = server.key("acme")
    with Client(server.url, api_key=key) as client:
        client.ingest(events(25))
        every = list(client.list(page_size=4, order="asc"))
        assert [e["seq"] for e in every] == list(range(1, 26))
        logins = list(client.list(type="login", page_size=3))
        assert len(logins) == 12 and {e["type"] for e in logins} == {"login"}
        both = list(client.list({"actor.id": ["u_1", "u_2"]}, q="severity:>=high",
                                page_size=2))
        assert both and all(e["actor"]["id"] in ("u_1", "u_2") and e["severity"] == "high"
                            for e in both)
        assert len(both) == sum(1 for i in range(25) if i % 4 in (1, 2) and i % 3 == 0)
        assert len(list(client.list(limit=7, page_size=3))) == 7
        assert list(client.list(limit=0)) == []
        since = datetime.now(UTC) - timedelta(hours=1)
        assert len(list(client.list(since=since, page_size=100))) == 25
        assert list(client.list(since=datetime.now(UTC) + timedelta(hours=1))) == []


def test_get_aggregate_export(server: Any) -> None:
    with Client(server.url, api_key=server.key("acme")) as client:
        ids = [r["id"] for r in client.ingest(events(6))]
        got = client.get(ids[2])
        assert got["id"] == ids[2] and got["seq"] == 3 and got["title"] == "event 2"
        with pytest.raises(NotFoundError):
            client.get("evt_nope")
        with pytest.raises(NotFoundError):
            client.get("../events?x=1")  # an id is one path segment, whatever it holds
        agg = client.aggregate(group_by="type", metrics={"sum": "llm.cost_usd"},
                               count_unique=["actor.id"])
        rows = {r["key"]: r for r in agg["buckets"][0]["rows"]}
        assert rows["login"]["count"] == 3 and rows["logout"]["count"] == 3
        assert agg["group_by"] == "type"
        exported = list(client.export_events(after_seq=2))
        assert [e["seq"] for e in exported] == [3, 4, 5, 6]
        text = b"".join(client.export(format="csv", type="login")).decode()
        assert len(list(csv.DictReader(io.StringIO(text)))) == 3
        assert b"".join(client.export(format="parquet")).startswith(b"PAR1")


def test_errors_carry_the_problem_document(server: Any) -> None:
    key = server.key("acme")
    with Client(server.url, api_key=key) as client:
        with pytest.raises(APIError) as bad:
            list(client.list(nosuch_field="x"))
        assert bad.value.status == 400 and bad.value.errors[0]["field"] == "nosuch_field"
        with pytest.raises(APIError) as refused:
            client.ingest([{"type": "ok"}, {"type": "x", "severity": "extreme"}])
        assert refused.value.errors[0]["index"] == 1
        assert list(client.list()) == []  # atomic: nothing of the refused request
        with pytest.raises(APIError) as bad_export:
            next(client.export(format="xml"))
        assert bad_export.value.status == 400
    with Client(server.url, api_key="sk_live_wrong") as client, pytest.raises(AuthError):
        client.ingest({"type": "login"})
    reader = server.key("acme", "events:read")
    with Client(server.url, token=reader) as client, pytest.raises(AuthError) as denied:
        client.ingest({"type": "login"})
    assert denied.value.status == 403
    with Client(f"http://127.0.0.1:{free_port()}", api_key=key) as client, \
            pytest.raises(APIConnectionError):
        client.ingest({"type": "login"})


def test_settings_come_from_the_environment(server: Any,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITSTREAM_URL", server.url)
    monkeypatch.setenv("AUDITSTREAM_API_KEY", server.key("acme"))
    with Client() as client:
        assert client.ingest({"type": "login"})[0]["seq"] == 1
    with pytest.raises(ValueError, match="not both"):
        Client(api_key="a", token="b")


def test_async_client_does_the_same(server: Any) -> None:
    key = server.key("acme")

    async def run() -> None:
        async with AsyncClient(server.url, api_key=key) as client:
            assert [r["seq"] for r in await client.ingest(events(9))] == list(range(1, 10))
            seqs = [e["seq"] async for e in client.list(page_size=2, order="asc")]
            assert seqs == list(range(1, 10))
            assert len([e async for e in client.list(type="login", limit=2)]) == 2
            first = await client.get((await client.ingest({"type": "x"}))[0]["id"])
            assert first["seq"] == 10
            agg = await client.aggregate(group_by="type")
            assert sum(r["count"] for r in agg["buckets"][0]["rows"]) == 10
            assert [e["seq"] async for e in client.export_events(after_seq=8)] == [9, 10]
            with pytest.raises(NotFoundError):
                await client.get("evt_nope")
            with pytest.raises(APIError):
                [e async for e in client.export(format="xml")]

    asyncio.run(run())
