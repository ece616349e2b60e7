// The console: explore, event detail (proof verified here), live tail, integrations,
// admin, and the embeddable viewer (/console/embed: explore and detail only, read-only).
// Everything it shows comes from the public API (api.js); the URL holds the whole state.
import * as api from "./api.js";
import { verifyEvent } from "./proof.js";

const $ = (id) => document.getElementById(id);
const EMBED = location.pathname === "/console/embed";
const PAGES = EMBED ? ["explore"] : ["explore", "live", "integrations", "admin"];
const RANGES = { "15m": 9e5, "1h": 36e5, "24h": 864e5, "7d": 6048e5, "30d": 2592e6, "365d": 31536e6 };
const INTERVAL_MS = { hour: 36e5, day: 864e5, week: 6048e5 };
const FACETS = ["type", "category", "severity", "outcome", "actor.id"];
const FIELDS = [
  "type", "category", "severity", "outcome", "title", "description", "id", "seq", "tags",
  "actor.id", "actor.type", "actor.name", "actor.ip", "subject.id", "subject.type",
  "subject.ecosystem", "subject.package", "subject.version", "source.module", "source.device",
  "source.client_id", "source.ip", "location.zone", "context.user_id", "context.org_id",
  "context.session_id", "context.request_id", "context.http_status", "llm.provider",
  "llm.model", "incident_id", "assigned_to", "requires_action", "since", "until",
];

// -------------------------------------------------------------------- helpers

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

const shortTime = (ts) => (ts || "").slice(0, 19).replace("T", " ");
const parseTs = (ts) => Date.parse(ts.replace(/(\.\d{3})\d*/, "$1"));
const isoUtc = (ms) => new Date(ms).toISOString().replace(/\.000Z$/, "Z");
const actorOf = (ev) => (ev.actor && (ev.actor.name || ev.actor.id)) || "";

function sevCell(sev) {
  return el("td", { class: `sev sev-${sev || "info"}`, text: sev || "" });
}

function quoteValue(v) {
  const s = String(v);
  return /^[\w.@\-/]+$/.test(s) ? s : '"' + s.replace(/\\/g, "\\\\").replace(/"/g, '\\"') + '"';
}

function showError(id, err) {
  $(id).textContent = err ? String(err.message || err) : "";
}

// -------------------------------------------------------------------- state (the URL)

function readState() {
  const p = new URLSearchParams(location.search);
  const page = PAGES.includes(p.get("page")) ? p.get("page") : "explore";
  return {
    page, q: p.get("q") || "", range: p.get("range") || "24h",
    since: p.get("since") || "", until: p.get("until") || "", event: p.get("event") || "",
  };
}

let state = readState();

function writeState(changes, push = true) {
  state = { ...state, ...changes };
  const p = new URLSearchParams();
  if (state.page !== "explore") p.set("page", state.page);
  if (state.q) p.set("q", state.q);
  if (state.range === "custom") {
    p.set("range", "custom");
    if (state.since) p.set("since", state.since);
    if (state.until) p.set("until", state.until);
  } else if (state.range !== "24h") p.set("range", state.range);
  if (state.event) p.set("event", state.event);
  const url = location.pathname + (p.toString() ? "?" + p : "");
  if (url !== location.pathname + location.search) {
    (push ? history.pushState : history.replaceState).call(history, null, "", url);
  }
}

// The time window [from, to] in ms and the filter parameters of the current search.
function window_() {
  if (state.range === "custom") {
    const from = state.since ? parseTs(state.since) : Date.now() - RANGES["24h"];
    const to = state.until ? parseTs(state.until) : Date.now();
    return [from, to];
  }
  const now = Date.now();
  return [now - (RANGES[state.range] || RANGES["24h"]), now];
}

function filterParams() {
  if (state.range === "custom") return { q: state.q, since: state.since, until: state.until };
  return { q: state.q, since: state.range };
}

// -------------------------------------------------------------------- boot and routing

async function boot() {
  if (EMBED) document.body.classList.add("embed");
  bindLogin();
  bindExplore();
  bindDetail();
  bindKeys();
  if (!EMBED) { bindLive(); bindAdmin(); }
  const ok = await api.restore(EMBED);
  if (!ok) {
    $(EMBED ? "embed-missing" : "login").hidden = false;
    return;
  }
  showApp();
}

function showApp() {
  $("login").hidden = true;
  $("nav").hidden = EMBED;
  $("signout").hidden = EMBED;
  $("who").textContent = EMBED ? "read-only viewer" : api.auth.user || "";
  // A signed-in user without the admin scope has no use for the admin page (the API
  // would refuse it anyway); a pasted key's scopes are not known, so it keeps the link.
  const admin = document.querySelector("nav a[data-page=admin]");
  admin.hidden = Boolean(api.auth.scopes) && !api.auth.scopes.includes("admin");
  route();
}

function route() {
  state = readState();
  for (const page of ["explore", "live", "integrations", "admin"]) $(page).hidden = page !== state.page;
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("active", a.dataset.page === state.page);
  }
  if (state.page !== "live") stopLive();
  if (state.page === "explore") {
    syncSearchForm();
    search();
  } else if (state.page === "live") startLive();
  else if (state.page === "integrations") loadIntegrations();
  else if (state.page === "admin") loadAdmin();
  if (state.event) openDetail(state.event, false); else closeDetail(false);
}

