"""Fast synthetic event stream for benchmarks: many tenants, skewed, realistic shapes.

``bench_events(n)`` yields ``(tenant, event)`` pairs whose events are valid ``EventIn``
dicts of about 600 bytes of JSON, shaped like the five seed domains (HTTP audit, identity,
package installs, port security, LLM calls) plus privileged-access events. It has to be
much faster than anything it feeds (≥100k events/s on one core) so that a benchmark
measures the store, not the generator. So everything costly is done once, up front:

- per type, a pool of prebuilt variants (title, description, subject, extras), formatted
  with ``str.format`` once instead of per event;
- pools of actors, sources and sessions, shared by all tenants;
- lookup tables of 4096 entries for the skewed tenant and type choices, indexed by the bits
  of a single ``getrandbits(80)`` per event instead of ``random.choices`` calls;
- timestamps assembled from cached day prefixes and ``HH:MM:SS`` strings.

Shape of the stream (what query benchmarks can rely on):

- tenants ``t000``.. are Zipf-skewed; the exponent is solved so the largest tenant holds
  ~12% of all events (uniform when there are too few tenants for that);
- the 40 types have fixed categories, base severities and frequencies (``TYPES``);
- timestamps cover the last ``days`` days in increasing order, with up to four
  inter-event gaps (at most 5 minutes) of jitter, so a load looks like a replay of real
  traffic rather than a perfectly sorted file;
- titles and descriptions carry searchable words and recurring phrases
  ("Nordic Star", "brute force", "typosquat", "seal broken").

Nested objects (``subject``, ``metadata``, ``llm`` …) are shallow-copied per event, but
values inside them (lists such as ``payload.reasons``) may be shared between events: treat
the events as read-only, as the ingest path does.

``python -m bench.gen`` prints the generator's own figures (rate, average JSON size, skew).
"""

from __future__ import annotations

import bisect
import itertools
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

__all__ = ["TYPES", "bench_events", "tenant_names", "tenant_weights"]

_US = 1_000_000
_DAY_US = 86_400 * _US
_TABLE_BITS = 12  # 4096-entry choice tables: share resolution of 1/4096 is plenty
_TABLE = 1 << _TABLE_BITS
_VARIANTS = 256  # prebuilt variants per type: ~10k distinct titles across 40 types
_TOP_TENANT_SHARE = 0.12

#: (type, category, base severity, shape, relative frequency). ``shape`` selects which nested
#: fields the event carries; frequencies are long-tailed like real audit traffic.
TYPES: tuple[tuple[str, str, str, str, float], ...] = (
    ("session.created", "session", "info", "identity", 60),
    ("login", "auth", "info", "http", 45),
    ("task.created", "task", "info", "http", 30),
    ("gate_transaction_created", "gate", "low", "port", 28),
    ("install", "install", "info", "install", 26),
    ("llm.call", "llm", "info", "llm", 25),
    ("task.completed", "task", "info", "http", 22),
    ("user.verification.succeeded", "user", "info", "identity", 20),
    ("token.refreshed", "auth", "info", "http", 18),
    ("vm.started", "vm", "info", "http", 14),
    ("motion_detected", "perimeter", "medium", "port", 12),
    ("vm.stopped", "vm", "info", "http", 12),
    ("secret.read", "access", "low", "access", 11),
    ("logout", "auth", "info", "http", 10),
    ("ssh.session.started", "access", "info", "access", 9),
    ("session.expired", "session", "info", "identity", 8),
    ("audit", "install", "info", "install", 7),
    ("zone_entry", "maritime", "medium", "port", 7),
    ("user.updated", "user", "info", "identity", 6),
    ("vm.created", "vm", "info", "http", 5),
    ("mission_launched", "drone", "low", "port", 5),
    ("user.verification.failed", "user", "medium", "identity", 5),
    ("ocr_mismatch", "gate", "medium", "port", 4),
    ("user.created", "user", "info", "identity", 4),
    ("invoice.paid", "billing", "info", "http", 3),
    ("task.failed", "task", "low", "http", 3),
    ("mfa.challenge", "auth", "low", "identity", 3),
    ("ais_gap", "maritime", "high", "port", 2.5),
    ("speed_anomaly", "maritime", "medium", "port", 2),
    ("camera_offline", "perimeter", "medium", "port", 2),
    ("vm.deleted", "vm", "low", "http", 2),
    ("organization.membership.created", "organization", "info", "identity", 1.5),
    ("gate_override", "gate", "medium", "port", 1.5),
    ("policy.updated", "config", "medium", "access", 1.2),
    ("api_key.created", "auth", "low", "http", 1),
    ("fence_tamper", "perimeter", "high", "port", 0.8),
    ("user.deleted", "user", "low", "identity", 0.6),
    ("seal_violation", "gate", "high", "port", 0.6),
    ("drone_lost_link", "drone", "high", "port", 0.4),
    ("perimeter_breach", "perimeter", "critical", "port", 0.3),
)

