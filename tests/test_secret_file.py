"""Secrets kept beside the database: created once, atomically, readable by the owner only,
and the same for every process that starts at the same instant."""

from __future__ import annotations

import multiprocessing
import secrets
import stat
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from auditstream.secret_file import beside, load_or_create


def test_created_once_owner_only(tmp_path: Path) -> None:
    path = beside(tmp_path / "a.db", ".jwt-secret")
    assert path == tmp_path / "a.db.jwt-secret"
    first = load_or_create(path, lambda: secrets.token_urlsafe(32))
    assert len(first) >= 32 and path.read_text().strip() == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create(path, lambda: "another") == first
    # Nothing but the secret is left in the directory (no temporary files).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.db.jwt-secret"]


def test_missing_directory_is_created(tmp_path: Path) -> None:
    path = beside(tmp_path / "data" / "a.db", ".jwt-secret")
    assert load_or_create(path, lambda: "s" * 43) == "s" * 43


def test_an_empty_file_is_refused_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "a.db.jwt-secret"
    path.write_text("\n")
    with pytest.raises(RuntimeError, match=r"a\.db\.jwt-secret.*empty"):
        load_or_create(path, lambda: "new")
    assert path.read_text() == "\n"  # not replaced: another process may have handed it out


def _start(path: str, barrier: Barrier, out: multiprocessing.Queue[str]) -> None:
    barrier.wait()
    out.put(load_or_create(Path(path), lambda: secrets.token_urlsafe(32)))


@pytest.mark.parametrize("round_", range(5))
def test_eight_processes_starting_at_once_agree(tmp_path: Path, round_: int) -> None:
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(8)
    out: multiprocessing.Queue[str] = ctx.Queue()
    path = tmp_path / "a.db.jwt-secret"
    procs = [ctx.Process(target=_start, args=(str(path), barrier, out)) for _ in range(8)]
    for p in procs:
        p.start()
    got = [out.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert len(set(got)) == 1 and got[0] == path.read_text().strip()
