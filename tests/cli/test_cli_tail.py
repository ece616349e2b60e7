"""``auditstream tail [Q]``: a real process following a real server; Ctrl-C exits 0; an
event cannot write escape sequences or forge lines on the terminal."""

from __future__ import annotations

import ctypes
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from auditstream.cli import app
from auditstream.cli_tail import format_line


def tail(server_url: str, key: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "AUDITSTREAM_URL": server_url, "AUDITSTREAM_API_KEY": key,
           "COLUMNS": "200"}
    # The child gets Python's own Ctrl-C handling whatever this process's SIGINT is: a
    # child started with SIGINT ignored keeps ignoring it (Python installs no handler).
    return subprocess.Popen([sys.executable, "-m", "auditstream", "tail", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def read_lines(proc: subprocess.Popen[str], n: int, *, stderr: bool = False) -> list[str]:
    """``n`` lines of its stdout or stderr (a reader thread: a dead process cannot hang
    the test)."""
    lines: list[str] = []

    def read() -> None:
        stream = proc.stderr if stderr else proc.stdout
        assert stream is not None
        for line in stream:
            lines.append(line.rstrip("\n"))
            if len(lines) >= n:
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(60)
    assert len(lines) >= n, (lines, proc.poll())
    return lines


def threads_report(pid: int) -> str:
    """Each thread's state, wait channel and signal masks: where a process that ignores a
    signal is stuck, and which of its threads the signal is pending on."""
    lines = []
    for tid in sorted(os.listdir(f"/proc/{pid}/task")):
        task = f"/proc/{pid}/task/{tid}"
        try:
            with open(f"{task}/status") as f:
                status = {k: v.strip() for k, _, v in (line.partition(":") for line in f)}
            with open(f"{task}/wchan") as f:
                wchan = f.read()
        except OSError:
            continue
        lines.append(f"{tid} {status.get('Name')} {status.get('State')} wchan={wchan} "
                     f"pnd={status.get('SigPnd')} blk={status.get('SigBlk')} "
                     f"cgt={status.get('SigCgt')}")
    return "\n".join(lines)


def test_tail_shows_matching_events_and_exits_0_on_ctrl_c(server: Any) -> None:
    key = server.key("acme")
    proc = tail(server.url, key, "severity:>=high", "--resume-from", "0")
    try:
        with server.client(key) as c:
            c.post("/v1/events", json=[
                {"type": "user.login", "severity": "critical", "title": "Root login",
                 "actor": {"id": "u_1", "name": "alice"}},
                {"type": "user.logout", "severity": "low", "title": "not shown"},
                {"type": "disk.full", "severity": "high", "title": "Disk full"}])
        first, second = read_lines(proc, 2)
    finally:
        proc.send_signal(signal.SIGINT)
        # communicate, not wait: it drains stderr, which a process blocked on a full pipe
        # could not otherwise exit through.
        try:
            _, errors = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            threads = threads_report(proc.pid)
            proc.kill()
            _, errors = proc.communicate()
            raise AssertionError(f"tail ignored Ctrl-C (this process's SIGINT: "
                                 f"{signal.getsignal(signal.SIGINT)!r}); its stderr: "
                                 f"{errors}; its threads:\n{threads}") from None
        assert proc.returncode == 0, errors
    assert "CRITICAL" in first and "user.login" in first and "alice" in first
    assert "Root login" in first and "Disk full" in second and "HIGH" in second


def test_tail_exits_on_a_ctrl_c_that_another_of_its_threads_caught(make_server: Any) -> None:
    """The kernel hands a process's SIGINT to any of its threads, e.g. the WebSocket's
    reader; Python only flags it there. Heartbeats an hour apart: tail waiting for the next
    message in one call would not see it for an hour."""
    server = make_server(stream_heartbeat_seconds=3600)
    key = server.key("acme")
    proc = tail(server.url, key, "--resume-from", "0")
    try:
        with server.client(key) as c:
            c.post("/v1/events", json={"type": "disk.full", "title": "Disk full"})
        read_lines(proc, 1)
        others = [int(t) for t in os.listdir(f"/proc/{proc.pid}/task") if int(t) != proc.pid]
        assert others, "tail has no thread besides its main one"
        # tgkill: to one thread of the process, as the kernel may choose when it delivers.
        tgkill = {"x86_64": 234, "aarch64": 131}[platform.machine()]
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.syscall(tgkill, proc.pid, others[0], signal.SIGINT) == 0, ctypes.get_errno()
        try:
            _, errors = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"tail ignored a Ctrl-C caught by its thread {others[0]}; "
                                 f"its threads:\n{threads_report(proc.pid)}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, errors


@pytest.mark.parametrize("after", [0.05, 0.1, 0.15, 0.2, 0.3, 0.5])
def test_ctrl_c_while_the_command_starts_is_quiet(after: float) -> None:
    """A Ctrl-C while the CLI still imports (a second or so) ends it without a traceback
    or a crash (it was SIGSEGV at times). A port nothing listens on: tail would retry it
    until stopped."""
    proc = tail("http://127.0.0.1:9", "sk_live_x")
    time.sleep(after)
    proc.send_signal(signal.SIGINT)
    _, errors = proc.communicate(timeout=60)
    assert "Traceback" not in errors, errors
    assert proc.returncode in (0, 130, -signal.SIGINT), (proc.returncode, errors)


def test_tail_to_a_port_nothing_listens_on_says_where_it_looked() -> None:
    proc = tail("http://127.0.0.1:9", "sk_live_x")
    try:
        first = read_lines(proc, 1, stderr=True)[0]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert "Connection refused" in first and "http://127.0.0.1:9" in first
    assert "--url" in first and "AUDITSTREAM_URL" in first
    assert proc.returncode == 0


def test_tail_without_a_usable_key_fails(server: Any) -> None:
    proc = tail(server.url, "sk_live_nope")
    assert proc.wait(timeout=60) == 1
    assert proc.stderr is not None and "4401" in proc.stderr.read()
    r = CliRunner().invoke(app, ["tail", "--url", server.url],
                           env={"AUDITSTREAM_API_KEY": ""})
    assert r.exit_code == 2


def test_an_event_cannot_drive_the_terminal() -> None:
    hostile = {"timestamp": "2026-01-01T00:00:00Z", "severity": "high\x1b[8m",
               "type": "x\u202eevil", "actor": {"id": "[bold]me[/bold]"},
               "title": "ok\x1b]52;c;ZXZpbA==\x07\r\nFAKE 2026-01-01 CRITICAL line"}
    console = Console(force_terminal=True, color_system="truecolor", width=300)
    with console.capture() as cap:
        console.print(format_line(hostile))
    out = cap.get()
    assert "\x1b]52" not in out and "\x07" not in out and "\r" not in out
    assert "\x1b[8m" not in out and "\u202e" not in out
    assert out.count("\n") == 1  # one line, whatever the title holds
    assert "\\x1b]52" in out and "[bold]me[/bold]" in out  # shown, escaped, not markup