# ---- vocabulary -----------------------------------------------------------------------

_FIRST = ("Alice", "Bob", "Carla", "Deepak", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jonas",
          "Kate", "Liam", "Mona", "Nils", "Olga", "Pedro", "Quinn", "Rosa", "Sven", "Tara")
_LAST = ("Martin", "Nguyen", "Rossi", "Iyer", "Schulz", "Haddad", "Okafor", "Tanaka", "Moreau",
         "Berg", "OConnor", "Walsh", "Silva", "Kowalski", "Novak", "Larsen")
_DOMAINS = ("acme.example", "globex.example", "initech.example", "umbrella.example")
_UAS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0.0.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Firefox/128.0",
    "python-httpx/0.27.0", "platform-cli/2.4.1 (linux; amd64)", "Terraform/1.9.5",
    "curl/8.5.0", "okhttp/4.12.0", "Go-http-client/2.0", "authpi-node/3.2.0",
)
_VESSELS = ("MV Nordic Star", "MV Baltic Dawn", "MT Aurora Spirit", "MV Cape Meridian",
            "MSC Lucia", "MT Sea Falcon", "MV Orient Pearl", "MV Nordic Star")
_ZONES = (("lng_terminal", "LNG Terminal", 51.4835, -0.0472),
          ("north_perimeter", "North Perimeter Sector 3", 51.4890, -0.0510),
          ("gate_3", "Gate 3", 51.4861, -0.0398),
          ("container_yard", "Container Yard Block C", 51.4849, -0.0431),
          ("berth_7", "Berth 7", 51.4818, -0.0455))
_PACKAGES = {
    "npm": ("react", "lodash", "express", "axios", "left-padd", "lodahs", "chalk", "next"),
    "pip": ("requests", "numpy", "pandas", "reqeusts", "django", "colourama", "urllib3"),
    "go": ("github.com/gin-gonic/gin", "golang.org/x/crypto", "github.com/spf13/cobra"),
    "cargo": ("serde", "tokio", "serde-jsonn", "clap"),
}
_COMMANDS = {"npm": "npm install", "pip": "pip install", "go": "go get", "cargo": "cargo add"}
_REASONS = ("Known typosquat of a popular package", "Scorecard below minimum threshold",
            "Package published less than 72 hours ago", "Install script makes network requests",
            "Maintainer changed in the latest release", "Known vulnerability CVE-2021-23337")
_MODELS = (("openai", "gpt-4o-2024-08-06", 2.5, 10.0), ("openai", "gpt-4o-mini", 0.15, 0.6),
           ("anthropic", "claude-sonnet-4-20250514", 3.0, 15.0),
           ("anthropic", "claude-3-5-haiku-20241022", 0.8, 4.0),
           ("google", "gemini-2.0-flash", 0.1, 0.4), ("mistral", "mistral-large-2411", 2.0, 6.0))