window.addEventListener("popstate", () => { if (api.auth.mode) route(); });

document.addEventListener("click", (e) => {
  const a = e.target.closest("nav a");
  if (!a) return;
  e.preventDefault();
  writeState({ page: a.dataset.page, event: "" });
  route();
});

function bindLogin() {
  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = e.target;
    try {
      await api.signIn(f.username.value, f.password.value);
      f.password.value = "";
      showError("login-error", null);
      showApp();
    } catch (err) { showError("login-error", err); }
  });
  $("key-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api.useKey(e.target.key.value.trim());
      e.target.key.value = "";
      showError("login-error", null);
      showApp();
    } catch (err) { showError("login-error", err); }
  });
  $("signout").addEventListener("click", async () => {
    await api.signOut().catch(() => {});
    location.href = "/console";
  });
}

// -------------------------------------------------------------------- explore

let searchSeq = 0;        // the newest search; answers of older ones are dropped
let nextCursor = null;
let loadingMore = false;
let plot = null;

function syncSearchForm() {
  $("q").value = state.q;
  $("range").value = state.range;
  $("custom-range").hidden = state.range !== "custom";
  $("since").value = state.since ? state.since.replace(/Z$/, "").slice(0, 19) : "";
  $("until").value = state.until ? state.until.replace(/Z$/, "").slice(0, 19) : "";
}

function bindExplore() {
  $("search").addEventListener("submit", (e) => {
    e.preventDefault();
    hideComplete();
    const range = $("range").value;
    const changes = { q: $("q").value.trim(), range, event: "" };
    if (range === "custom") {
      changes.since = $("since").value ? $("since").value + "Z" : "";
      changes.until = $("until").value ? $("until").value + "Z" : "";
    }
    writeState(changes);
    search();
  });
  $("range").addEventListener("change", () => {
    const custom = $("range").value === "custom";
    $("custom-range").hidden = !custom;
    if (custom) {
      const [from, to] = window_();
      $("since").value = isoUtc(from).slice(0, 19);
      $("until").value = isoUtc(to).slice(0, 19);
    } else $("search").requestSubmit();
  });
  $("zoom-out").addEventListener("click", () => {
    const [from, to] = window_();
    const span = to - from;
    const preset = Object.keys(RANGES).find((k) => RANGES[k] >= span * 3);
    writeState({ range: preset || "365d", since: "", until: "" });
    syncSearchForm();
    search();
  });
  for (const b of document.querySelectorAll("[data-export]")) {
    b.addEventListener("click", () => exportAs(b.dataset.export));
  }
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadMore();
  }).observe($("more"));
  bindComplete();
}

