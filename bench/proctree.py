"""A server's process tree, read from ``/proc``: CPU time and memory summed over every process.

``auditstream serve --workers N`` (N > 1) is a supervisor, a writer process, N uvicorn
workers and multiprocessing's resource tracker; ``--workers 1`` is one process. The figures
of a run are about the server as a whole, so CPU time and RSS are summed over the root and
all its descendants, found afresh on each reading (a worker or the writer that dies is
restarted under a new pid).

CPU: ``utime + stime + cutime + cstime`` of each live process; the ``c`` fields hold the
time of children their parent has already reaped, so a worker that exited during a phase
still counts (through its parent). Memory: the sum of ``VmRSS`` is the figure the issue
asks for; it counts pages shared between processes (the interpreter, libraries, SQLite's
shared memory index) once per process, so ``Pss`` (each shared page divided among its
users) is read too, as the memory the tree really costs.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (any of its threads may have started them)."""
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as f:
                out.extend(int(c) for c in f.read().split())
    return out


def descendants(root: int) -> list[int]:
    """``root`` and every process below it, parents before children."""
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children(pid))
    return out


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            # The command name may hold spaces and parentheses: split after the last ')'.
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads) and of its reaped children."""
    f = _stat_fields(pid)
    if f is None:
        return 0.0
    # After the ')': field 0 is state (stat field 3), so utime (14) is index 11.
    return (int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])) / _TICK


def rss_kb(pid: int) -> int:
    """Resident set size (``statm``: cheaper to read than ``status``)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * _PAGE_KB
    except (OSError, IndexError, ValueError):
        return 0


def status_kb(pid: int, key: str) -> int | None:
    """One ``kB`` line of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM`` …)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return ""


def _started(pid: int) -> int:
    f = _stat_fields(pid)
    return int(f[19]) if f else 0  # starttime (stat field 22), in clock ticks since boot


def roles(root: int, pids: list[int]) -> dict[int, str]:
    """A readable name for each process of the server: ``server`` (the root: the whole
    server with ``--workers 1``, the supervisor otherwise), ``writer``, ``worker``,
    ``resource_tracker``. The writer and the uvicorn workers have the same command line
    (multiprocessing's spawn); the supervisor starts the writer before the workers, so the
    earliest-started of them is taken for the writer (a restarted writer would be named a
    worker)."""
    out: dict[int, str] = {}
    spawned = []
    for pid in pids:
        cmd = _cmdline(pid)
        if pid == root:
            out[pid] = "server"
        elif "resource_tracker" in cmd:
            out[pid] = "resource_tracker"
        elif "spawn_main" in cmd:
            spawned.append(pid)
        else:
            out[pid] = cmd[:60] or "gone"
    spawned.sort(key=_started)
    for i, pid in enumerate(spawned):
        out[pid] = "writer" if i == 0 else "worker"
    return out


@dataclass
class Sample:
    """One reading of the whole tree."""

    pids: int
    rss_kb: int
    per_pid_rss_kb: dict[int, int]


class ProcessTree:
    """The server started as ``root`` and everything below it."""

    def __init__(self, root: int):
        self.root = root

    def pids(self) -> list[int]:
        return descendants(self.root)

    def cpu_seconds(self) -> float:
        return sum(self.cpu_by_pid().values())

    def cpu_by_pid(self) -> dict[int, float]:
        return {p: cpu_seconds(p) for p in self.pids()}

    def sample(self) -> Sample:
        per = {p: rss_kb(p) for p in self.pids()}
        return Sample(len(per), sum(per.values()), per)

    def pss_kb(self) -> int:
        return sum(pss_kb(p) for p in self.pids())

    def hwm_kb(self) -> int:
        """Sum of each live process's own peak RSS: an upper bound of the tree's peak (the
        peaks need not coincide)."""
        return sum(status_kb(p, "VmHWM") or 0 for p in self.pids())

    def roles(self) -> dict[int, str]:
        return roles(self.root, self.pids())


__all__ = ["ProcessTree", "Sample", "cpu_seconds", "descendants", "pss_kb", "roles", "rss_kb",
           "status_kb"]