_SERVICES = ("support-bot", "code-review-agent", "doc-summarizer", "triage-agent", "scheduler")
# Trailing clauses give the full-text index a realistic spread of common and rare terms;
# port events get their own, so a login is never "confirmed by a second sensor".
_CLAUSES = (
    "after repeated attempts from the same address", "during the night shift",
    "flagged by the anomaly model for analyst review", "matching a brute force pattern",
    "outside the usual working hours", "from a new device and location",
    "in the nightly maintenance window", "while the on-call engineer was paged",
    "within the retention policy limits", "escalated to the security operations centre",
    "with no prior history for this subject", "after a configuration change",
)
_PORT_CLAUSES = (
    "near the Nordic Star berth", "confirmed by a second sensor",
    "correlated with an earlier alert in the same zone", "during the night shift",
    "auto-resolved after thirty seconds", "escalated to the security operations centre",
    "while the Nordic Star was alongside", "in heavy rain with reduced visibility",
)
# Port events happen where their equipment is.
_CATEGORY_ZONES = {"gate": (2,), "perimeter": (1, 1, 3, 0), "maritime": (0, 4, 4),
                   "drone": (0, 1, 2, 3, 4)}

# type -> (title template, description template); {a}.. are filled from per-type slots.
_TEXT: dict[str, tuple[str, str]] = {
    "session.created": ("Session created for {email}", "Signed in with {method}"),
    "login": ("Login {verb} for {email}", "Password login {verb}"),
    "task.created": ("Task {task} created", "Task {task} queued on {queue}"),
    "gate_transaction_created": ("Gate transaction for container {box}",
                                 "Truck {plate} arrived at Gate 3 with container {box}"),
    "install": ("{verb} install of {pkg}", "{command} {pkg}: {reason}"),
    "llm.call": ("LLM call to {model} by {service}",
                 "Chat completion with a {size} prompt"),
    "task.completed": ("Task {task} completed", "Task {task} on {queue} finished successfully"),
    "user.verification.succeeded": ("Verification succeeded for {email}",
                                    "User {email} verified with {method}"),
    "token.refreshed": ("Token refreshed for {email}", "Access token refreshed"),
    "vm.started": ("VM {vm} started", "VM started in {region}"),
    "motion_detected": ("Motion detected in {zone_name}",
                        "Unidentified movement detected by camera {camera} in {zone_name}"),
    "vm.stopped": ("VM {vm} stopped", "VM stopped in {region}"),
    "secret.read": ("Secret {secret} read by {email}",
                    "Privileged secret {secret} was read through the vault terminal"),
    "logout": ("Logout for {email}", "User {email} signed out of the console"),
    "ssh.session.started": ("SSH session to {host} by {email}",
                            "Recorded SSH session opened to {host} as root"),
    "session.expired": ("Session expired for {email}", "Idle session of {email} expired"),
    "audit": ("Audit of {pkg} {verb}", "{command} audit for {pkg}: {reason}"),
    "zone_entry": ("{vessel} entered {zone_name}",
                   "Vessel {vessel} MMSI {mmsi} moved into threat zone {zone_name}"),
    "user.updated": ("User updated: {email}", "Profile of {email} updated by an administrator"),
    "vm.created": ("VM {vm} created", "VM created in {region}"),
    "mission_launched": ("Drone mission {mission} launched",
                         "Drone launched to patrol {zone_name} after a motion alert"),
    "user.verification.failed": ("Verification failed for {email}",
                                 "User {email} failed {method} verification: invalid code"),
    "ocr_mismatch": ("OCR mismatch at Gate 3 for {box}",
                     "Container ID read at Gate 3 does not match the booking for {plate}"),
    "user.created": ("User created: {email}", "New user {email} signed up"),
    "invoice.paid": ("Invoice {invoice} paid", "Invoice {invoice} paid by card for {email}"),
    "task.failed": ("Task {task} failed", "Task {task} on {queue} failed: out of memory"),
    "mfa.challenge": ("MFA challenge for {email}", "Second factor {method} requested"),
    "ais_gap": ("AIS gap detected for {vessel}",
                "Vessel {vessel} MMSI {mmsi} lost AIS signal in restricted zone {zone_name}"),
    "speed_anomaly": ("Speed anomaly for {vessel}",
                      "Vessel {vessel} MMSI {mmsi} exceeded the speed limit in {zone_name}"),
    "camera_offline": ("Camera {camera} offline", "Video feed from {camera} lost in {zone_name}"),
    "vm.deleted": ("VM {vm} deleted", "VM deleted in {region}"),
    "organization.membership.created": ("Member added: {email}",
                                        "{email} joined organization {org}"),
    "gate_override": ("Operator override at Gate 3 for {box}",
                      "Automated hold overridden to release for container {box}"),
    "policy.updated": ("Access policy {policy} updated",
                       "Policy {policy} changed by {email}: new approval rule"),
    "api_key.created": ("API key created by {email}", "New API key with scope events:write"),
    "fence_tamper": ("Fence tamper alarm in {zone_name}",
                     "Fence sensor triggered above threshold in {zone_name}"),
    "user.deleted": ("User deleted: {email}", "User {email} deleted by an administrator"),
    "seal_violation": ("Seal broken on container {box}",
                       "Seal check at Gate 3 found the seal broken on container {box}"),
    "drone_lost_link": ("Lost link with drone {drone}",
                        "Communication with {drone} lost over {zone_name}"),
    "perimeter_breach": ("Perimeter breach at {zone_name}",
                         "Barrier breach detected; intruder crossed the fence in {zone_name}"),
}