async function search() {
  const mine = ++searchSeq;
  const started = performance.now();
  showError("search-error", null);
  nextCursor = null;
  const tbody = $("results").tBodies[0];
  const params = filterParams();
  const pageP = api.json("/v1/events?" + api.query({ ...params, limit: 50 }));
  const histP = loadHistogram(params, mine);
  loadFacets(params, mine);
  try {
    const page = await pageP;
    if (mine !== searchSeq) return;
    tbody.replaceChildren(...page.data.map(resultRow));
    nextCursor = page.next_cursor;
    $("more").textContent = page.has_more ? "Loading more as you scroll…" : `${page.data.length ? "End of results." : "No matching events."}`;
    await histP;
    if (mine !== searchSeq) return;
    // For the benchmark and the tests: when the first page and the histogram are drawn.
    performance.measure("search", { start: started, end: performance.now() });
    document.body.dataset.searched = String(mine);
  } catch (err) {
    if (mine === searchSeq) {
      tbody.replaceChildren();
      $("more").textContent = "";
      showError("search-error", err);
    }
  }
}

function resultRow(ev) {
  const tr = el("tr", { "data-id": ev.id, tabindex: "-1" },
    el("td", { class: "mono", text: shortTime(ev.timestamp) }), sevCell(ev.severity),
    el("td", { text: ev.type || "" }), el("td", { text: ev.outcome || "" }),
    el("td", { text: actorOf(ev) }), el("td", { text: ev.title || "" }));
  tr.addEventListener("click", () => openDetail(ev.id));
  return tr;
}

async function loadMore() {
  if (!nextCursor || loadingMore || state.page !== "explore") return;
  loadingMore = true;
  const mine = searchSeq;
  try {
    const page = await api.json("/v1/events?" + api.query({ ...filterParams(), limit: 50, cursor: nextCursor }));
    if (mine !== searchSeq) return;
    $("results").tBodies[0].append(...page.data.map(resultRow));
    nextCursor = page.next_cursor;
    if (!page.has_more) $("more").textContent = "End of results.";
  } catch (err) {
    showError("search-error", err);
  } finally {
    loadingMore = false;
  }
}

function intervalFor(span) {
  if (span <= 3 * 864e5) return "hour";
  if (span <= 120 * 864e5) return "day";
  return "week";
}

async function loadHistogram(params, mine) {
  const [from, to] = window_();
  const interval = intervalFor(to - from);
  let answer;
  try {
    answer = await api.json("/v1/events/aggregate?" + api.query({ ...params, interval }));
  } catch (err) {
    return;  // the results call shows the error
  }
  if (mine !== searchSeq) return;
  const step = INTERVAL_MS[interval];
  const counts = new Map();
  let total = 0;
  for (const b of answer.buckets) {
    const n = b.rows.reduce((s, r) => s + r.count, 0);
    counts.set(Math.floor(parseTs(b.ts) / 1000), n);
    total += n;
  }
  // Every bucket of the window, empty ones too, aligned as the server aligns them (UTC).
  const first = answer.buckets.length ? Math.min(...counts.keys()) * 1000 : from;
  let start = first - Math.ceil((first - from) / step) * step;
  const xs = [], ys = [];
  for (let t = start; t <= to; t += step) {
    xs.push(t / 1000);
    ys.push(counts.get(t / 1000) || 0);
  }
  $("total").textContent = `${total.toLocaleString()} events, per ${interval}.`;
  drawHistogram(xs, ys, step / 1000);
}

