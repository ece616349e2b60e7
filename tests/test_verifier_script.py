"""``python verifier.py BUNDLE PUBLIC_KEY``: the offline bundle verifier as a script.

A real bundle from a real server's store (events ingested and one redacted over HTTP, the key
fetched from ``/v1/integrity/public-key``, the bundle written by ``auditstream export
--bundle``), checked by real runs of ``verifier.py`` copied alone into an empty directory.
A silent exit 0 must never happen for anything but a verified bundle.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

import auditstream.verifier
from auditstream.integrity.checkpoint import format_checkpoint, generate_signer, sign_note
from auditstream.integrity.merkle import EMPTY_ROOT

TENANT = "vfy"
ORIGIN = f"auditstream.local/{TENANT}"
SUMMARY = f"OK: 21 events (1 redacted) proven in the signed checkpoint of {ORIGIN} at size 21"


@dataclass
class Setup:
    script: Path  # verifier.py, copied alone into an otherwise empty directory
    bundle: Path
    key: Path
    db: str
    tmp: Path


@pytest.fixture(scope="module")
def setup(shared_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Setup:
    tmp = tmp_path_factory.mktemp("verifier")
    c = shared_server.client(shared_server.key(TENANT, "admin"))
    r = c.post("/v1/events", content=orjson.dumps(
        [{"type": "login", "title": f"event {i}", "actor": {"id": f"u{i % 3}"}}
         for i in range(20)]))
    assert r.status_code == 201, r.text
    ids = [d["id"] for d in r.json()["data"]]
    r = c.post(f"/v1/events/{ids[2]}/redact", json={"reason": "erasure"})  # record: seq 21
    assert r.status_code == 200, r.text
    key = tmp / "key.pub"
    r = c.get("/v1/integrity/public-key")
    assert r.status_code == 200
    key.write_bytes(r.content)  # exactly as served (curl ... > key.pub)
    c.close()

    db = shared_server.settings.db
    bundle = tmp / "vfy.bundle"
    p = subprocess.run([sys.executable, "-m", "auditstream", "export", "--bundle", "--tenant",
                        TENANT, "--out", str(bundle), "--db", db],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr

    alone = tmp / "alone"
    alone.mkdir()
    script = alone / "verifier.py"
    shutil.copyfile(auditstream.verifier.__file__, script)
    return Setup(script, bundle, key, db, tmp)


def run(s: Setup, *args: str | Path, stdin: bytes | None = None,
        script: Path | None = None) -> subprocess.CompletedProcess[str]:
    script = script or s.script
    p = subprocess.run([sys.executable, str(script), *map(str, args)], input=stdin,
                       capture_output=True, timeout=60, cwd=script.parent)
    return subprocess.CompletedProcess(p.args, p.returncode, p.stdout.decode(),
                                       p.stderr.decode())


def write(s: Setup, name: str, data: bytes) -> Path:
    path = s.tmp / name
    path.write_bytes(data)
    return path


# -- verified ---------------------------------------------------------------------------------


def test_good_bundle_exits_0_with_the_summary(setup: Setup) -> None:
    p = run(setup, setup.bundle, setup.key)
    assert p.returncode == 0, p.stderr
    assert p.stdout == SUMMARY + "\n"
    assert p.stderr == ""


def test_standard_input(setup: Setup) -> None:
    p = run(setup, "-", setup.key, stdin=setup.bundle.read_bytes())
    assert p.returncode == 0, p.stderr
    assert p.stdout == SUMMARY + "\n"


def test_same_summary_as_auditstream_verify_bundle(setup: Setup) -> None:
    p = subprocess.run([sys.executable, "-m", "auditstream", "verify", "--bundle",
                        str(setup.bundle), "--public-key", str(setup.key)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert " ".join(p.stdout.split()) == SUMMARY  # the CLI's console may wrap the line


def test_runs_in_place_as_the_readme_says(setup: Setup) -> None:
    p = run(setup, setup.bundle, setup.key, script=Path(auditstream.verifier.__file__))
    assert p.returncode == 0, p.stderr
    assert p.stdout == SUMMARY + "\n"


def test_needs_no_auditstream_package(setup: Setup) -> None:
    # Isolated mode, and any import of auditstream fails: only the copied file is used.
    code = (
        "import importlib.abc, runpy, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'auditstream':\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n")
    p = subprocess.run([sys.executable, "-I", "-c", code, str(setup.script), str(setup.bundle),
                        str(setup.key)], capture_output=True, text=True, timeout=60,
                       cwd=setup.script.parent)
    assert p.returncode == 0, p.stderr
    assert p.stdout == SUMMARY + "\n"


# -- verification fails: exit 1 ---------------------------------------------------------------


def test_one_changed_byte_exits_1_naming_the_event(setup: Setup) -> None:
    data = setup.bundle.read_bytes()
    assert data.count(b'"title":"event 7"') == 1
    bad = write(setup, "byte.bundle", data.replace(b'"title":"event 7"', b'"title":"event 8"'))
    assert len(bad.read_bytes()) == len(data)
    p = run(setup, bad, setup.key)
    assert p.returncode == 1
    assert p.stdout == ""
    assert p.stderr.startswith("FAIL seq 8: not included in the signed checkpoint")


def test_wrong_public_key_exits_1(setup: Setup) -> None:
    other = write(setup, "other.pub",
                  (generate_signer("auditstream.local").verifier_key() + "\n").encode())
    p = run(setup, setup.bundle, other)
    assert p.returncode == 1
    assert p.stdout == ""
    assert p.stderr == "FAIL bundle header: checkpoint is not signed by this key\n"


def test_missing_events_exit_1(setup: Setup) -> None:
    lines = setup.bundle.read_bytes().splitlines(keepends=True)
    p = run(setup, write(setup, "short.bundle", b"".join(lines[:-1])), setup.key)
    assert p.returncode == 1
    assert "bundle holds 20 events but the checkpoint signs 21" in p.stderr
    p = run(setup, write(setup, "header.bundle", lines[0]), setup.key)
    assert p.returncode == 1
    assert "bundle holds 0 events but the checkpoint signs 21" in p.stderr


def test_garbage_after_the_header_exits_1(setup: Setup) -> None:
    header = setup.bundle.read_bytes().splitlines(keepends=True)[0]
    p = run(setup, write(setup, "tail.bundle", header + b"root:x:0:0:root:/root:/bin/sh\n"),
            setup.key)
    assert p.returncode == 1
    assert p.stderr.startswith("FAIL event line 1: malformed")


def test_a_signed_empty_log_is_not_reported_as_verified(setup: Setup) -> None:
    signer = generate_signer("auditstream.local")
    note = sign_note(format_checkpoint(ORIGIN, 0, EMPTY_ROOT), signer)
    header = {"format": "auditstream.bundle/v1", "tenant": TENANT, "origin": ORIGIN,
              "tree_size": 0, "checkpoint": note, "public_key": signer.verifier_key()}
    key = write(setup, "empty-log.pub", signer.verifier_key().encode())
    p = run(setup, write(setup, "empty-log.bundle", orjson.dumps(header) + b"\n"), key)
    assert p.returncode == 1
    assert p.stdout == ""
    assert "proves no event" in p.stderr


# -- not a bundle, bad key, bad arguments: exit 2 ---------------------------------------------

PASSWD = b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"


@pytest.mark.parametrize(("data", "why"), [
    (b"", "is empty"),
    (PASSWD, "is not an auditstream bundle"),
    (b"\n\n\n", "is not an auditstream bundle"),
    (b"\x00\xff\xfe binary \x89PNG\r\n", "is not an auditstream bundle"),
    (b'{"event": {"seq": 1}}\n', "is not an auditstream bundle"),
    (b"[1, 2, 3]\n", "is not an auditstream bundle"),
    (b'{"format": "auditstream.bundle/v1"}\n', "holds no checkpoint"),
    (b'{"format": "auditstream.bundle/v1", "checkpoint": 5}\n', "holds no checkpoint"),
    (b'{"format": "other/v9", "checkpoint": "x"}\n', "has bundle format 'other/v9'"),
], ids=["empty", "passwd", "blank", "binary", "event-line", "array", "no-checkpoint",
        "checkpoint-not-text", "other-format"])
def test_not_a_bundle_exits_2(setup: Setup, data: bytes, why: str) -> None:
    path = write(setup, "garbage.bundle", data)
    for p in (run(setup, path, setup.key), run(setup, "-", setup.key, stdin=data)):
        assert p.returncode == 2, (p.stdout, p.stderr)
        assert p.stdout == ""
        assert p.stderr.startswith("verifier.py: error: bundle ")
        assert why in p.stderr and p.stderr.count("\n") == 1


def test_etc_passwd_and_garbage_key_exit_2(setup: Setup) -> None:
    garbage = write(setup, "garbage", b"garbage\n")
    for args in ((setup.bundle, garbage), (PASSWD, garbage), (setup.bundle, setup.bundle)):
        bundle = write(setup, "passwd", args[0]) if isinstance(args[0], bytes) else args[0]
        p = run(setup, bundle, args[1])
        assert p.returncode == 2, (p.stdout, p.stderr)
        assert p.stdout == ""
        assert "does not hold an auditstream public key" in p.stderr
    if Path("/etc/passwd").is_file():
        p = run(setup, "/etc/passwd", setup.key)
        assert p.returncode == 2 and "is not an auditstream bundle" in p.stderr


@pytest.mark.parametrize("key", [
    b"",
    b"auditstream.local+00000000+AQ==\n",  # not 32 bytes of key
    b"\xff\xfe\x00",  # not text
])
def test_invalid_key_file_exits_2(setup: Setup, key: bytes) -> None:
    p = run(setup, setup.bundle, write(setup, "bad.pub", key))
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert p.stdout == "" and p.stderr.count("\n") == 1


def test_key_of_another_name_is_valid_but_does_not_verify(setup: Setup) -> None:
    # A well-formed key whose id does not match is a usage error; a real one of another
    # deployment is a verification failure.
    name, _kid, b64 = setup.key.read_text().strip().split("+", 2)
    forged = write(setup, "kid.pub", f"{name}+{'0' * 8}+{b64}".encode())
    p = run(setup, setup.bundle, forged)
    assert p.returncode == 2 and "key id does not match" in p.stderr
    other = write(setup, "elsewhere.pub", generate_signer("elsewhere").verifier_key().encode())
    p = run(setup, setup.bundle, other)
    assert p.returncode == 1 and "not signed by this key" in p.stderr


def test_unreadable_files_exit_2(setup: Setup) -> None:
    for args in ((setup.tmp / "missing.bundle", setup.key),
                 (setup.bundle, setup.tmp / "missing.pub"),
                 (setup.tmp, setup.key),  # a directory
                 (setup.bundle, setup.tmp)):
        p = run(setup, *args)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        assert p.stdout == ""
        assert p.stderr.startswith("verifier.py: error: cannot read ")
        assert p.stderr.count("\n") == 1


@pytest.mark.parametrize("args", [(), ("one",), ("a", "b", "c")], ids=["none", "one", "three"])
def test_wrong_argument_count_exits_2(setup: Setup, args: tuple[str, ...]) -> None:
    p = run(setup, *args)
    assert p.returncode == 2
    assert p.stdout == ""
    assert "usage: verifier.py [-h] BUNDLE PUBLIC_KEY" in p.stderr


def test_help_names_the_exit_codes(setup: Setup) -> None:
    p = run(setup, "--help")
    assert p.returncode == 0
    assert "BUNDLE" in p.stdout and "PUBLIC_KEY" in p.stdout and "Exit status" in p.stdout