# http type -> (method, path template, subject type, slot holding the subject id)
_HTTP: dict[str, tuple[str, str, str, str]] = {
    "login": ("POST", "/v1/auth/login", "session", "session"),
    "logout": ("POST", "/v1/auth/logout", "session", "session"),
    "token.refreshed": ("POST", "/v1/auth/refresh", "session", "session"),
    "api_key.created": ("POST", "/v1/api-keys", "api_key", "key"),
    "task.created": ("POST", "/v1/tasks", "task", "task"),
    "task.completed": ("PATCH", "/v1/tasks/{task}", "task", "task"),
    "task.failed": ("PATCH", "/v1/tasks/{task}", "task", "task"),
    "vm.created": ("POST", "/v1/vms", "vm", "vm"),
    "vm.started": ("POST", "/v1/vms/{vm}/start", "vm", "vm"),
    "vm.stopped": ("POST", "/v1/vms/{vm}/stop", "vm", "vm"),
    "vm.deleted": ("DELETE", "/v1/vms/{vm}", "vm", "vm"),
    "invoice.paid": ("POST", "/v1/billing/invoices/{invoice}/pay", "invoice", "invoice"),
}


def tenant_names(tenants: int) -> list[str]:
    """``t000``, ``t001`` …: fixed width so names sort in tenant order."""
    width = max(3, len(str(tenants - 1)))
    return [f"t{i:0{width}d}" for i in range(tenants)]


def tenant_weights(tenants: int, top_share: float = _TOP_TENANT_SHARE) -> list[float]:
    """Zipf weights ``1/k**s`` with ``s`` solved so tenant 0 gets ``top_share`` of events."""
    if tenants <= 1 or top_share <= 1 / tenants:
        return [1.0] * max(tenants, 1)

    def share(s: float) -> float:
        return 1.0 / sum(k ** -s for k in range(1, tenants + 1))

    lo, hi = 0.0, 4.0
    for _ in range(40):  # share(s) grows with s: bisect
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if share(mid) < top_share else (lo, mid)
    return [k ** -lo for k in range(1, tenants + 1)]


