"""Prometheus metrics of one app instance (its own registry, so several apps can coexist)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events_ingested = Counter(
            "auditstream_events_ingested", "Events durably appended", registry=self.registry)
        self.commits = Counter(
            "auditstream_store_commits", "Group-commit transactions", registry=self.registry)
        self.commit_jobs = Histogram(
            "auditstream_store_commit_requests", "Append requests per group commit",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=self.registry)
        self.requests = Counter(
            "auditstream_http_requests",
            "HTTP requests by route, status and profile (native or a compat profile)",
            ["method", "route", "status", "profile"], registry=self.registry)
        self.latency = Histogram(
            "auditstream_http_request_seconds",
            "HTTP request latency by route and profile (native or a compat profile)",
            ["route", "profile"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))

    def on_commit(self, jobs: int, _events: int) -> None:
        self.commits.inc()
        self.commit_jobs.observe(jobs)