function drawHistogram(xs, ys, stepS) {
  const box = $("histogram");
  const width = Math.max(300, box.clientWidth - 8);
  const styles = getComputedStyle(document.documentElement);
  const accent = styles.getPropertyValue("--accent").trim() || "#2f5fd0";
  const muted = styles.getPropertyValue("--muted").trim() || "#666";
  const grid = styles.getPropertyValue("--line").trim() || "#ddd";
  let dragged = false;
  const zoomTo = (fromS, toS) => {
    writeState({ range: "custom", since: isoUtc(fromS * 1000), until: isoUtc(toS * 1000), event: "" });
    syncSearchForm();
    search();
  };
  const opts = {
    width, height: 150, legend: { show: false },
    scales: { x: { time: true, range: [xs[0], xs[xs.length - 1] + stepS] } },
    axes: [
      { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
      { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: 50 },
    ],
    series: [{}, {
      label: "events", fill: accent, stroke: accent,
      paths: uPlot.paths.bars({ size: [0.9, 400], align: 1 }), points: { show: false },
    }],
    cursor: { drag: { x: true, y: false, setScale: false }, points: { show: false } },
    hooks: {
      setSelect: [(u) => {
        if (u.select.width < 3) return;
        dragged = true;
        const a = u.posToVal(u.select.left, "x");
        const b = u.posToVal(u.select.left + u.select.width, "x");
        u.setSelect({ left: 0, width: 0 }, false);
        zoomTo(Math.floor(a), Math.ceil(b));
      }],
    },
  };
  if (plot) plot.destroy();
  plot = new uPlot(opts, [xs, ys], box);
  plot.over.addEventListener("click", () => {
    if (dragged) { dragged = false; return; }
    const t = plot.posToVal(plot.cursor.left, "x");
    const i = xs.findIndex((x) => x <= t && t < x + stepS);
    if (i >= 0 && ys[i] > 0) zoomTo(xs[i], xs[i] + stepS);
  });
}

async function loadFacets(params, mine) {
  const box = $("facets");
  const answers = await Promise.all(FACETS.map((field) =>
    api.json("/v1/events/aggregate?" + api.query({ ...params, group_by: field }))
      .then((a) => [field, a.buckets.flatMap((b) => b.rows)]).catch(() => [field, []])));
  if (mine !== searchSeq) return;
  box.replaceChildren(...answers.flatMap(([field, rows]) => {
    rows = rows.filter((r) => r.key !== null && r.key !== undefined)
      .sort((a, b) => b.count - a.count).slice(0, field === "actor.id" ? 8 : 6);
    if (!rows.length) return [];
    return [el("h3", { text: field === "actor.id" ? "top actors" : field }),
      ...rows.map((r) => el("button", {
        type: "button", "data-facet": `${field}:${quoteValue(r.key)}`,
        onclick: () => addFilter(`${field}:${quoteValue(r.key)}`),
      }, el("span", { text: String(r.key) }), el("span", { text: r.count.toLocaleString() })))];
  }));
}

function addFilter(term) {
  const q = state.q ? `${state.q} ${term}` : term;
  writeState({ q, event: "" });
  syncSearchForm();
  search();
}

async function exportAs(format) {
  try {
    const res = await api.request("/v1/events/export?" + api.query({ ...filterParams(), format }));
    const blob = await res.blob();
    const name = /filename="([^"]+)"/.exec(res.headers.get("content-disposition") || "");
    const a = el("a", { href: URL.createObjectURL(blob), download: name ? name[1] : `events.${format}` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  } catch (err) { showError("search-error", err); }
}

// ------------------------------------------------ completion of fields and frequent values

const valueCache = new Map();
let completeItems = [];
let completeIndex = -1;

function currentToken(input) {
  const upto = input.value.slice(0, input.selectionStart);
  const m = /[^\s()]*$/.exec(upto);
  const token = m ? m[0] : "";
  return { token, start: upto.length - token.length, end: input.selectionStart };
}

async function suggestions(token) {
  const neg = token.startsWith("-") ? "-" : "";
  const t = token.slice(neg.length);
  const colon = t.indexOf(":");
  if (colon < 0) {
    if (!t) return [];
    return FIELDS.filter((f) => f.startsWith(t) && f !== t).slice(0, 10)
      .map((f) => ({ text: `${neg}${f}:`, note: "field" }));
  }
  const field = t.slice(0, colon);
  const prefix = t.slice(colon + 1).replace(/^"/, "");
  if (!FIELDS.includes(field) || field === "since" || field === "until" || field === "title" ||
      field === "description") return [];
  if (!valueCache.has(field)) {
    valueCache.set(field, api.json("/v1/events/aggregate?" + api.query({ since: "30d", group_by: field }))
      .then((a) => a.buckets.flatMap((b) => b.rows).filter((r) => r.key !== null)
        .sort((a, b) => b.count - a.count).slice(0, 50))
      .catch(() => []));
  }
  const rows = await valueCache.get(field);
  return rows.filter((r) => String(r.key).startsWith(prefix)).slice(0, 10)
    .map((r) => ({ text: `${neg}${field}:${quoteValue(r.key)}`, note: r.count.toLocaleString() }));
}

function hideComplete() {
  $("complete").hidden = true;
  completeItems = [];
  completeIndex = -1;
}

function renderComplete() {
  const list = $("complete");
  list.replaceChildren(...completeItems.map((s, i) => el("li", {
    role: "option", "aria-selected": String(i === completeIndex),
    onmousedown: (e) => { e.preventDefault(); acceptComplete(i); },
  }, s.text, el("small", { text: s.note }))));
  list.hidden = !completeItems.length;
}

function acceptComplete(i) {
  const input = $("q");
  const { start, end } = currentToken(input);
  const text = completeItems[i].text;
  input.value = input.value.slice(0, start) + text + (text.endsWith(":") ? "" : " ") + input.value.slice(end);
  const caret = start + text.length + (text.endsWith(":") ? 0 : 1);
  input.setSelectionRange(caret, caret);
  hideComplete();
  if (text.endsWith(":")) input.dispatchEvent(new Event("input"));
}

function bindComplete() {
  const input = $("q");
  let asked = 0;
  input.addEventListener("input", async () => {
    const mine = ++asked;
    const items = await suggestions(currentToken(input).token);
    if (mine !== asked) return;
    completeItems = items;
    completeIndex = -1;
    renderComplete();
  });
  input.addEventListener("keydown", (e) => {
    if ($("complete").hidden) return;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      const n = completeItems.length;
      completeIndex = (completeIndex + (e.key === "ArrowDown" ? 1 : n - 1)) % n;
      renderComplete();
    } else if ((e.key === "Enter" || e.key === "Tab") && completeIndex >= 0) {
      e.preventDefault();
      acceptComplete(completeIndex);
    } else if (e.key === "Escape") {
      e.stopPropagation();
      hideComplete();
    }
  });
  input.addEventListener("blur", () => setTimeout(hideComplete, 100));
}

// -------------------------------------------------------------------- event detail

let publicKey = null;
let detailSeq = 0;

function bindDetail() {
  $("detail-close").addEventListener("click", () => closeDetail());
}

async function openDetail(id, push = true) {
  const mine = ++detailSeq;
  if (push) writeState({ event: id });
  $("detail").hidden = false;
  $("detail-title").textContent = id;
  const status = $("proof-status");
  status.className = "proof pending";
  status.textContent = "Verifying inclusion proof…";
  $("proof-steps").replaceChildren();
  $("detail-json").textContent = "";
  try {
    const res = await api.request(`/v1/events/${encodeURIComponent(id)}`);
    const raw = new Uint8Array(await res.arrayBuffer());
    const event = JSON.parse(new TextDecoder().decode(raw));
    if (mine !== detailSeq) return;
    $("detail-title").textContent = `${event.type || "event"} · seq ${event.seq} · ${id}`;
    $("detail-json").textContent = JSON.stringify(event, null, 2);
    let withProof;
    try {
      withProof = await api.json(`/v1/events/${encodeURIComponent(id)}?include=proof`);
    } catch (err) {
      if (mine !== detailSeq) return;
      status.className = "proof partial";
      status.textContent = err.status === 404 ? "No proof: integrity is disabled on this server." : `No proof: ${err.message}`;
      return;
    }
    publicKey = publicKey || await api.text("/v1/integrity/public-key");
    const result = await verifyEvent(raw, event, withProof.proof, publicKey);
    if (mine !== detailSeq) return;
    $("proof-steps").replaceChildren(...result.steps.map((s) => el("li", { text: s })));
    if (!result.ok) {
      status.className = "proof failed";
      status.textContent = `Proof verification FAILED: ${result.error}`;
    } else if (result.signature === "verified") {
      status.className = "proof verified";
      status.textContent = `Verified against checkpoint ${result.checkpointSize}`;
    } else {
      status.className = "proof partial";
      status.textContent = `Inclusion verified against checkpoint ${result.checkpointSize}; its signature was NOT checked: this browser has no Ed25519 in WebCrypto`;
    }
  } catch (err) {
    if (mine !== detailSeq) return;
    status.className = "proof failed";
    status.textContent = String(err.message || err);
  }
}

function closeDetail(push = true) {
  detailSeq++;
  $("detail").hidden = true;
  if (push && state.event) writeState({ event: "" });
}

// -------------------------------------------------------------------- keyboard

function bindKeys() {
  document.addEventListener("keydown", (e) => {
    const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName);
    if (e.key === "/" && !typing && state.page === "explore") {
      e.preventDefault();
      $("q").focus();
    } else if (e.key === "Escape") {
      if (!$("detail").hidden) closeDetail();
      else if (typing) document.activeElement.blur();
    } else if ((e.key === "ArrowDown" || e.key === "ArrowUp") && !typing && state.page === "explore") {
      e.preventDefault();
      const rows = [...$("results").tBodies[0].rows];
      if (!rows.length) return;
      const at = rows.findIndex((r) => r.classList.contains("selected"));
      const next = Math.max(0, Math.min(rows.length - 1, at + (e.key === "ArrowDown" ? 1 : -1)));
      rows.forEach((r, i) => r.classList.toggle("selected", i === next));
      rows[next].focus();
      rows[next].scrollIntoView({ block: "nearest" });
      if (!$("detail").hidden) openDetail(rows[next].dataset.id);
    } else if (e.key === "Enter" && !typing && state.page === "explore") {
      const row = $("results").querySelector("tr.selected");
      if (row) openDetail(row.dataset.id);
    }
  });
}

