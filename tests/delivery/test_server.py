"""Push delivery in the real multi-process server: one deliverer per integration across
the workers, and a ``kill -9`` of the whole server in the middle loses nothing."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx

from auditstream.auth.catalog import Catalog
from conftest import free_port

sys.path.insert(0, str(Path(__file__).parent.parent))  # test_crash's start and kill
from test_crash import kill_all, start  # noqa: E402

from .receiver import Receiver  # noqa: E402


def test_kill_9_mid_delivery_loses_nothing_and_retries_keep_their_ids(tmp_path: Path) -> None:
    db = tmp_path / "push.db"
    cat = Catalog(db)
    cat.create_tenant("acme")
    key = cat.create_key("acme", ["events:read", "events:write", "admin"]).secret
    cat.close()
    receiver = Receiver()
    os.environ["AUDITSTREAM_PUSH_ALLOW_PRIVATE"] = "127.0.0.1"
    port = free_port()
    proc = start(db, port, [])  # the default: a writer process and two HTTP workers
    try:
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key},
                           timeout=30)
        r = api.post("/v1/integrations", json={"name": "siem", "kind": "webhook",
                                              "config": {"url": receiver.url,
                                                         "batch_size": 7}})
        assert r.status_code == 201, r.text
        acked: list[str] = []

        def ingest(n: int) -> None:
            for _ in range(n):
                r = api.post("/v1/events", json=[{"type": "t", "title": str(i)}
                                                 for i in range(20)])
                assert r.status_code == 201, r.text
                acked.extend(e["id"] for e in r.json()["data"])

        ingest(10)
        receiver.wait_for(lambda: len(receiver.delivered()) >= 60)
        kill_all(proc)  # mid-delivery: 200 events acknowledged, some not yet pushed
        # Until then one process delivered (two workers would each have sent every event).
        before = [e["id"] for m in receiver.ok() for e in m.json()["data"]]
        assert len(before) == len(set(before))
        proc = start(db, port, [])
        ingest(5)
        receiver.wait_for(lambda: {e["id"] for e in receiver.delivered()} >= set(acked),
                          timeout=60)
    finally:
        kill_all(proc)
        os.environ.pop("AUDITSTREAM_PUSH_ALLOW_PRIVATE", None)
        receiver.stop()

    seen: dict[str, tuple[int, str]] = {}  # event id → (seq, webhook-id of its message)
    order: list[int] = []
    for message in receiver.ok():
        for event in message.json()["data"]:
            first = seen.setdefault(event["id"], (event["seq"], message.headers["webhook-id"]))
            if first[1] == message.headers["webhook-id"] and len(order) < len(seen):
                order.append(event["seq"])
            else:  # a re-send after the crash: the same message, with the same id
                assert first == (event["seq"], message.headers["webhook-id"])
    assert order == list(range(1, len(acked) + 1))  # first deliveries: every seq, in order
    assert set(seen) == set(acked)
