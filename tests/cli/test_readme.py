"""The README is the first hour's contract: it lists every command, its curl examples send
a JSON content type with their bodies, and each example answers something on the demo data."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from auditstream.cli import app

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
FAKE_CURL = Path(__file__).with_name("fake_curl.py")


def commands(group: Any, prefix: str = "auditstream") -> list[str]:
    out = []
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):  # a group (typer ships its own click)
            out += commands(cmd, f"{prefix} {name}")
        else:
            out.append(f"{prefix} {name}")
    return out


def test_readme_lists_every_command() -> None:
    every = commands(typer.main.get_group(app))
    assert "auditstream keys revoke" in every and "auditstream pull" in every
    # A synopsis line may name alternatives: "auditstream keys list|revoke".
    listed = set()
    for m in re.finditer(r"^auditstream ((?:[a-z]+ )?[a-z][a-z|-]*)", README, re.M):
        words = m.group(1).split()
        for alt in words[-1].split("|"):
            listed.add(" ".join(["auditstream", *words[:-1], alt]))
    missing = [c for c in every if c not in listed]
    assert not missing, f"README 'Operating it' does not list {missing}"


def curl_examples() -> list[str]:
    """Every curl command in sh blocks (continuations joined) and in table cells."""
    found = []
    for block in re.findall(r"```sh\n(.*?)```", README, re.S):
        for cmd in re.split(r"\n(?!\s)", block):  # a command ends where a line is unindented
            if "curl " in cmd:
                found.append(cmd)
    found += re.findall(r"`(curl [^`]+)`", README)
    return found


def test_curl_examples_with_a_body_send_a_json_content_type() -> None:
    examples = curl_examples()
    assert len(examples) >= 10
    for cmd in examples:
        if " -d " in cmd or "--data" in cmd:
            assert re.search(r"-H '?\"?Content-Type: application/(json|x-ndjson)", cmd), cmd


def readme_script() -> str:
    """The README's curl blocks as one bash script, as a user would paste them."""
    blocks = [b for b in re.findall(r"```sh\n(.*?)```", README, re.S) if "curl " in b]
    cells = re.findall(r"`(curl [^`]+)`", README)
    # Drop the placeholder "KEY=sk_live_..." line: the test exports a real key instead.
    lines = [ln for b in blocks for ln in b.splitlines() if not ln.startswith("KEY=")]
    return "\n".join(["set -e", *lines, *cells]) + "\n"


def test_readme_examples_answer_on_demo_data(make_server: Any, tmp_path: Path) -> None:
    srv = make_server(demo=True)
    key = srv.key("demo", "events:read", "events:write", "admin")
    log = tmp_path / "curl.log"
    script = tmp_path / "readme.sh"
    script.write_text(f"curl() {{ {shlex.quote(sys.executable)} "
                      f"{shlex.quote(str(FAKE_CURL))} \"$@\"; }}\n" + readme_script())
    # python3 (which the README may pipe into) is this interpreter, as after `make run`.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {"KEY": key, "README_BASE_URL": srv.url, "README_CURL_LOG": str(log), "PATH": path}
    # In tmp_path: the examples write files (key.pub).
    p = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True,
                       timeout=300, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    calls = [json.loads(x) for x in log.read_text().splitlines()]
    assert len(calls) == len(curl_examples())
    for c in calls:
        assert 200 <= c["status"] < 300, c
        assert c["body"].strip(), c
        try:
            doc = json.loads(c["body"])
        except ValueError:
            continue  # a signed note or a key: text, and not empty
        lists = [v for v in doc.values() if isinstance(v, list)] if isinstance(doc, dict) else []
        assert not lists or any(lists), f"{c['url']} answered only empty lists"


def test_readme_cli_examples_answer_on_demo_data(tmp_path: Path) -> None:
    from auditstream.app import build_services, load_demo
    from auditstream.settings import Settings

    db = tmp_path / "demo.db"

    async def demo() -> None:
        svc = build_services(Settings(db=str(db)))
        try:
            await load_demo(svc, announce=lambda _msg: None)
        finally:
            await svc.store.close()
            svc.catalog.close()

    asyncio.run(demo())
    queries = re.findall(r"^auditstream query '([^']+)' --tenant demo", README, re.M)
    assert queries
    for q in queries:
        r = CliRunner().invoke(app, ["query", q, "--tenant", "demo", "--json", "--db", str(db)])
        assert r.exit_code == 0, r.stderr
        assert r.stdout.strip(), f"README query {q!r} finds nothing on the demo data"