// -------------------------------------------------------------------- live tail

const live = { ctrl: null, lastSeq: null, paused: false, retry: null, count: 0 };

function bindLive() {
  $("live-toggle").addEventListener("click", () => {
    if (live.paused) {
      live.paused = false;
      $("live-toggle").textContent = "Pause";
      liveMarker(live.lastSeq === null ? "resumed" : `resumed after seq ${live.lastSeq}: the events since then are filled from the store`);
      connectLive();
    } else {
      live.paused = true;
      $("live-toggle").textContent = "Resume";
      stopLive();
      $("live-status").textContent = "paused";
    }
  });
  $("live-q").addEventListener("change", () => {
    live.lastSeq = null;
    $("live-table").tBodies[0].replaceChildren();
    stopLive();
    if (!live.paused) connectLive();
  });
}

function liveMarker(text) {
  const row = el("tr", { class: "marker" }, el("td", { colspan: "6", text: `— ${text} —` }));
  $("live-table").tBodies[0].prepend(row);
}

function startLive() {
  if (!live.paused && !live.ctrl) connectLive();
}

function stopLive() {
  clearTimeout(live.retry);
  if (live.ctrl) { live.ctrl.abort(); live.ctrl = null; }
}

async function connectLive() {
  stopLive();
  const ctrl = new AbortController();
  live.ctrl = ctrl;
  const h = { ...api.headers(), Accept: "text/event-stream" };
  if (live.lastSeq !== null) h["Last-Event-ID"] = String(live.lastSeq);
  $("live-status").textContent = "connecting…";
  try {
    const res = await fetch("/v1/events/stream?" + api.query({ q: $("live-q").value.trim() }),
      { headers: h, signal: ctrl.signal, credentials: "same-origin" });
    if (!res.ok) {
      let problem = null;
      try { problem = await res.json(); } catch { /* */ }
      throw new api.ApiError(res.status, problem);
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        liveBlock(buf.slice(0, cut));
        buf = buf.slice(cut + 2);
      }
    }
    throw new Error("the stream ended");
  } catch (err) {
    if (ctrl.signal.aborted) return;
    live.ctrl = null;
    if (err instanceof api.ApiError && err.status < 500 && err.status !== 429) {
      $("live-status").textContent = `stopped: ${err.message}`;
      return;
    }
    $("live-status").textContent = "disconnected; reconnecting…";
    liveMarker(`connection lost after seq ${live.lastSeq ?? "–"}; reconnecting`);
    live.retry = setTimeout(() => {
      liveMarker(`reconnected: the gap after seq ${live.lastSeq ?? "–"} is filled from the store`);
      connectLive();
    }, 1500);
  }
}

