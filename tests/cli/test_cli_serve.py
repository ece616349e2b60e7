"""``auditstream serve`` as a real process: it says where it listens, how to get a demo key,
and fails in one clear line (port in use, bad settings) before touching the database."""

from __future__ import annotations

import os
import queue
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

#: Generous: only a bound on a hung test, never a performance claim.
PATIENCE_S = 120


class Serve:
    """``python -m auditstream serve ...`` with its stdout read line by line."""

    def __init__(self, *args: str, cwd: Path, env: dict[str, str] | None = None):
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITSTREAM_")}
        full_env.pop("PYTHONUNBUFFERED", None)  # serve must flush by itself (logs, systemd)
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "auditstream", "serve", *args], cwd=cwd, env=full_env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def until(self, pattern: str) -> tuple[list[str], re.Match[str]]:
        """Lines read up to and including the first one matching ``pattern``."""
        seen: list[str] = []
        while True:
            line = self.lines.get(timeout=PATIENCE_S)
            if line is None:
                raise AssertionError(f"serve ended before {pattern!r}; stdout {seen}, "
                                     f"stderr {self.stop()[1]}")
            seen.append(line)
            if m := re.search(pattern, line):
                return seen, m

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=PATIENCE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err


@pytest.fixture
def serves() -> Iterator[list[Serve]]:
    started: list[Serve] = []
    yield started
    for s in started:
        s.stop()


URL = r"listening on (http://127\.0\.0\.1:(\d+))"


def test_serve_prints_url_and_then_how_to_make_a_demo_key(
    tmp_path: Path, serves: list[Serve]
) -> None:
    db = tmp_path / "data" / "a.db"
    first = Serve("--db", str(db), "--port", "0", cwd=tmp_path)
    serves.append(first)
    lines, m = first.until(URL)
    assert any(re.search(r"demo API key .*sk_live_\w{40}", x) for x in lines), lines
    url = m.group(1)
    assert int(m.group(2)) > 0  # --port 0 prints the port actually bound
    # The port queues connections from the moment the URL is printed; on a loaded machine
    # the workers may still be starting, so the first answer may take more than httpx's 5 s.
    assert httpx.get(url + "/healthz", timeout=PATIENCE_S).status_code == 200
    code, err = first.stop()
    assert code in (0, 130) and not err  # Ctrl-C: a quiet stop (130 is the shell's SIGINT)

    again = Serve("--db", str(db), "--port", "0", cwd=tmp_path)
    serves.append(again)
    lines, m = again.until(URL)
    assert not any("sk_live_" in x for x in lines)  # a key is only ever shown once
    hint = next(x for x in lines if "auditstream keys create" in x)
    command = hint[hint.index("auditstream keys create"):]
    argv = shlex.split(command)
    assert argv[:5] == ["auditstream", "keys", "create", "--tenant", "demo"]
    assert str(db) in argv  # the exact database, usable from any directory
    made = subprocess.run([sys.executable, "-m", "auditstream", *argv[1:]], cwd="/",
                          capture_output=True, text=True, timeout=PATIENCE_S)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    r = httpx.get(m.group(1) + "/v1/events?limit=1", headers={"X-API-Key": key},
                  timeout=PATIENCE_S)
    assert r.status_code == 200 and r.json()["data"]
    # The first key's admin scope too: the console's admin pages, viewer tokens, redaction.
    r = httpx.get(m.group(1) + "/v1/keys", headers={"X-API-Key": key}, timeout=PATIENCE_S)
    assert r.status_code == 200, r.text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_port_in_use_is_one_line_before_anything_is_created(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        s = Serve("--db", str(tmp_path / "a.db"), "--port", str(port), cwd=tmp_path)
        s.proc.wait(timeout=PATIENCE_S)
        code, err = s.stop()
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(port) in lines[0] and "in use" in lines[0] and "--port" in lines[0]
    assert not (tmp_path / "a.db").exists()  # no demo key printed into the void


@pytest.mark.parametrize("env, needle", [
    ({"AUDITSTREAM_COMPAT_ROOT": "bogus"}, "AUDITSTREAM_COMPAT_ROOT"),
    ({"AUDITSTREAM_PORT": "http"}, "AUDITSTREAM_PORT"),
])
def test_bad_settings_are_one_line(tmp_path: Path, env: dict[str, str], needle: str) -> None:
    # A port that is taken: the setting is still the error shown.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env = {"AUDITSTREAM_PORT": str(busy.getsockname()[1]), **env}
        s = Serve("--db", str(tmp_path / "a.db"), "--no-demo", cwd=tmp_path, env=env)
        s.proc.wait(timeout=PATIENCE_S)
    code, err = s.stop()
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err, err


def test_a_file_that_is_not_a_database_is_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("hello")
    s = Serve("--db", str(junk), "--port", "0", cwd=tmp_path)
    s.proc.wait(timeout=PATIENCE_S)
    code, err = s.stop()
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and str(junk) in lines[0], err
    assert junk.read_text() == "hello"
