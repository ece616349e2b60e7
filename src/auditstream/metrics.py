"""Prometheus metrics: of one app instance, or of every process of a multi-process server.

``Metrics()`` keeps its values in memory in its own registry, so several apps can coexist
in one process (the tests build many). ``Metrics.for_workers(directory)`` is the metrics of
a process of a multi-process server, in prometheus_client's multiprocess mode: every
process writes its values to files of its own in the shared directory, and /metrics, served
by any process, reports the sum over all the files, so over every process, including those
that have exited (a counter never goes down because a worker restarted).

Wiring a multi-process server (``AUDITSTREAM_METRICS_DIR``):

* before starting the processes: ``prepare_directory(dir)`` (creates it and removes the
  files of a previous run, which prometheus_client requires);
* in every process that counts (the HTTP workers, the writer): ``Metrics.for_workers(dir)``
  before anything is counted (``create_app`` does it when ``settings.metrics_dir`` is set);
* when a process has exited: ``worker_exited(pid, dir)``.

Names and labels are the same in both modes (only the ``_created`` samples are missing in
multiprocess mode, which prometheus_client does not aggregate).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

if TYPE_CHECKING:
    from .delivery.integration import Integration
    from .delivery.sinks import Outcome

#: prometheus_client's switch to file-backed values, and where their files go.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_process_lock = threading.Lock()
#: The one ``Metrics`` of this process in multiprocess mode, once made.
_process_metrics: Metrics | None = None


class Metrics:
    def __init__(self, multiprocess_dir: str | None = None) -> None:
        """In-memory metrics (``multiprocess_dir`` None), or this process's share of the
        metrics in ``multiprocess_dir``: call ``for_workers`` for those, there may be only
        one per process."""
        if multiprocess_dir is None:
            if _process_metrics is not None:
                raise RuntimeError(
                    "this process keeps its metrics in "
                    f"{os.environ.get(MULTIPROC_ENV)!r}: in-memory metrics made now would "
                    "share its files; use Metrics.for_workers")
            self.registry = CollectorRegistry()
            own: CollectorRegistry | None = self.registry
        else:
            # The values live in the directory's files; /metrics reads them all from there.
            self.registry = CollectorRegistry()
            MultiProcessCollector(self.registry, path=multiprocess_dir)
            own = None
        self.events_ingested = Counter(
            "auditstream_events_ingested", "Events durably appended", registry=own)
        self.commits = Counter(
            "auditstream_store_commits", "Group-commit transactions", registry=own)
        self.commit_jobs = Histogram(
            "auditstream_store_commit_requests", "Append requests per group commit",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=own)
        self.requests = Counter(
            "auditstream_http_requests",
            "HTTP requests by route, status and profile (native or a compat profile)",
            ["method", "route", "status", "profile"], registry=own)
        self.stream_connections = Gauge(
            "auditstream_stream_connections", "Open live streams (WebSocket and SSE)",
            registry=own, multiprocess_mode="livesum")
        self.stream_events_sent = Counter(
            "auditstream_stream_events_sent", "Events sent on live streams", registry=own)
        self.push_attempts = Counter(
            "auditstream_push_attempts",
            "Push messages sent, by kind and result (ok, outage, refused)",
            ["kind", "result"], registry=own)
        self.push_events_delivered = Counter(
            "auditstream_push_events_delivered",
            "Events a push receiver acknowledged, by kind", ["kind"], registry=own)
        self.latency = Histogram(
            "auditstream_http_request_seconds",
            "HTTP request latency by route and profile (native or a compat profile)",
            ["route", "profile"], registry=own,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))

    @classmethod
    def for_workers(cls, directory: str) -> Metrics:
        """This process's metrics in ``directory`` (made on the first call, the same object
        after): what it counts is added to what every other process using the directory
        counts, and its registry exposes the sum. One directory per process."""
        global _process_metrics
        with _process_lock:
            if _process_metrics is None:
                _use_directory(directory)
                _process_metrics = cls(directory)
            elif not _same_dir(os.environ[MULTIPROC_ENV], directory):
                raise RuntimeError(
                    f"this process keeps its metrics in {os.environ[MULTIPROC_ENV]!r}, "
                    f"not {directory!r}: one directory per process")
            return _process_metrics

    def on_push(self, integration: Integration, outcome: Outcome, events: int) -> None:
        result = "ok" if outcome.ok else "refused" if outcome.refused else "outage"
        self.push_attempts.labels(integration.kind, result).inc()
        if outcome.ok:
            self.push_events_delivered.labels(integration.kind).inc(events)

    def on_commit(self, jobs: int, _events: int) -> None:
        self.commits.inc()
        self.commit_jobs.observe(jobs)


def prepare_directory(directory: str) -> None:
    """Create ``directory`` and remove what a previous run left there: call it once per
    server start, before any process counts (a leftover file would be added to the sum)."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for f in path.glob("*.db"):
        f.unlink(missing_ok=True)


def worker_exited(pid: int, directory: str) -> None:
    """Bookkeeping after process ``pid`` of the server has exited (prometheus_client's
    ``mark_process_dead``). Its counters and histograms stay in the sum, as Prometheus
    expects of counters; only live gauges, if any are added, are dropped."""
    mark_process_dead(pid, directory)


def _use_directory(directory: str) -> None:
    """Put this process's metric values in files in ``directory``.

    prometheus_client chooses file-backed values when it is imported, if
    ``PROMETHEUS_MULTIPROC_DIR`` is set then. A worker learns the directory from its
    settings, after the import, so the choice is made again here (as prometheus_client's
    own tests do), before the first metric of this process is created.
    """
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RuntimeError(f"AUDITSTREAM_METRICS_DIR {directory!r} is not a usable "
                           f"directory: {exc}") from None
    current = os.environ.get(MULTIPROC_ENV)
    if current and not _same_dir(current, directory):
        raise RuntimeError(f"{MULTIPROC_ENV} is {current!r} but AUDITSTREAM_METRICS_DIR is "
                           f"{directory!r}: unset one or make them the same")
    os.environ[MULTIPROC_ENV] = directory
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()


def _same_dir(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)