function liveBlock(block) {
  let id = null, data = "", comment = "";
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) comment = line.slice(1).trim();
    else if (line.startsWith("id:")) id = Number(line.slice(3).trim());
    else if (line.startsWith("data:")) data += line.slice(5).trimStart();
  }
  if (comment.startsWith("subscribed")) {
    $("live-status").textContent = `live (${comment})`;
    document.body.dataset.live = "subscribed";
  }
  if (!data) return;
  const ev = JSON.parse(data);
  if (id !== null) live.lastSeq = id;
  live.count++;
  const row = el("tr", { "data-id": ev.id },
    el("td", { class: "mono", text: String(ev.seq) }), el("td", { class: "mono", text: shortTime(ev.timestamp) }),
    sevCell(ev.severity), el("td", { text: ev.type || "" }), el("td", { text: actorOf(ev) }),
    el("td", { text: ev.title || "" }));
  row.addEventListener("click", () => openDetail(ev.id));
  const body = $("live-table").tBodies[0];
  body.prepend(row);
  while (body.rows.length > 500) body.lastElementChild.remove();
}

// -------------------------------------------------------------------- integrations

async function loadIntegrations() {
  const status = $("integrations-status");
  const table = $("integrations-table");
  status.textContent = "Loading…";
  let list;
  try {
    list = await api.json("/v1/integrations");
  } catch (err) {
    table.hidden = true;
    status.textContent = err.status === 404
      ? "Integrations are not available on this server (GET /v1/integrations answered 404)."
      : `Integrations could not be read: ${err.message}`;
    return;
  }
  const items = Array.isArray(list) ? list : (list.data || []);
  status.textContent = items.length ? "" : "No integrations yet.";
  table.hidden = !items.length;
  table.tBodies[0].replaceChildren(...items.map((it) => el("tr", {},
    el("td", { text: it.name || it.id }), el("td", { text: it.kind || "" }),
    el("td", { class: `state-${it.state}`, text: it.enabled === false ? "disabled" : it.state || "" }),
    el("td", { text: it.lag === undefined || it.lag === null ? "" : String(it.lag) }),
    el("td", { class: "mono", text: shortTime(it.last_success_at) }),
    el("td", { text: it.last_error || "" }),
    el("td", {},
      el("button", { type: "button", class: "link", text: "attempts", onclick: () => integrationDetail(it) }),
      el("button", { type: "button", class: "link", text: "send test event", onclick: () => integrationAction(it, "test") })))));
}

