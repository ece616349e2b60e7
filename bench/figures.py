"""The figures of issue #8's Performance section: targets, verdicts, and their summary.

One run (one server with ``--workers N`` on a fresh copy of the database) yields one value
per figure, each next to a baseline measured in the same run (the raw-SQLite ceiling,
``/healthz`` with the same workers, the engine in-process, the aggregate's SQL alone).
The machine is shared, so ``bench.run`` repeats each worker count, interleaved; the
summary gives per worker count the median of the repeats and their range.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    label: str  # how RESULTS.md names the figure
    op: str  # ">=", "<" or "<="
    threshold: float
    unit: str
    note: str = ""

    def met(self, value: float | None) -> bool:
        if value is None:
            return False
        if self.op == ">=":
            return value >= self.threshold
        if self.op == "<=":
            return value <= self.threshold
        return value < self.threshold

    @property
    def text(self) -> str:
        return f"{self.op} {self.threshold:g}" + ("" if self.unit == "ratio" else
                                                   f" {self.unit}")


#: Issue #8, "Performance", in its order; the last one is an earlier issue's target, kept
#: so that a regression in full-text search shows.
TARGETS: dict[str, Target] = {
    "ingest_batch_events_per_s": Target(
        "batch ingest (1,000-event requests, 4 clients)", ">=", 20_000, "events/s"),
    "ingest_batch_vs_raw_ceiling": Target(
        "batch ingest ÷ raw same-schema SQLite ceiling", ">=", 0.60, "ratio"),
    "ingest_batch_request_p99_ms": Target("batch request p99", "<", 250, "ms"),
    "single_event_posts_per_s": Target(
        "single-event POSTs, 32 clients", ">=", 3_000, "events/s"),
    "single_event_posts_vs_healthz": Target(
        "single-event POSTs ÷ `/healthz` req/s", ">=", 0.5, "ratio"),
    "page_1_p50_ms": Target("filtered page p50, 1 client", "<", 2, "ms"),
    "page_1_p99_ms": Target("filtered page p99, 1 client", "<", 10, "ms"),
    "page_4_p50_ms": Target("filtered page p50, 4 clients", "<", 5, "ms"),
    "page_4_p99_ms": Target("filtered page p99, 4 clients", "<", 25, "ms"),
    "page_32_vs_healthz": Target(
        "filtered page req/s ÷ `/healthz` req/s, 32 clients", ">=", 0.4, "ratio"),
    "aggregate_1_p50_vs_sql": Target(
        "aggregate type × hour, 30 d: 1-client p50 ÷ its SQL alone", "<=", 2, "ratio",
        "the target is set at 1M events"),
    "aggregate_32_p99_ms": Target("aggregate p99, 32 clients", "<", 1000, "ms",
                                  "the target is set at 1M events"),
    "server_rss_total_max_mb": Target(
        "total RSS of all server processes, peak", "<", 400, "MB"),
    "fts_32_p99_ms": Target("full-text page p99, 32 clients", "<", 300, "ms",
                            "an earlier issue's target"),
}


def figure(name: str, value: float | None, baseline_name: str | None = None,
           baseline: float | None = None, *, divide: bool = True,
           **extra: Any) -> dict[str, Any]:
    """One figure of one run: value, target, verdict, and its same-run baseline (and value
    ÷ baseline, unless the value is that ratio already: ``divide=False``)."""
    t = TARGETS[name]
    doc: dict[str, Any] = {"value": value, "unit": t.unit, "target": t.text,
                           "pass": t.met(value)}
    if baseline_name is not None:
        doc["baseline"] = {"name": baseline_name, "value": baseline}
        doc["ratio"] = _ratio(value, baseline) if divide else None
    doc.update(extra)
    return doc


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def run_figures(report: dict[str, Any], concurrency: int) -> dict[str, dict[str, Any]]:
    """Every figure of one run, from its measurements (``http``, ``raw_sqlite``,
    ``engine_inprocess``, ``server_rss``)."""
    h, raw, eng = report["http"], report["raw_sqlite"], report["engine_inprocess"]
    c = concurrency
    ib = h["ingest_batch"]
    # The HTTP floor is measured before the single POSTs and again after the queries;
    # their mean is the baseline of the ratios (the machine's load moves between them).
    hz = [x["requests_per_s"] for x in (h["healthz_32"], h.get("healthz_32_after")) if x]
    healthz = round(sum(hz) / len(hz))
    singles = h["single_event_posts"]["events_per_s"]
    page_c = h[f"page_{c}"]
    # The ClickHouse backend has no SQLite SQL to replay: its in-process answer stands in.
    agg_sql = (eng.get("aggregate_sql_alone") or eng["aggregate"])["p50_ms"]
    agg_1 = h["aggregate_1"]["p50_ms"]
    rss = report["server_rss"]
    return {
        "ingest_batch_events_per_s": figure(
            "ingest_batch_events_per_s", ib["events_per_s"],
            "raw_sqlite_insert_events_per_s", raw["insert_events_per_s"]),
        "ingest_batch_vs_raw_ceiling": figure(
            "ingest_batch_vs_raw_ceiling", _ratio(ib["events_per_s"],
                                                  raw["insert_events_per_s"]),
            "raw_sqlite_insert_events_per_s", raw["insert_events_per_s"], divide=False),
        "ingest_batch_request_p99_ms": figure(
            "ingest_batch_request_p99_ms", ib["request_latency"]["p99_ms"],
            "raw_sqlite_10k_txn_p50_ms/10", round(raw["txn_ms_p50"] / 10, 2)),
        "single_event_posts_per_s": figure(
            "single_event_posts_per_s", singles,
            f"healthz_req_per_s_{c}_clients", healthz,
            requests_per_commit=h["single_event_posts"]["requests_per_commit"],
            p50_ms=h["single_event_posts"]["p50_ms"], p99_ms=h["single_event_posts"]["p99_ms"]),
        "single_event_posts_vs_healthz": figure(
            "single_event_posts_vs_healthz", _ratio(singles, healthz),
            f"healthz_req_per_s_{c}_clients", healthz, divide=False, healthz_each=hz),
        "page_1_p50_ms": figure(
            "page_1_p50_ms", h["page_1"]["p50_ms"], "engine_inprocess_p50_ms",
            eng["page"]["p50_ms"]),
        "page_1_p99_ms": figure(
            "page_1_p99_ms", h["page_1"]["p99_ms"], "engine_inprocess_p99_ms",
            eng["page"]["p99_ms"]),
        "page_4_p50_ms": figure(
            "page_4_p50_ms", h["page_4"]["p50_ms"], "engine_inprocess_p50_ms",
            eng["page"]["p50_ms"]),
        "page_4_p99_ms": figure(
            "page_4_p99_ms", h["page_4"]["p99_ms"], "engine_inprocess_p99_ms",
            eng["page"]["p99_ms"]),
        "page_32_vs_healthz": figure(
            "page_32_vs_healthz", _ratio(page_c["requests_per_s"], healthz),
            f"healthz_req_per_s_{c}_clients", healthz, divide=False,
            requests_per_s=page_c["requests_per_s"], p50_ms=page_c["p50_ms"],
            p99_ms=page_c["p99_ms"]),
        "aggregate_1_p50_vs_sql": figure(
            "aggregate_1_p50_vs_sql", _ratio(agg_1, agg_sql), "aggregate_sql_alone_p50_ms",
            agg_sql, divide=False, http_p50_ms=agg_1,
            engine_inprocess_p50_ms=eng["aggregate"]["p50_ms"],
            tenant_events=h[f"aggregate_{c}"].get("tenant_events"),
            events=ib["events"]),
        "aggregate_32_p99_ms": figure(
            "aggregate_32_p99_ms", h[f"aggregate_{c}"]["p99_ms"],
            "aggregate_1_client_p50_ms", agg_1,
            requests_per_s=h[f"aggregate_{c}"]["requests_per_s"], events=ib["events"]),
        "server_rss_total_max_mb": figure(
            "server_rss_total_max_mb", rss["max_sampled_mb"], "idle_after_start_mb",
            rss["idle_after_start_mb"], pss_max_mb=rss["pss_max_mb"],
            sum_of_vm_hwm_mb=rss["sum_of_vm_hwm_mb"], processes=rss["processes"],
            max_mb_by_phase={k: v.get("server_rss_max_mb") for k, v in h.items()}),
        "fts_32_p99_ms": figure(
            "fts_32_p99_ms", h[f"fts_{c}"]["p99_ms"], "engine_inprocess_p99_ms",
            eng["fts"]["p99_ms"], one_client_ms=h["fts_1"]["p99_ms"]),
    }


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per worker count, per figure: the median over the repeats, the range, the spread
    ((max − min) ÷ median) and how many repeats met the target."""
    by_workers: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in runs:
        if "figures" in r:
            by_workers.setdefault((r.get("backend", "sqlite"), r["workers"]), []).append(
                r["figures"])
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for (backend, nworkers), figs in sorted(by_workers.items(),
                                             key=lambda kv: (kv[0][0] != "sqlite", kv[0])):
        workers = nworkers if backend == "sqlite" else f"{backend} {nworkers}"
        per: dict[str, dict[str, Any]] = {}
        for name, t in TARGETS.items():
            vals = [f[name]["value"] for f in figs if f[name]["value"] is not None]
            bases = [f[name]["baseline"]["value"] for f in figs
                     if f[name].get("baseline") and f[name]["baseline"]["value"] is not None]
            ratios = [f[name]["ratio"] for f in figs if f[name].get("ratio") is not None]
            med = _median(vals)
            per[name] = {
                "median": med, "min": min(vals, default=None), "max": max(vals, default=None),
                "spread": (round((max(vals) - min(vals)) / med, 3) if vals and med else None),
                "values": vals, "unit": t.unit, "target": t.text,
                "met": t.met(med), "met_runs": f"{sum(f[name]['pass'] for f in figs)}/{len(figs)}",
                "baseline_name": next((f[name]["baseline"]["name"] for f in figs
                                       if f[name].get("baseline")), None),
                "baseline_median": _median(bases), "ratio_median": _median(ratios),
            }
        out[str(workers)] = per
    return out


