"""The console's first answer at scale (issue 11): the first page of results and the 24 h
histogram of the largest tenant, from pressing Enter to both drawn.

    python -m bench.reads build FILE --events 1000000      # once: the bench stream
    python -m bench.console FILE [--workers 2] [--repeat 15]

Against ``auditstream serve`` on FILE (a subprocess, the default two workers):

* the two API calls the explore page makes for it, each alone, 1 client, after two
  warm-up requests: ``GET /v1/events?since=24h&limit=50`` and
  ``GET /v1/events/aggregate?since=24h&interval=hour`` (p50 and max);
* the five facet aggregates the page also asks for (``group_by`` type, category,
  severity, outcome, actor.id), which run beside them but are not part of the figure;
* the same for the range "Last 30 days" (the whole tenant, a daily histogram);
* in headless Chromium (Debian's, through Playwright): the console signed in with the
  tenant's key, the range "Last 24 hours", then ``--repeat`` times: press Enter in the
  search box and read the page's own ``performance.measure("search")``, which spans the
  submit handler to the moment the first page is in the table and the histogram is drawn
  (the facets keep loading at the same time, so they compete for the server as they do
  for a person).

Prints one JSON document. The machine is shared: the figures are wall-clock under
whatever else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from .run import free_port, python_bin

CHROMIUM = os.environ.get("AUDITSTREAM_TEST_CHROMIUM") or shutil.which("chromium") or \
    "/usr/bin/chromium"
FACETS = ("type", "category", "severity", "outcome", "actor.id")


def ms(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(values) * 1000, 1),
            "max_ms": round(max(values) * 1000, 1)}


def timed(client: httpx.Client, path: str, params: dict[str, str], n: int) -> dict[str, Any]:
    lat = []
    for i in range(n + 2):
        t0 = time.perf_counter()
        r = client.get(path, params=params)
        if r.status_code != 200:
            raise RuntimeError(f"{path}: {r.status_code} {r.text[:300]}")
        if i >= 2:
            lat.append(time.perf_counter() - t0)
    return {**ms(lat), "bytes": len(r.content)}


def in_browser(url: str, key: str, repeat: int, range_: str = "24h") -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.add_init_script(f"sessionStorage.setItem('auditstream.key', {json.dumps(key)})")
        page.goto(url + f"/console?range={range_}")
        page.wait_for_function("() => Number(document.body.dataset.searched || 0) > 0")
        runs = []
        for _ in range(repeat):
            before = int(page.evaluate("() => Number(document.body.dataset.searched)"))
            page.click("#q")
            page.keyboard.press("Enter")
            page.wait_for_function("n => Number(document.body.dataset.searched) > n",
                                   arg=before)
            runs.append(page.evaluate(
                "() => performance.getEntriesByName('search').at(-1).duration") / 1000)
        rows = page.locator("#results tbody tr").count()
        total = page.locator("#total").text_content()
        browser.close()
    return {**ms(runs), "runs": len(runs), "rows_shown": rows, "histogram_total": total}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.console")
    ap.add_argument("db", type=Path)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args(argv)
    meta = json.loads(Path(str(args.db) + ".bench.json").read_text())
    port = free_port()
    env = dict(os.environ, AUDITSTREAM_WORKERS=str(args.workers))
    proc = subprocess.Popen([python_bin(), "-m", "auditstream", "serve", "--db", str(args.db),
                             "--port", str(port), "--no-demo"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    doc: dict[str, Any] = {"tenant": meta["tenant"], "events_in_file": meta["events"],
                           "workers": args.workers}
    try:
        client = httpx.Client(base_url=url, headers={"X-API-Key": meta["key"]}, timeout=120)
        deadline = time.monotonic() + 120
        while True:
            try:
                client.get("/healthz")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("server did not start") from None
                time.sleep(0.1)
        total = client.get("/v1/events", params={"limit": 1, "include_total": "true"}
                           ).json()["total"]
        day = client.get("/v1/events", params={"limit": 1, "since": "24h",
                                               "include_total": "true"}).json()["total"]
        doc["tenant_events"] = total
        doc["tenant_events_last_24h"] = day
        doc["first_page"] = timed(client, "/v1/events", {"since": "24h", "limit": "50"},
                                  args.repeat)
        doc["histogram_24h"] = timed(client, "/v1/events/aggregate",
                                     {"since": "24h", "interval": "hour"}, args.repeat)
        doc["facets"] = {f: timed(client, "/v1/events/aggregate",
                                  {"since": "24h", "group_by": f}, 5)["p50_ms"]
                         for f in FACETS}
        doc["browser_enter_to_drawn"] = in_browser(url, meta["key"], args.repeat)
        # The same over the whole tenant (the "Last 30 days" range: a daily histogram).
        doc["first_page_30d"] = timed(client, "/v1/events", {"since": "30d", "limit": "50"},
                                      args.repeat)
        doc["histogram_30d"] = timed(client, "/v1/events/aggregate",
                                     {"since": "30d", "interval": "day"}, args.repeat)
        doc["browser_enter_to_drawn_30d"] = in_browser(url, meta["key"], args.repeat, "30d")
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    print(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