async function integrationAction(it, action) {
  const status = $("integrations-status");
  try {
    const answer = await api.json(`/v1/integrations/${encodeURIComponent(it.id)}/${action}`, { method: "POST", body: {} });
    status.textContent = `${it.name}: ${action} → ${JSON.stringify(answer)}`;
    if (action === "redeliver") integrationDetail(it);
  } catch (err) {
    status.textContent = `${it.name}: ${action} failed: ${err.message}`;
  }
}

async function integrationDetail(it) {
  const box = $("integration-detail");
  const id = encodeURIComponent(it.id);
  box.replaceChildren(el("h2", { text: it.name || it.id }));
  try {
    const [attempts, dead] = await Promise.all([
      api.json(`/v1/integrations/${id}/attempts`), api.json(`/v1/integrations/${id}/dead-letters`)]);
    const rows = (x) => (Array.isArray(x) ? x : (x && x.data) || []);
    box.append(el("h3", { text: "Recent attempts" }), el("table", { class: "results", id: "attempts-table" },
      el("thead", {}, el("tr", {}, ...["At", "Action", "Seqs", "Result", "Code", "Latency", "Error"].map((t) => el("th", { text: t })))),
      el("tbody", {}, ...rows(attempts).map((a) => el("tr", {},
        el("td", { class: "mono", text: shortTime(a.at) }),
        el("td", { text: a.action }),
        el("td", { class: "mono", text: a.events ? `${a.first_seq}–${a.last_seq}` : "" }),
        el("td", { class: a.ok ? "" : "error", text: a.ok ? "ok" : "failed" }),
        el("td", { text: String(a.status_code ?? "") }),
        el("td", { text: `${a.latency_ms} ms` }),
        el("td", { text: a.error || "" }))))));
    const letters = rows(dead);
    box.append(el("h3", { text: `Dead letters (${letters.length})` },
      letters.length ? el("button", { type: "button", class: "link", text: "redeliver", onclick: () => integrationAction(it, "redeliver") }) : null),
      el("pre", { text: letters.map((d) => JSON.stringify(d)).join("\n") || "none" }));
  } catch (err) {
    box.append(el("p", { class: "error", text: err.message }));
  }
}

