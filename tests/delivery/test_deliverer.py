"""Delivery from the store to a real receiver: order, batches, retries on the injected
clock, refusals and dead letters, outages of any length, restarts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from standardwebhooks.webhooks import Webhook

from auditstream.delivery.deliverer import message_id

from .conftest import MAX_ATTEMPTS, Harness
from .receiver import Answer, Receiver, until

pytestmark = pytest.mark.anyio


def seqs(receiver: Receiver) -> list[int]:
    return [e["seq"] for e in receiver.delivered()]


def failed(harness: Harness, integration_id: str, n: int) -> Callable[[], bool]:
    return lambda: harness.get("acme", integration_id).progress.failures == n


def requests(receiver: Receiver, n: int) -> Callable[[], bool]:
    return lambda: len(receiver.requests) == n


async def drive(harness: Harness, integration_id: str, done: Callable[[], bool],
                what: str) -> None:
    """Move the clock to each retry the integration waits for, until ``done()``."""
    deadline = time.monotonic() + 30
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        retry_at = harness.get("acme", integration_id).progress.retry_at
        if retry_at is not None and retry_at > harness.clock.now():
            await harness.clock.advance(retry_at - harness.clock.now() + 0.001)
        await asyncio.sleep(0.01)


async def test_delivers_matching_events_in_seq_order_in_batches(
        harness: Harness, receiver: Receiver) -> None:
    made = await harness.create("acme", receiver.url, rule="severity:>=high",
                                config={"batch_size": 3})
    await harness.ingest("acme", 4, severity="high")
    await harness.ingest("acme", 5, severity="info")  # not matching
    await harness.ingest("acme", 4, severity="critical")
    await until(lambda: len(receiver.delivered()) == 8, what="8 events")
    assert seqs(receiver) == [1, 2, 3, 4, 10, 11, 12, 13]
    assert all(len(r.json()["data"]) <= 3 for r in receiver.requests)
    # Each body verifies with the secret returned once, per Standard Webhooks.
    hook = Webhook(made["secret"])
    for r in receiver.requests:
        hook.verify(r.body, r.headers)
        assert r.headers["content-type"] == "application/json"
    await until(lambda: harness.get("acme", made["id"]).progress.cursor == 13,
                what="the cursor at the newest seq")
    shown = await harness.service.show("acme", made["id"])
    assert (shown["state"], shown["lag"], shown["cursor"]) == ("active", 0, 13)


async def test_new_integration_starts_after_the_newest_event_unless_told(
        harness: Harness, receiver: Receiver) -> None:
    await harness.ingest("acme", 3)
    await harness.create("acme", receiver.url)
    backfill = Receiver()
    try:
        await harness.create("acme", backfill.url, start_after_seq=1)
        await harness.ingest("acme", 1)
        await until(lambda: len(receiver.delivered()) == 1 and len(backfill.delivered()) == 3)
        assert seqs(receiver) == [4]
        assert seqs(backfill) == [2, 3, 4]
    finally:
        backfill.stop()


async def test_a_failing_receiver_gets_the_same_message_on_the_schedule_then_all_in_order(
        harness: Harness, receiver: Receiver) -> None:
    receiver.answer(Answer(500), Answer(503), Answer(429))
    made = await harness.create("acme", receiver.url, config={"batch_size": 100})
    await harness.ingest("acme", 5)
    await until(lambda: len(receiver.requests) == 1, what="the first attempt")
    await until(lambda: harness.get("acme", made["id"]).progress.failures == 1)
    failing = await harness.service.show("acme", made["id"])
    assert failing["state"] == "failing" and failing["lag"] == 5
    assert failing["last_error"] == "HTTP 500" and failing["next_attempt_at"]
    # More events arrive meanwhile: the retry still carries exactly the first message.
    await harness.ingest("acme", 2)
    for n in (2, 3, 4):
        await until(failed(harness, made["id"], n - 1))
        retry_at = harness.get("acme", made["id"]).progress.retry_at
        assert retry_at is not None
        # Nothing is sent before the schedule says so, however long the test waits.
        assert len(receiver.requests) == n - 1
        await harness.clock.advance(retry_at - harness.clock.now() + 0.001)
        await until(requests(receiver, n), what=f"attempt {n}")
    first = receiver.requests[:4]
    assert len({r.headers["webhook-id"] for r in first}) == 1
    assert first[0].body == first[3].body  # the same events, re-signed
    assert [s for s in seqs(receiver)] == [1, 2, 3, 4, 5]
    await until(lambda: len(receiver.delivered()) == 7, what="the rest")
    assert seqs(receiver) == [1, 2, 3, 4, 5, 6, 7]
    await until(lambda: harness.get("acme", made["id"]).state == "active")
    attempts = harness.service.attempts("acme", made["id"], 10)
    assert [a["status_code"] for a in attempts][-4:] == [200, 429, 503, 500]


async def test_waits_grow_exponentially_and_outages_never_dead_letter(
        harness: Harness, receiver: Receiver) -> None:
    receiver.default = Answer(503)
    made = await harness.create("acme", receiver.url)
    await harness.ingest("acme", 1)
    waits = []
    for n in range(1, 12):
        await until(failed(harness, made["id"], n))
        p = harness.get("acme", made["id"]).progress
        assert p.retry_at is not None
        waits.append(p.retry_at - harness.clock.now())
        await harness.clock.advance(p.retry_at - harness.clock.now() + 0.001)
    # 1 s doubling, jittered to [50 %, 100 %], capped at 600 s.
    for n, wait in enumerate(waits, 1):
        cap = min(600.0, 2.0 ** (n - 1))
        assert cap / 2 <= wait <= cap, (n, wait)
    assert harness.state.dead_letter_count(made["id"]) == 0  # far beyond MAX_ATTEMPTS
    receiver.default = Answer()
    await harness.clock.advance(601)
    await until(lambda: seqs(receiver) == [1], what="delivery after the outage")


async def test_a_receiver_down_for_a_while_gets_everything_when_it_is_back(
        harness: Harness, receiver: Receiver) -> None:
    made = await harness.create("acme", receiver.url, config={"batch_size": 10})
    await harness.ingest("acme", 3)
    await until(lambda: len(receiver.delivered()) == 3)
    receiver.stop()  # connection refused from now on
    for _ in range(5):
        await harness.ingest("acme", 7)
    await until(lambda: harness.get("acme", made["id"]).progress.failures >= 1)
    for _ in range(6):  # hours of outage on the injected clock
        await harness.clock.advance(700)
    receiver.start()
    await harness.clock.advance(700)
    await until(lambda: len(receiver.delivered()) == 38, what="all 38 events")
    assert seqs(receiver) == list(range(1, 39))


async def test_a_refused_event_goes_to_the_dead_letters_alone_and_can_be_redelivered(
        harness: Harness, receiver: Receiver) -> None:
    poison = {"value": 4}
    receiver.respond = lambda r: 422 if any(
        e["seq"] == poison["value"] for e in r.json()["data"]) else 200
    made = await harness.create("acme", receiver.url, config={"batch_size": 5})
    await harness.ingest("acme", 8)
    await drive(harness, made["id"], lambda: len(receiver.delivered()) == 7,
                "every event but the refused one")
    assert seqs(receiver) == [1, 2, 3, 5, 6, 7, 8]
    letters = harness.service.dead_letters("acme", made["id"], 0, 10)["data"]
    assert [(d["seq"], d["attempts"], d["last_error"]) for d in letters] == [
        (4, MAX_ATTEMPTS, "HTTP 422")]
    # Refused messages held the poison alone after the first batch refusal.
    refused = [r for r in receiver.requests if r.status == 422]
    assert [len(r.json()["data"]) for r in refused] == [5] + [1] * MAX_ATTEMPTS
    # The receiver is fixed; redelivery sends the event again, and it leaves the list.
    poison["value"] = -1
    assert harness.service.redeliver("acme", made["id"], None) == {"requested": 1}
    await until(lambda: seqs(receiver)[-1:] == [4], what="the redelivery")
    await until(lambda: harness.state.dead_letter_count(made["id"]) == 0)
    assert harness.service.attempts("acme", made["id"], 1)[0]["action"] == "redeliver"


async def test_outages_before_a_refusal_do_not_count_towards_the_dead_letters(
        harness: Harness, receiver: Receiver) -> None:
    receiver.answer(*[Answer(503)] * MAX_ATTEMPTS, *[Answer(422)] * MAX_ATTEMPTS)
    made = await harness.create("acme", receiver.url, config={"batch_size": 1})
    await harness.ingest("acme", 2)
    await drive(harness, made["id"], lambda: len(receiver.delivered()) == 1,
                "the next event after the dead letter")
    assert [r.status for r in receiver.requests] == (
        [503] * MAX_ATTEMPTS + [422] * MAX_ATTEMPTS + [200])
    (letter,) = harness.service.dead_letters("acme", made["id"], 0, 10)["data"]
    assert (letter["seq"], letter["attempts"]) == (1, 2 * MAX_ATTEMPTS)
    assert seqs(receiver) == [2]


async def test_a_receiver_that_hangs_is_a_timeout_then_retried(
        harness: Harness, receiver: Receiver) -> None:
    receiver.hang = 3.0  # the harness's timeout is 2 s
    made = await harness.create("acme", receiver.url)
    await harness.ingest("acme", 2)
    await until(lambda: harness.get("acme", made["id"]).progress.failures == 1, timeout=30)
    assert "timed out" in (harness.get("acme", made["id"]).last_error or "")
    receiver.hang = 0
    await harness.clock.advance(10)
    await until(lambda: seqs(receiver)[-2:] == [1, 2])


async def test_paused_integrations_send_nothing_and_resume_from_the_cursor(
        harness: Harness, receiver: Receiver) -> None:
    made = await harness.create("acme", receiver.url)
    await harness.service.update("acme", made["id"], {"enabled": False})
    await harness.ingest("acme", 3)
    shown = await harness.service.show("acme", made["id"])
    assert (shown["state"], shown["lag"]) == ("paused", 3)
    assert receiver.requests == []
    await harness.service.update("acme", made["id"], {"enabled": True})
    await until(lambda: seqs(receiver) == [1, 2, 3])


async def test_a_new_supervisor_goes_on_from_the_cursor(
        harness: Harness, receiver: Receiver) -> None:
    made = await harness.create("acme", receiver.url)
    await harness.ingest("acme", 3)
    await until(lambda: harness.get("acme", made["id"]).progress.cursor == 3)
    await harness.supervisor.stop(2.0)
    await harness.ingest("acme", 4)
    harness.supervisor.start()
    await until(lambda: seqs(receiver) == [1, 2, 3, 4, 5, 6, 7])


async def test_only_one_supervisor_delivers_an_integration(
        harness: Harness, receiver: Receiver) -> None:
    from auditstream.delivery.supervisor import DeliverySupervisor

    second = DeliverySupervisor(store=harness.store, state=harness.state,
                                context=harness.supervisor.context,
                                schedule=harness.supervisor.schedule,
                                locks_dir=harness.tmp / "locks")
    second.start()
    try:
        made = await harness.create("acme", receiver.url, config={"batch_size": 1})
        await second.claim()
        await harness.supervisor.claim()
        owners = [s for s in (harness.supervisor, second) if made["id"] in s.running]
        assert len(owners) == 1
        for _ in range(20):
            await harness.ingest("acme", 1)
        await until(lambda: len(receiver.delivered()) == 20)
        assert seqs(receiver) == list(range(1, 21))  # no duplicate, no reordering
    finally:
        await second.stop(2.0)


async def test_message_ids_are_stable_per_events_and_integration() -> None:
    assert message_id("int_a", ["e1", "e2"]) == message_id("int_a", ["e1", "e2"])
    assert message_id("int_a", ["e1"]) != message_id("int_b", ["e1"])
    assert message_id("int_a", ["e1", "e2"]) != message_id("int_a", ["e1"])


async def test_tenants_do_not_see_each_others_integrations(
        harness: Harness, receiver: Receiver) -> None:
    made = await harness.create("acme", receiver.url)
    await harness.ingest("other", 3)
    await harness.ingest("acme", 1)
    await until(lambda: seqs(receiver) == [1])
    assert [e["tenant"] for e in receiver.delivered()] == ["acme"]
    assert harness.state.get("other", made["id"]) is None
    from auditstream.errors import NotFound
    with pytest.raises(NotFound):
        await harness.service.show("other", made["id"])
