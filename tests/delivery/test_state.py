"""The ``StateStore`` conformance suite, run against every implementation."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from auditstream.delivery.integration import Attempt, DeadLetter, Integration, Progress
from auditstream.delivery.sqlite_state import SQLiteStateStore
from auditstream.delivery.state import ATTEMPTS_KEPT, StateStore

#: name → how to open a store over the files in a directory (again: the same data).
IMPLEMENTATIONS: dict[str, Callable[[Path], StateStore]] = {
    "sqlite": lambda d: SQLiteStateStore(d / "state.db"),
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def opener(request: pytest.FixtureRequest) -> Callable[[Path], StateStore]:
    return IMPLEMENTATIONS[request.param]


@pytest.fixture
def state(opener: Callable[[Path], StateStore], tmp_path: Path) -> Iterator[StateStore]:
    s = opener(tmp_path)
    yield s
    s.close()


def integration(iid: str = "int_1", tenant: str = "acme", cursor: int = 0) -> Integration:
    return Integration(id=iid, tenant=tenant, name="n", kind="webhook", format="native",
                       rule="", config={"url": "https://example.com", "secret": "s"},
                       created_at=1.0, updated_at=1.0, progress=Progress(cursor=cursor))


def attempt(iid: str = "int_1", ok: bool = True, at: float = 5.0) -> Attempt:
    return Attempt(integration_id=iid, at=at, action="deliver", ok=ok, first_seq=1,
                   last_seq=2, events=2, status_code=200 if ok else 500,
                   error=None if ok else "HTTP 500")


def test_integrations_are_scoped_to_their_tenant(state: StateStore) -> None:
    state.create(integration("int_1", "acme"))
    state.create(integration("int_2", "other"))
    assert state.get("acme", "int_1") is not None
    assert state.get("other", "int_1") is None
    assert [i.id for i in state.by_tenant("acme")] == ["int_1"]
    assert state.update("other", "int_1", {"name": "x"}, 2.0) is None
    assert not state.delete("other", "int_1")
    assert state.get("acme", "int_1").name == "n"  # type: ignore[union-attr]
    assert sorted(i.id for i in state.all()) == ["int_1", "int_2"]
    state.request_redelivery("acme", "int_1", None)
    assert state.attempts("other", "int_1") == []
    assert state.dead_letters("other", "int_1") == []
    assert state.request_redelivery("other", "int_1", None) == 0


def test_the_config_round_trips_and_updates_clear_the_wait(state: StateStore) -> None:
    state.create(integration())
    assert state.save_progress("int_1", 0, Progress(cursor=0, failures=2, retry_at=99.0))
    got = state.update("acme", "int_1", {"config": {"url": "https://b", "secret": "t"},
                                         "enabled": False, "rule": "type:x"}, 3.0)
    assert got is not None
    assert got.config == {"url": "https://b", "secret": "t"}
    assert (got.enabled, got.rule, got.updated_at) == (False, "type:x", 3.0)
    assert got.progress.retry_at is None and got.progress.failures == 2


def test_progress_is_compare_and_set_on_the_cursor(state: StateStore) -> None:
    state.create(integration())
    assert state.save_progress("int_1", 0, Progress(cursor=5), attempt=attempt())
    assert not state.save_progress("int_1", 0, Progress(cursor=9), attempt=attempt())
    got = state.get("acme", "int_1")
    assert got is not None and got.progress.cursor == 5
    assert len(state.attempts("acme", "int_1")) == 1  # the refused save wrote nothing
    assert not state.save_progress("int_gone", 0, Progress(cursor=1))


def test_a_save_records_success_or_error_with_its_attempt(state: StateStore) -> None:
    state.create(integration())
    state.save_progress("int_1", 0, Progress(cursor=0, failures=1, retry_at=9.0,
                                             pending_through=4, single=7),
                        attempt=attempt(ok=False, at=6.0))
    got = state.get("acme", "int_1")
    assert got is not None
    assert got.progress == Progress(cursor=0, failures=1, retry_at=9.0, pending_through=4,
                                    single=7)
    assert (got.last_error, got.last_error_at, got.last_success_at) == ("HTTP 500", 6.0, None)
    state.save_progress("int_1", 0, Progress(cursor=4), attempt=attempt(at=8.0))
    got = state.get("acme", "int_1")
    assert got is not None
    assert (got.last_success_at, got.last_attempt_at, got.last_error) == (8.0, 8.0, "HTTP 500")
    assert [a.ok for a in state.attempts("acme", "int_1")] == [True, False]  # newest first


def test_dead_letters_move_with_the_cursor_and_redeliver(state: StateStore) -> None:
    state.create(integration())
    dead = [DeadLetter("int_1", 3, "ev3", 8, "HTTP 422", 7.0)]
    assert state.save_progress("int_1", 0, Progress(cursor=3), dead=dead)
    assert not state.save_progress("int_1", 0, Progress(cursor=4),
                                   dead=[DeadLetter("int_1", 4, "ev4", 8, "x", 7.0)])
    assert [d.seq for d in state.dead_letters("acme", "int_1")] == [3]
    assert state.dead_letter_count("int_1") == 1
    assert state.redeliveries("int_1", 10) == []
    assert state.request_redelivery("acme", "int_1", [3, 99]) == 1
    (letter,) = state.redeliveries("int_1", 10)
    assert letter.redeliver_requested
    state.finish_redelivery(letter, attempt(ok=False))
    (kept,) = state.dead_letters("acme", "int_1")
    assert (kept.attempts, kept.redeliver_requested, kept.last_error) == (9, False, "HTTP 500")
    state.request_redelivery("acme", "int_1", None)
    state.finish_redelivery(state.redeliveries("int_1", 1)[0], attempt(ok=True))
    assert state.dead_letters("acme", "int_1") == []


def test_dead_letters_page_in_seq_order(state: StateStore) -> None:
    state.create(integration())
    letters = [DeadLetter("int_1", s, f"ev{s}", 1, "x", 1.0) for s in (9, 2, 5)]
    state.save_progress("int_1", 0, Progress(cursor=9), dead=letters)
    assert [d.seq for d in state.dead_letters("acme", "int_1", limit=2)] == [2, 5]
    assert [d.seq for d in state.dead_letters("acme", "int_1", after_seq=5)] == [9]


def test_attempts_are_bounded(state: StateStore) -> None:
    state.create(integration())
    for n in range(ATTEMPTS_KEPT + 120):
        state.add_attempt(attempt(at=float(n)))
    kept = state.attempts("acme", "int_1", limit=10_000)
    assert ATTEMPTS_KEPT <= len(kept) <= ATTEMPTS_KEPT + 50
    assert kept[0].at == ATTEMPTS_KEPT + 119


def test_delete_removes_attempts_and_dead_letters(state: StateStore) -> None:
    state.create(integration())
    state.save_progress("int_1", 0, Progress(cursor=1), attempt=attempt(),
                        dead=[DeadLetter("int_1", 1, "ev1", 1, "x", 1.0)])
    assert state.delete("acme", "int_1")
    assert state.get("acme", "int_1") is None
    assert state.dead_letter_count("int_1") == 0
    state.create(integration())  # the same id again starts clean
    assert state.attempts("acme", "int_1") == []


def test_what_was_saved_survives_kill_and_is_seen_by_another_process(
        opener: Callable[[Path], StateStore], tmp_path: Path) -> None:
    state = opener(tmp_path)
    state.create(integration())
    state.save_progress("int_1", 0, Progress(cursor=42))
    # No close: the process that wrote it is gone as far as the next one knows.
    child = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent.parent.parent)!r})
from tests.delivery.test_state import IMPLEMENTATIONS
from pathlib import Path
s = IMPLEMENTATIONS[{_name(opener)!r}](Path({str(tmp_path)!r}))
print(s.get("acme", "int_1").progress.cursor)
s.save_progress("int_1", 42, __import__("auditstream.delivery.integration",
                fromlist=["Progress"]).Progress(cursor=43))
import os; os._exit(0)
"""
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "42"
    got = state.get("acme", "int_1")
    assert got is not None and got.progress.cursor == 43
    state.close()


def _name(opener: Callable[[Path], StateStore]) -> str:
    return next(k for k, v in IMPLEMENTATIONS.items() if v is opener)


def test_the_state_file_is_private(tmp_path: Path) -> None:
    SQLiteStateStore(tmp_path / "s.db").close()
    assert (tmp_path / "s.db").stat().st_mode & 0o077 == 0