// -------------------------------------------------------------------- admin

function bindAdmin() {
  $("key-create").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = e.target;
    const scopes = [...f.querySelectorAll("input[name=scope]:checked")].map((i) => i.value);
    try {
      const key = await api.json("/v1/keys", { method: "POST", body: { name: f.name.value || null, scopes } });
      $("key-secret").hidden = false;
      $("key-secret").textContent = `New key (shown once): ${key.key}`;
      f.reset();
      loadAdmin();
    } catch (err) { showError("admin-error", err); }
  });
  $("user-create").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = e.target;
    const scopes = [...f.querySelectorAll("input[name=scope]:checked")].map((i) => i.value);
    try {
      await api.json("/v1/users", { method: "POST", body: { username: f.username.value, password: f.password.value, scopes } });
      f.reset();
      loadAdmin();
    } catch (err) { showError("admin-error", err); }
  });
  $("viewer-create").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = e.target;
    try {
      const t = await api.json("/v1/viewer-tokens", { method: "POST", body: { q: f.q.value || null, ttl_seconds: Number(f.ttl.value) } });
      $("viewer-secret").hidden = false;
      $("viewer-secret").textContent = `Viewer token (shown once, until ${t.expires_at}): ${location.origin}${t.embed_url}`;
    } catch (err) { showError("admin-error", err); }
  });
}

async function loadAdmin() {
  showError("admin-error", null);
  const fmt = (s) => (s ? new Date(s * 1000).toISOString().slice(0, 16).replace("T", " ") : "");
  try {
    const [keys, users] = await Promise.all([api.json("/v1/keys"), api.json("/v1/users")]);
    $("keys").tBodies[0].replaceChildren(...keys.data.map((k) => el("tr", {},
      el("td", { class: "mono", text: k.id }), el("td", { text: k.name || "" }),
      el("td", { text: k.scopes.join(" ") }), el("td", { class: "mono", text: fmt(k.created) }),
      el("td", {}, k.revoked ? el("span", { class: "hint", text: `revoked ${fmt(k.revoked)}` })
        : el("button", { type: "button", class: "link", text: "revoke", onclick: async () => {
          if (!confirm(`Revoke ${k.id}?`)) return;
          try { await api.json(`/v1/keys/${encodeURIComponent(k.id)}`, { method: "DELETE" }); loadAdmin(); } catch (err) { showError("admin-error", err); }
        } })))));
    $("users").tBodies[0].replaceChildren(...users.data.map((u) => el("tr", {},
      el("td", { text: u.username }), el("td", { text: u.scopes.join(" ") }), el("td", { class: "mono", text: fmt(u.created) }))));
  } catch (err) { showError("admin-error", err); }
  api.text("/v1/integrity/checkpoint").then((t) => { $("checkpoint").textContent = t; })
    .catch((err) => { $("checkpoint").textContent = err.message; });
  api.text("/v1/integrity/public-key").then((t) => { $("pubkey").textContent = t; })
    .catch((err) => { $("pubkey").textContent = err.message; });
}

// uPlot is a classic deferred script; modules run after it, so it is there by now.
boot();
