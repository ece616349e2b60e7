"""The benchmark harness: it measures the whole server, whatever ``--workers`` says.

``auditstream serve --workers N`` is several processes, so a figure read from the first one
alone (its CPU time, its RSS) would flatter the server. These tests run real processes and
the real ``python -m bench.run`` on a tiny workload; they check what is measured, not how
fast anything is.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from bench.figures import TARGETS
from bench.proctree import ProcessTree
from bench.run import parse_workers

ROOT = Path(__file__).resolve().parents[2]

#: A parent with two children: one burns 0.5 s of CPU and exits (the parent reaps it), the
#: other holds 64 MiB, burns 0.5 s of CPU and stays. The parent itself does neither.
_FAMILY = textwrap.dedent("""
    import subprocess, sys, time
    burn = ("import sys, time\\n"
            "ballast = bytearray(int(sys.argv[1])) if len(sys.argv) > 1 else b''\\n"
            "for i in range(0, len(ballast), 4096): ballast[i] = 1\\n"
            "while time.process_time() < 0.5: pass\\n"
            "print('ready', flush=True)\\n"
            "if len(sys.argv) > 1: time.sleep(600)\\n")
    subprocess.run([sys.executable, "-c", burn], check=True, stdout=subprocess.DEVNULL)
    child = subprocess.Popen([sys.executable, "-c", burn, str(64 << 20)],
                             stdout=subprocess.PIPE, text=True)
    child.stdout.readline()
    print(child.pid, flush=True)
    time.sleep(600)
""")


def test_process_tree_sums_cpu_and_rss_over_every_descendant() -> None:
    parent = subprocess.Popen([sys.executable, "-c", _FAMILY], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        tree = ProcessTree(parent.pid)
        assert tree.pids() == [parent.pid, child]
        # Both children's CPU counts: the live one's own, the exited one's through its
        # parent (cutime); the parent alone used almost none.
        assert tree.cpu_seconds() >= 0.8  # 1.0 used; /proc counts in clock ticks
        sample = tree.sample()
        assert sample.pids == 2
        assert sample.per_pid_rss_kb[child] >= 64 << 10
        assert sample.rss_kb == sum(sample.per_pid_rss_kb.values())
        assert tree.pss_kb() > 0
        assert tree.hwm_kb() >= sample.rss_kb
        assert tree.roles()[parent.pid] == "server"
    finally:
        for pid in ProcessTree(parent.pid).pids()[::-1]:
            os.kill(pid, signal.SIGKILL)
        parent.wait()


def test_worker_counts_parse_with_the_default_from_the_setting(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITSTREAM_WORKERS", "3")
    assert parse_workers("1,default") == [1, 3]
    assert parse_workers("2, 1,2") == [2, 1]
    assert parse_workers("default,3") == [3]


def test_bench_runs_one_and_several_workers_side_by_side(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--events", "2000", "--tenants", "2",
         "--workers", "1,2", "--single-pool", "200", "--single-seconds", "0.3",
         "--query-seconds", "0.6", "--floor-seconds", "0.2", "--concurrency", "8",
         "--workdir", str(tmp_path), "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [r["workers"] for r in report["runs"]] == [1, 2]
    for run in report["runs"]:
        # Every figure of the issue, measured, each next to a baseline from the same run.
        assert set(run["figures"]) == set(TARGETS)
        for name, fig in run["figures"].items():
            assert fig["value"] is not None, name
            assert fig["baseline"]["value"] is not None, name
        assert run["engine_inprocess"]["aggregate_sql_alone"]["statements"] >= 1
        assert run["http"]["ingest_batch"]["events"] == 2000
    one, two = (r["server_rss"] for r in report["runs"])
    assert one["processes"] == 1
    # The supervisor, the writer, two workers (and multiprocessing's resource tracker).
    assert two["processes"] >= 4
    named = [p["role"] for p in two["per_process_max_mb"]]
    assert named.count("writer") == 1 and named.count("worker") == 2, named
    ingest = report["runs"][1]["http"]["ingest_batch"]
    assert {"server", "writer", "worker"} <= set(ingest["server_cpu_cores_by_role"])
    assert two["max_sampled_mb"] > max(p["max_mb"] for p in two["per_process_max_mb"])
    assert set(report["summary"]) == {"1", "2"}
    table = out.with_suffix(".md").read_text()
    assert all(t.label in table for t in TARGETS.values())
    assert not list(tmp_path.glob("auditstream-bench-*")), "the work directory is removed"


def test_bench_measures_the_clickhouse_backend_beside_sqlite(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--events", "2000", "--tenants", "2",
         "--workers", "1", "--backend", "clickhouse", "--single-pool", "200",
         "--single-seconds", "0.3", "--query-seconds", "0.6", "--floor-seconds", "0.2",
         "--concurrency", "8", "--workdir", str(tmp_path), "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    # The SQLite baseline first, in the same run, then the ClickHouse index.
    assert [(r["backend"], r["workers"]) for r in report["runs"]] == [
        ("sqlite", 1), ("clickhouse", 1)]
    for run in report["runs"]:
        assert set(run["figures"]) == set(TARGETS)
        assert run["http"]["ingest_batch"]["events"] == 2000
        assert run["engine_inprocess"]["export"]["events"] >= 1000
        assert run["disk_bytes_per_event"] > 0
    assert report["runs"][1]["clickhouse_bytes"] > 0
    assert set(report["summary"]) == {"1", "clickhouse 1"}


def test_the_clickhouse_scale_bench_reads_what_it_wrote(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.clickhouse_scale", "--events", "20000", "--pool",
         "2000", "--query-seconds", "0.2", "--workdir", str(tmp_path), "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    for reads in (report["reads_as_loaded"], report["reads_merged"]):
        assert reads["export_scan_raw"]["events"] == 4000  # the largest tenant: 20 %
        assert reads["aggregate_type_hour_30d_largest"]["rows"] > 0
        assert reads["fulltext_common"]["page_events"] > 0
    assert report["index_merged"]["bytes_per_event"] > 0
    assert not list(tmp_path.glob("auditstream-chscale-*")), "the work directory is removed"
