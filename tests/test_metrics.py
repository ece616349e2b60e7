"""/metrics across processes: with ``AUDITSTREAM_METRICS_DIR`` every process of a server
keeps its values in that directory (prometheus_client's multiprocess mode), and /metrics,
whichever process serves it, reports the sum over all of them, including processes that
have exited. Real servers in real processes; names and labels as on one process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from auditstream.auth.catalog import Catalog
from auditstream.metrics import prepare_directory, worker_exited
from conftest import free_port

SERVE = """
import sys, uvicorn
from auditstream.app import create_app
from auditstream.settings import Settings
settings = Settings.from_env()
uvicorn.run(create_app(settings), host="127.0.0.1", port=settings.port, log_level="warning")
"""


def scrape(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of every sample called ``name`` (labels as written, sorted)."""
    out = {}
    for m in re.finditer(rf"^{name}(?:{{(.*)}})? (\S+)$", text, re.M):
        labels = ",".join(sorted((m.group(1) or "").split(",")))
        out[labels] = float(m.group(2))
    return out


class Proc:
    def __init__(self, db: Path, metrics_dir: Path):
        catalog = Catalog(db)
        catalog.create_tenant("acme")
        key = catalog.create_key("acme")
        catalog.close()
        assert key.secret is not None
        self.key = key.secret
        port = free_port()
        env = {**os.environ, "AUDITSTREAM_DB": str(db), "AUDITSTREAM_PORT": str(port),
               "AUDITSTREAM_DEMO": "false", "AUDITSTREAM_METRICS_DIR": str(metrics_dir)}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.popen = subprocess.Popen([sys.executable, "-c", SERVE], env=env)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                                   headers={"X-API-Key": self.key})
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.client.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert self.popen.poll() is None, "server exited"
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        self.client.close()
        if self.popen.poll() is None:
            self.popen.terminate()
            self.popen.wait(timeout=30)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[list[Proc]]:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    # Two servers on separate files: only the metrics directory is shared here.
    started: list[Proc] = []
    try:
        for name in ("a", "b"):
            started.append(Proc(tmp_path / f"{name}.db", metrics_dir))
        yield started
    finally:
        for p in started:
            p.stop()


def test_metrics_of_every_process_are_summed(procs: list[Proc], tmp_path: Path) -> None:
    a, b = procs
    for proc, n in ((a, 3), (b, 4)):
        r = proc.client.post("/v1/events", json=[{"type": "x"}] * n)
        assert r.status_code == 201, r.text
    posted = "method=\"POST\",profile=\"native\",route=\"/v1/events\",status=\"201\""
    for proc in (a, b):
        # A request is counted just after its answer went out: give the last one a moment.
        deadline = time.monotonic() + 10
        while True:
            text = proc.client.get("/metrics").text
            if scrape(text, "auditstream_http_requests_total").get(posted) == 2.0 or (
                    time.monotonic() > deadline):
                break
            time.sleep(0.01)
        assert scrape(text, "auditstream_events_ingested_total") == {"": 7.0}
        assert scrape(text, "auditstream_http_requests_total")[posted] == 2.0
        latency = scrape(text, "auditstream_http_request_seconds_count")
        assert latency['profile="native",route="/v1/events"'] == 2.0
        assert scrape(text, "auditstream_store_commits_total")[""] >= 2.0
        assert scrape(text, "auditstream_store_commit_requests_count") == {"": 2.0}

    # A process that exits keeps its share: counters never go down.
    b.stop()
    worker_exited(b.popen.pid, str(tmp_path / "metrics"))
    text = a.client.get("/metrics").text
    assert scrape(text, "auditstream_events_ingested_total") == {"": 7.0}
    assert scrape(text, "auditstream_http_requests_total")[posted] == 2.0


ONE_PROCESS = """
import sys
from auditstream.metrics import Metrics
shared = Metrics.for_workers(sys.argv[1])
assert Metrics.for_workers(sys.argv[1]) is shared  # one set of values per process
shared.events_ingested.inc(5)
for make in (lambda: Metrics(), lambda: Metrics.for_workers(sys.argv[2])):
    try:
        make()
    except RuntimeError as exc:
        print("refused:", exc)
    else:
        raise SystemExit("a second set of metrics in a multi-process worker")
"""


def test_one_process_keeps_one_set_of_metrics(tmp_path: Path) -> None:
    """Values in a shared directory are per process, not per instance: a second instance
    in the same process would overwrite the first one's counts, so it is refused."""
    (tmp_path / "m").mkdir()
    r = subprocess.run([sys.executable, "-c", ONE_PROCESS, str(tmp_path / "m"),
                        str(tmp_path / "other")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("refused:") == 2, r.stdout


def test_the_directory_is_created_and_named_when_unusable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    script = ("import sys\nfrom auditstream.metrics import Metrics\n"
              "Metrics.for_workers(sys.argv[1])\n")
    r = subprocess.run([sys.executable, "-c", script, str(tmp_path / "new" / "dir")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "new" / "dir").is_dir()
    r = subprocess.run([sys.executable, "-c", script, str(blocker)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and str(blocker) in r.stderr


def test_prepare_directory_creates_it_and_drops_a_previous_runs_values(tmp_path: Path) -> None:
    directory = tmp_path / "m"
    prepare_directory(str(directory))
    assert directory.is_dir()
    (directory / "counter_123.db").write_bytes(b"old")
    (directory / "histogram_123.db").write_bytes(b"old")
    (directory / "README").write_text("not ours")
    prepare_directory(str(directory))
    assert sorted(p.name for p in directory.iterdir()) == ["README"]