def _table(weights: list[float], rng: random.Random) -> list[int]:
    """A 4096-entry lookup table: indexing it with 12 random bits samples ``weights``."""
    total = sum(weights)
    cumulative = list(itertools.accumulate(w / total for w in weights))
    table = [bisect.bisect_right(cumulative, (i + 0.5) / _TABLE) for i in range(_TABLE)]
    table = [min(i, len(weights) - 1) for i in table]
    rng.shuffle(table)  # so neighbouring bit patterns do not map to neighbouring tenants
    return table


@cache
def _clock_strings() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``HH:MM:SS`` for every second of a day and ``.mmmZ`` for every millisecond."""
    hms = tuple(f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60))
    frac = tuple(f".{ms:03d}Z" for ms in range(1000))
    return hms, frac


class _Pools:
    """Identities, built once, that events draw from."""

    def __init__(self, rng: random.Random) -> None:
        #: (id, name, email, ip, user agent, numeric id)
        self.users: list[tuple[str, str, str, str, str, int]] = []
        for i in range(512):
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            email = f"{first.lower()}.{last.lower()}{i % 7 or ''}@{rng.choice(_DOMAINS)}"
            ip = (f"{rng.choice((203, 198, 185, 81, 91))}.{rng.randrange(256)}."
                  f"{rng.randrange(256)}.{rng.randrange(1, 255)}")
            self.users.append((f"usr_{rng.getrandbits(48):012x}", f"{first} {last}", email, ip,
                               rng.choice(_UAS), 1000 + i))
        self.sessions = [f"sess_{rng.getrandbits(64):016x}" for _ in range(1024)]
        self.node_ips = [f"10.0.{rng.randrange(4)}.{rng.randrange(2, 250)}" for _ in range(8)]
        self.clients = [f"{rng.getrandbits(64):016x}" for _ in range(64)]
        self.issuers = [f"iss_{rng.getrandbits(48):012x}" for _ in range(4)]
        self.orgs = [f"org_{rng.getrandbits(48):012x}" for _ in range(16)]
        self.latencies = [round(rng.lognormvariate(3.3, 0.9), 1) for _ in range(1024)]


# Per-shape constants.
_TAGS: tuple[tuple[str, ...], ...] = (
    (), (), (), (), (), (), ("staging",), ("pci",), ("prod", "customer-facing"), ("sox",),
)
_MODULES = {"gate": "gate_automation", "perimeter": "terminal_security",
            "maritime": "maritime_security", "drone": "drone_ops"}
_DEVICES = {"gate": ("ocr_lane_3a", "ocr_lane_3b", "seal_scanner_03"),
            "perimeter": ("camera_north_07", "camera_north_09", "fence_sensor_n3"),
            "maritime": ("ais_receiver_01", "ais_receiver_02", "radar_berth_02"),
            "drone": ("drone_dji_m30_04", "drone_dji_m30_05")}
_WORKERS = tuple(f"worker-{i}" for i in range(8))
_NESTED = ("actor", "source", "subject", "metadata", "llm", "payload", "location", "tags")

#: A prebuilt variant: (body, nested keys to copy, user index, HTTP method, path, status).
_Variant = tuple[dict[str, Any], tuple[str, ...], int, str, str, int]


def _variant(
    name: str, category: str, severity: str, shape: str, rng: random.Random, pools: _Pools
) -> _Variant:
    """One prebuilt event of a type: all but the timestamp and the per-request facts
    (context, and for request-driven shapes the actor and source)."""
    user_index = rng.randrange(len(pools.users))
    user_id, _, email, _, _, _ = pools.users[user_index]
    zone, zone_name, lat, lng = _ZONES[rng.choice(_CATEGORY_ZONES.get(category, (0,)))]
    eco = rng.choice(("npm", "npm", "npm", "pip", "pip", "go", "cargo"))
    package = rng.choice(_PACKAGES[eco])
    version = f"{rng.randrange(1, 9)}.{rng.randrange(30)}.{rng.randrange(9)}"
    provider, model, p_in, p_out = rng.choice(_MODELS)
    outcome = "success"
    verb = "succeeded"
    if name == "login" and rng.random() < 0.12:
        outcome, verb, severity = "failure", "failed", "medium"
    elif name in ("install", "audit"):
        outcome = rng.choices(("allow", "review", "block"), weights=(75, 17, 8))[0]
        severity = {"allow": "info", "review": "low", "block": "high"}[outcome]
        verb = {"allow": "Allowed", "review": "Held for review:", "block": "Blocked"}[outcome]
    elif name in ("task.failed", "user.verification.failed"):
        outcome = "failure"
    elif name == "zone_entry":
        severity = rng.choice(("low", "medium", "high", "critical"))
    slots = {
        "email": email, "method": rng.choice(("password", "passkey", "sso", "totp", "sms_otp")),
        "verb": verb, "task": rng.randrange(100_000, 999_999),
        "queue": rng.choice(("default", "gpu", "batch")),
        "box": f"{rng.choice(('MSCU', 'MAEU', 'CMAU', 'HLXU'))}{rng.randrange(10**6, 10**7)}",
        "plate": f"KN{rng.randrange(10, 75)} {rng.choice(('BVR', 'XTA', 'LMP', 'RYC'))}",
        "pkg": f"{package}@{version}", "command": _COMMANDS[eco],
        "reason": rng.choice(_REASONS) if outcome in ("review", "block") else "no findings",
        "model": model, "provider": provider, "service": rng.choice(_SERVICES),
        "size": rng.choice(("short", "long", "multi-turn", "tool-calling")),
        "vm": f"vm-{rng.getrandbits(32):08x}", "region": rng.choice(("eu-west-1", "us-east-1")),
        "zone_name": zone_name, "camera": f"camera_north_{rng.randrange(1, 12):02d}",
        "secret": f"prod/db/{rng.choice(('postgres', 'redis', 'stripe', 'aws'))}",
        "host": f"db-{rng.randrange(1, 30):02d}.prod.internal",
        "vessel": rng.choice(_VESSELS), "mmsi": rng.randrange(200_000_000, 700_000_000),
        "mission": f"msn_{rng.getrandbits(32):08x}", "invoice": f"in_{rng.getrandbits(40):010x}",
        "org": rng.choice(pools.orgs), "policy": f"pol_{rng.randrange(1, 40):03d}",
        "drone": f"drone_dji_m30_{rng.randrange(1, 6):02d}",
        "session": rng.choice(pools.sessions), "key": f"key_{rng.getrandbits(40):010x}",
    }
    title, description = _TEXT.get(name, (name.replace(".", " ") + " event", "by {email}"))
    body: dict[str, Any] = {
        "type": name, "category": category, "severity": severity, "outcome": outcome,
        "title": title.format(**slots),
        "description": description.format(**slots) + (
            f" {rng.choice(_PORT_CLAUSES if shape == 'port' else _CLAUSES)}."
            if rng.random() < 0.4 else "."
        ),
    }
    # Tags are sparse labels, as people use them: most events carry none.
    tags = rng.choice(_TAGS)
    if tags:
        body["tags"] = list(tags)
    if shape == "port":  # turqoa records have no outcome
        del body["outcome"]
    method, path, subject_type, subject_slot = _HTTP.get(
        name, ("POST", f"/v1/{category}", category, "key")
    )
    if shape == "http":
        path = path.format(**slots)
        body["subject"] = {"type": subject_type, "id": str(slots[subject_slot])}
        if category in ("vm", "task"):
            body["payload"] = {"region": slots["region"], "queue": slots["queue"]}
        if outcome == "failure":
            body["error_message"] = "Invalid credentials" if name == "login" else "Out of memory"
    elif shape == "identity":
        kind = name.split(".")[0]
        subject_id = {"session": slots["session"], "organization": slots["org"]}.get(kind, user_id)
        body["subject"] = {"type": kind, "id": subject_id}
        if outcome == "failure":
            body["error_message"] = "Invalid code"
    elif shape == "install":
        body["subject"] = {"type": "package", "ecosystem": eco, "package": package,
                           "version": version}
        body["actor"] = {"command": slots["command"], "args": [package], "version": "1.3.0"}
        if outcome != "allow":
            body["payload"] = {"reasons": [slots["reason"]]}
    elif shape == "port":
        high = severity in ("high", "critical")
        body["source"] = {"module": _MODULES[category], "device": rng.choice(_DEVICES[category])}
        body["location"] = {"lat": round(lat + rng.uniform(-0.001, 0.001), 4),
                            "lng": round(lng + rng.uniform(-0.001, 0.001), 4), "zone": zone}
        body["metadata"] = {"risk_score": rng.randrange(100), "vessel_name": slots["vessel"]}
        body["requires_action"] = high
        if high:
            body["assigned_to"] = f"{category}_operator_{rng.randrange(1, 4):02d}"
            if rng.random() < 0.4:
                body["incident_id"] = f"inc_{rng.getrandbits(32):08x}"
    elif shape == "llm":
        tokens_in = int(rng.lognormvariate(7.0, 0.8))
        tokens_out = int(rng.lognormvariate(5.5, 0.7))
        body["actor"] = {"type": "service", "id": slots["service"]}
        body["llm"] = {"provider": provider, "model": model, "input_tokens": tokens_in,
                       "output_tokens": tokens_out,
                       "latency_ms": round(300 + tokens_out * rng.uniform(5, 20), 1),
                       "cost_usd": round((tokens_in * p_in + tokens_out * p_out) / 1e6, 6)}
    else:  # access
        is_secret = name == "secret.read"
        body["subject"] = {"type": "secret" if is_secret else "host",
                           "id": slots["secret"] if is_secret else slots["host"]}
    nested = tuple(key for key in _NESTED if key in body)
    status = 200 if outcome == "success" else 401 if category == "auth" else 500
    return body, nested, user_index, method, path, status


def bench_events(
    n: int,
    *,
    seed: int = 1,
    tenants: int = 200,
    types: int = 40,
    now_us: int | None = None,
    days: int = 30,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``n`` ``(tenant, event)`` pairs, oldest first, deterministic for ``seed``.

    ``types`` picks the first that many of ``TYPES`` (more than 40 adds synthetic
    ``custom.typeNN`` types); ``now_us`` (default: the wall clock) ends the window.
    Set-up (pools, variants) takes ~0.2 s, then events stream at full rate.
    """
    rng = random.Random(seed)
    pools = _Pools(rng)
    specs = list(TYPES[:types])
    for i in range(len(specs), types):
        specs.append((f"custom.type{i:02d}", "custom", "info", "access", 1.0))
    names = tenant_names(tenants)
    tenant_table = _table(tenant_weights(tenants), rng)
    type_table = _table([spec[4] for spec in specs], rng)
    variants = [
        [_variant(name, cat, sev, shape, rng, pools) for _ in range(_VARIANTS)]
        for name, cat, sev, shape, _ in specs
    ]
    shapes = [spec[3] for spec in specs]

    end = (time.time_ns() // 1000) if now_us is None else now_us
    start = end - days * _DAY_US
    step = max(1, (end - start) // max(n, 1))
    # Up to ~4 inter-event gaps (at most 5 minutes) of jitter: "roughly increasing".
    jitter_span = min(4 * step, 300 * _US)
    hms, frac = _clock_strings()
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    day_prefix: dict[int, str] = {}

    users, sessions, latencies = pools.users, pools.sessions, pools.latencies
    node_ips, clients, issuers, orgs = pools.node_ips, pools.clients, pools.issuers, pools.orgs
    getrandbits = rng.getrandbits
    mask = _TABLE - 1
    for i in range(n):
        # One draw feeds every choice of the event; the bit fields do not overlap:
        # [0,12) type  [12,20) variant  [20,32) tenant  [32,42) session  [42,52) latency
        # [52,64) small picks  [64,80) timestamp jitter
        r = getrandbits(80)
        t = type_table[r & mask]
        body, nested, user_index, method, path, status = variants[t][(r >> 12) & 0xFF]
        ts = start + i * step + (((r >> 64) * jitter_span) >> 16)
        if ts >= end:  # the jitter of the last few events must not reach into the future
            ts = end - 1
        day, rest = divmod(ts, _DAY_US)
        prefix = day_prefix.get(day)
        if prefix is None:
            prefix = day_prefix[day] = (epoch + timedelta(days=day)).strftime("%Y-%m-%dT")
        sec, us = divmod(rest, _US)
        event = {"timestamp": prefix + hms[sec] + frac[us // 1000], **body}
        # Fresh containers per event, so a consumer that adds a key changes only one event.
        for key in nested:
            event[key] = event[key].copy()
        request_id = f"req_{getrandbits(64):016x}"
        session = sessions[(r >> 32) & 0x3FF]
        small = r >> 52
        shape = shapes[t]
        user = users[user_index]
        if shape == "http":
            event["actor"] = {"type": "user", "id": user[0]}
            event["source"] = {"name": "api", "ip": user[3], "node_ip": node_ips[small & 7],
                               "worker_id": _WORKERS[(small >> 3) & 7]}
            event["context"] = {
                "request_id": request_id, "session_id": session, "user_id": user[5],
                "http_method": method, "path": path, "http_status": status,
                "latency_ms": latencies[(r >> 42) & 0x3FF], "user_agent": user[4],
            }
        elif shape == "identity":
            event["actor"] = {"type": "user", "id": user[0], "ip": user[3],
                              "user_agent": user[4]}
            event["source"] = {"issuer_id": issuers[small & 3],
                               "client_id": clients[(small >> 2) & 63]}
            event["context"] = {"request_id": request_id, "user_id": user[0],
                                "org_id": orgs[(small >> 8) & 15], "auth_type": "user"}
        elif shape == "install":
            event["source"] = {"client_id": clients[small & 63], "ip": user[3]}
            event["context"] = {"request_id": request_id, "user_id": user[0]}
        elif shape == "port":
            event["context"] = {"request_id": request_id}
        elif shape == "llm":
            event["source"] = {"client_id": clients[small & 63]}
            event["context"] = {"request_id": request_id, "user_id": user[0],
                                "session_id": session}
        else:
            event["actor"] = {"type": "user", "id": user[0], "name": user[1], "ip": user[3]}
            event["source"] = {"name": "vaultterm", "ip": user[3]}
            event["context"] = {"request_id": request_id, "session_id": session}
        yield names[tenant_table[(r >> 20) & mask]], event


def _main() -> None:
    """Measure the generator itself: rate when streamed, JSON size, tenant skew."""
    import orjson

    n = 300_000
    started = time.perf_counter()
    for _ in bench_events(n, now_us=1_775_000_000 * _US):
        pass
    elapsed = time.perf_counter() - started
    total = 0
    counts: dict[str, int] = {}
    types: set[str] = set()
    for tenant, event in bench_events(n, now_us=1_775_000_000 * _US):
        total += len(orjson.dumps(event))
        counts[tenant] = counts.get(tenant, 0) + 1
        types.add(event["type"])
    print(orjson.dumps({
        "events": n,
        "events_per_s": round(n / elapsed),  # includes the one-off set-up
        "avg_json_bytes": round(total / n, 1),
        "tenants": len(counts),
        "top_tenant_share": round(max(counts.values()) / n, 3),
        "distinct_types": len(types),
    }).decode())


if __name__ == "__main__":
    _main()