def _num(v: float | None) -> str:
    if v is None:
        return "–"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}" if abs(v) < 1 else f"{v:.2f}"


def markdown(summary: dict[str, dict[str, dict[str, Any]]]) -> str:
    """The summary as a table: one row per figure and worker count, side by side."""
    lines = ["| figure | target | workers | result (runs met) | value: median [min–max] | "
             "spread | baseline (median) | value ÷ baseline |",
             "|---|---|---|---|---|---|---|---|"]
    for name, t in TARGETS.items():
        for workers, per in summary.items():
            f = per[name]
            rng = f" [{_num(f['min'])}–{_num(f['max'])}]" if len(f["values"]) > 1 else ""
            base = (f"{f['baseline_name']} {_num(f['baseline_median'])}"
                    if f["baseline_name"] else "–")
            label = t.label + (f" ({t.note})" if t.note else "")
            unit = "" if t.unit == "ratio" else f" {t.unit}"
            spread = ("–" if f["spread"] is None or len(f["values"]) < 2
                      else f"{f['spread']:.0%}")
            verdict = "met" if f["met"] else "**missed**"
            lines.append(
                f"| {label} | {t.text} | {workers} | {verdict} ({f['met_runs']}) | "
                f"{_num(f['median'])}{unit}{rng} | {spread} | {base} | "
                f"{_num(f['ratio_median'])} |")
    return "\n".join(lines) + "\n"


__all__ = ["TARGETS", "Target", "figure", "markdown", "run_figures", "summarise"]
