"""Realistic demo events across the five domains auditstream's compat profiles come from.

``demo_events()`` fills a fresh install (console screenshots, ``auditstream demo``, tutorials)
with a month of plausible traffic, so every filter, aggregate and compat profile has
something to show:

========== ============================================ ==========================
domain     what it looks like                           seed profile it feeds
========== ============================================ ==========================
turen      package installs allowed/reviewed/blocked    turen-events-api
turqoa     port security: gate, perimeter, AIS, drones  turqoa-events-api
platform   HTTP audit of a cloud platform (VMs, tasks)  platform-audit-events-api
authpi     identity: users, sessions, clients, orgs     authpi-events-api
llm        LLM API calls with tokens and cost           turen ``/events/llm``
========== ============================================ ==========================

The events are canonical ``EventIn`` dicts (no ``id``, ``tenant`` or ``seq``: the server
assigns those), so they can be posted to the native ingest API as they are. The output
depends only on ``seed`` and ``now_us``: the same arguments give the same list.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from importlib import resources
from typing import Any

from auditstream.model.times import US, format_us
from auditstream.model.times import now_us as _now_us

__all__ = ["DOMAINS", "LLM_PRICES", "demo_events", "domain_of", "turqoa_catalog"]

#: The five demo domains, in the order their shares are dealt.
DOMAINS: tuple[str, ...] = ("turen", "turqoa", "platform", "authpi", "llm")

_DAY_US = 86_400 * US
_WINDOW_US = 30 * _DAY_US


def turqoa_catalog() -> dict[str, Any]:
    """The documented turqoa event-type catalog (``data/turqoa_catalog.json``)."""
    text = resources.files("auditstream").joinpath("data/turqoa_catalog.json").read_text()
    catalog: dict[str, Any] = json.loads(text)
    return catalog


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(4 * digits):0{digits}x}"


def _pick(rng: random.Random, weighted: dict[str, float]) -> str:
    return rng.choices(list(weighted), weights=list(weighted.values()))[0]


# --------------------------------------------------------------------------------------
# turen: package installs
# --------------------------------------------------------------------------------------

# Ecosystem shares follow the turen summary example (npm 850, pip 300, go 120, cargo 14).
_ECOSYSTEMS = {"npm": 0.62, "pip": 0.25, "go": 0.10, "cargo": 0.03}
_INSTALL_COMMAND = {
    "npm": "npm install", "pip": "pip install", "go": "go get", "cargo": "cargo add",
}
_AUDIT_COMMAND = {
    "npm": "npm audit", "pip": "pip-audit", "go": "govulncheck", "cargo": "cargo audit",
}
_LOCKFILE = {
    "npm": "package-lock.json", "pip": "requirements.txt", "go": "go.sum", "cargo": "Cargo.lock",
}
_PACKAGES: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "npm": [
        ("react", ("18.2.0", "18.3.1", "19.0.0")), ("lodash", ("4.17.20", "4.17.21")),
        ("express", ("4.18.2", "4.19.2", "5.0.1")), ("axios", ("1.6.8", "1.7.2", "1.7.9")),
        ("typescript", ("5.4.5", "5.6.3")), ("left-pad", ("1.3.0",)), ("chalk", ("4.1.2", "5.3.0")),
        ("next", ("14.2.5", "15.0.3")), ("zod", ("3.23.8",)), ("vite", ("5.3.1", "5.4.10")),
        ("event-stream", ("3.3.6", "4.0.1")), ("ua-parser-js", ("0.7.29", "1.0.38")),
    ],
    "pip": [
        ("requests", ("2.31.0", "2.32.3")), ("numpy", ("1.26.4", "2.1.3")),
        ("pandas", ("2.2.2", "2.2.3")), ("django", ("4.2.16", "5.1.3")),
        ("fastapi", ("0.111.0", "0.115.5")), ("urllib3", ("1.26.18", "2.2.3")),
        ("python-dateutil", ("2.9.0",)), ("pyyaml", ("6.0.1", "6.0.2")),
        ("cryptography", ("42.0.8", "43.0.3")), ("boto3", ("1.35.60",)),
    ],
    "go": [
        ("github.com/gin-gonic/gin", ("v1.9.1", "v1.10.0")),
        ("github.com/spf13/cobra", ("v1.8.1",)), ("golang.org/x/crypto", ("v0.28.0", "v0.29.0")),
        ("github.com/stretchr/testify", ("v1.9.0",)), ("google.golang.org/grpc", ("v1.67.1",)),
    ],
    "cargo": [
        ("serde", ("1.0.210", "1.0.215")), ("tokio", ("1.40.0", "1.41.1")),
        ("clap", ("4.5.20", "4.5.21")), ("reqwest", ("0.12.9",)),
    ],
}
# Typosquats and look-alikes: what a blocked install usually is.
_MALICIOUS: dict[str, list[tuple[str, str, str]]] = {
    "npm": [
        ("left-padd", "1.0.0", "Known typosquat of 'left-pad'"),
        ("lodahs", "4.17.21", "Known typosquat of 'lodash'"),
        ("expresss", "4.18.3", "Known typosquat of 'express'"),
        ("crossenv", "6.1.1", "Package flagged as malware (credential exfiltration)"),
        ("event-strean", "3.3.6", "Known typosquat of 'event-stream'"),
        ("react-dom-utils-pro", "0.0.3", "Install script downloads and executes a remote binary"),
    ],
    "pip": [
        ("reqeusts", "2.31.1", "Known typosquat of 'requests'"),
        ("python-dateutils", "2.9.1", "Known typosquat of 'python-dateutil'"),
        ("colourama", "0.4.7", "Package flagged as malware (clipboard hijacker)"),
        ("pandsa", "2.2.2", "Known typosquat of 'pandas'"),
    ],
    "go": [
        ("github.com/gin-gonlc/gin", "v1.9.1", "Module path imitates 'github.com/gin-gonic/gin'"),
    ],
    "cargo": [
        ("serde-jsonn", "1.0.0", "Known typosquat of 'serde_json'"),
    ],
}
_REVIEW_REASONS = (
    "Package published less than 72 hours ago",
    "Maintainer changed in the latest release",
    "Install script makes network requests",
    "Scorecard below review threshold (4.2 < 6.0)",
    "Package has fewer than 50 weekly downloads",
    "New transitive dependency with native code",
)
_BLOCK_REASONS = (
    "Scorecard below minimum threshold (2.1 < 5.0)",
    "Known vulnerability CVE-2021-23337 (CVSS 7.2)",
    "Version yanked by the maintainer",
    "License GPL-3.0 not in the allowed list",
)
_TUREN_VERSIONS = ("1.2.0", "1.2.1", "1.3.0")


class _Pools:
    """Identities reused across events, so group-bys and distinct counts look real."""

    def __init__(self, rng: random.Random) -> None:
        self.turen_clients = [_hex(rng, 16) for _ in range(14)]
        self.platform_users = [1000 + rng.randrange(9000) for _ in range(60)]
        self.vms = [f"vm-{_hex(rng, 8)}" for _ in range(40)]
        self.platform_ips = [f"{rng.choice((203, 198, 185, 81))}.{rng.randrange(256)}."
                             f"{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in range(50)]
        self.node_ips = [f"10.0.{rng.randrange(4)}.{rng.randrange(2, 250)}" for _ in range(6)]
        self.sessions = [f"sess_{_hex(rng, 20)}" for _ in range(80)]
        self.issuers = [f"iss_{_hex(rng, 12)}" for _ in range(3)]
        self.auth_clients = [f"cli_{_hex(rng, 12)}" for _ in range(8)]
        self.orgs = [f"org_{_hex(rng, 12)}" for _ in range(6)]
        self.agents = [f"agt_{_hex(rng, 12)}" for _ in range(5)]
        self.auth_users = [(f"usr_{_hex(rng, 16)}", email) for email in _EMAILS]


def _turen(rng: random.Random, pools: _Pools) -> dict[str, Any]:
    eco = _pick(rng, _ECOSYSTEMS)
    is_audit = rng.random() < 0.15
    outcome = _pick(rng, {"allow": 0.75, "review": 0.17, "block": 0.08})
    reasons: list[str] = []
    if outcome == "block" and rng.random() < 0.7:
        package, version, reason = rng.choice(_MALICIOUS[eco])
        reasons.append(reason)
    else:
        package, versions = rng.choice(_PACKAGES[eco])
        version = rng.choice(versions)
        if outcome == "block":
            reasons.append(rng.choice(_BLOCK_REASONS))
        elif outcome == "review":
            reasons.extend(rng.sample(_REVIEW_REASONS, rng.choice((1, 1, 2))))
    if outcome == "allow":
        severity = "info"
    elif outcome == "review":
        severity = "low" if rng.random() < 0.7 else "medium"
    else:
        severity = "high" if rng.random() < 0.8 else "medium"
    if is_audit:
        command, args = _AUDIT_COMMAND[eco], [_LOCKFILE[eco]]
        verb = {"allow": "passed", "review": "flagged for review", "block": "failed"}[outcome]
        title = f"Audit of {package}@{version} {verb}"
    else:
        command, args = _INSTALL_COMMAND[eco], [package]
        if rng.random() < 0.3:
            args.append({"npm": "--save-dev", "pip": "--upgrade"}.get(eco, "-u"))
        verb = {"allow": "Allowed", "review": "Held for review:", "block": "Blocked"}[outcome]
        title = f"{verb} install of {package}@{version}"
    purl_type = {"pip": "pypi", "go": "golang"}.get(eco, eco)
    event: dict[str, Any] = {
        "type": "audit" if is_audit else "install",
        "category": "install",
        "outcome": outcome,
        "severity": severity,
        "title": title,
        "description": f"{command} {' '.join(args)}: {'; '.join(reasons) or 'no policy findings'}",
        "source": {"client_id": rng.choice(pools.turen_clients)},
        "actor": {"command": command, "args": args, "version": rng.choice(_TUREN_VERSIONS)},
        "subject": {
            "type": "package", "id": f"pkg:{purl_type}/{package}@{version}",
            "ecosystem": eco, "package": package, "version": version,
        },
        "metadata": {},
    }
    if reasons:
        event["payload"] = {"reasons": reasons}
    return event


# --------------------------------------------------------------------------------------
# turqoa: port security
# --------------------------------------------------------------------------------------

# zone id -> (display name, lat, lng): a port on the Thames, as in the turqoa examples.
_ZONES: dict[str, tuple[str, float, float]] = {
    "lng_terminal": ("LNG Terminal Restricted", 51.4835, -0.0472),
    "north_perimeter": ("North Perimeter Sector 3", 51.4890, -0.0510),
    "gate_3": ("Gate 3 Truck Lanes", 51.4861, -0.0398),
    "container_yard": ("Container Yard Block C", 51.4849, -0.0431),
    "berth_7": ("Berth 7", 51.4818, -0.0455),
}
_CATEGORY_ZONES = {
    "gate": ("gate_3",),
    "perimeter": ("north_perimeter", "north_perimeter", "container_yard", "lng_terminal"),
    "maritime": ("lng_terminal", "berth_7", "berth_7"),
    "drone": tuple(_ZONES),
}
_MODULES = {
    "gate": "gate_automation", "perimeter": "terminal_security",
    "maritime": "maritime_security", "drone": "drone_ops",
}
_DEVICES = {
    "gate": ("ocr_lane_3a", "ocr_lane_3b", "seal_scanner_03", "gate_controller_03"),
    "perimeter": ("camera_north_07", "camera_north_09", "camera_yard_02", "fence_sensor_n3"),
    "maritime": ("ais_receiver_01", "ais_receiver_02", "radar_berth_02"),
    "drone": ("drone_dji_m30_04", "drone_dji_m30_05", "drone_dock_01"),
}
_OPERATORS = {
    "gate": ("gate_operator_01", "gate_operator_03"),
    "perimeter": ("perimeter_operator_01", "perimeter_operator_02"),
    "maritime": ("maritime_operator_01", "maritime_operator_02"),
    "drone": ("drone_pilot_01",),
}
# A few vessels recur so that searches like "Nordic Star" return a story, not one hit.
_VESSELS = (
    ("MV Nordic Star", 123456789), ("MV Baltic Dawn", 235098412), ("MT Aurora Spirit", 311042876),
    ("MV Cape Meridian", 538006127), ("MSC Lucia", 255805934), ("MT Sea Falcon", 636019825),
    ("MV Orient Pearl", 477123900), ("Tug Harbour Grace", 232004561),
)
_CONTAINER_OWNERS = ("MSCU", "MAEU", "CMAU", "HLXU", "TGHU", "OOLU")
# The catalog's relative frequencies: routine events dominate, alarms are rare.
_TURQOA_WEIGHTS = {
    "gate_transaction_created": 14, "ocr_mismatch": 3, "seal_violation": 1, "damage_detected": 2,
    "gate_override": 1.5, "gate_locked": 0.5, "motion_detected": 7, "perimeter_breach": 0.6,
    "fence_tamper": 0.8, "camera_offline": 1.5, "zone_entry": 4, "zone_exit": 3.5, "ais_gap": 1.5,
    "risk_score_change": 2, "dwell_threshold": 1.5, "speed_anomaly": 1.5, "mission_launched": 2,
    "mission_completed": 1.8, "evidence_captured": 2.5, "drone_low_battery": 0.7,
    "drone_lost_link": 0.3, "mission_aborted": 0.4,
}


def _container(rng: random.Random) -> str:
    return f"{rng.choice(_CONTAINER_OWNERS)}{rng.randrange(10**6, 10**7)}"


def _risk_severity(score: int) -> str:
    for floor, severity in ((85, "critical"), (60, "high"), (35, "medium")):
        if score >= floor:
            return severity
    return "low"


def _turqoa_details(
    rng: random.Random, kind: str, zone: str, device: str
) -> tuple[str, str, dict[str, Any], str | None]:
    """Title, description, metadata and (for "varies" types) severity of one event."""
    zone_name = _ZONES[zone][0]
    vessel, mmsi = rng.choice(_VESSELS)
    plate = f"{rng.choice('ABDGHKLMNPRSTVWY')}{rng.choice('ABDGHKLMNPRSTVWY')}"
    plate += f"{rng.randrange(10, 75)} {''.join(rng.choices('ABCDEFGHJKLMNOPRSTUVWXYZ', k=3))}"
    box = _container(rng)
    mission = f"msn_{_hex(rng, 8)}"
    lane = rng.choice(("3A", "3B", "3C"))
    drone = device if device.startswith("drone_dji") else "drone_dji_m30_04"
    vessel_meta = {"mmsi": mmsi, "vessel_name": vessel}
    if kind == "gate_transaction_created":
        return (f"Gate transaction for container {box}",
                f"Truck {plate} arrived at lane {lane} with container {box}.",
                {"container_id": box, "truck_plate": plate, "lane": lane,
                 "direction": rng.choice(("in", "out"))}, None)
    if kind == "ocr_mismatch":
        read = box[:4] + "".join(rng.choices("0123456789", k=7))
        return (f"OCR mismatch at Gate 3: read {read}, expected {box}",
                f"Container ID read by {device} does not match the booking for truck {plate}.",
                {"expected_container_id": box, "read_container_id": read,
                 "ocr_confidence": round(rng.uniform(0.55, 0.93), 2)}, None)
    if kind == "seal_violation":
        state = rng.choice(("missing", "broken", "tampered"))
        return (f"Seal {state} on container {box}",
                f"Seal check at {zone_name} found the seal {state} on container {box} "
                f"(truck {plate}).",
                {"container_id": box, "seal_state": state, "seal_number": f"SL{_hex(rng, 6)}"},
                None)
    if kind == "damage_detected":
        part = rng.choice(("door", "roof", "side wall", "corner casting"))
        return (f"Container damage detected on {box}",
                f"Damage to the {part} of container {box} identified by {device}.",
                {"container_id": box, "damage_area": part,
                 "confidence": round(rng.uniform(0.7, 0.98), 2)}, None)
    if kind == "gate_override":
        return (f"Operator override at Gate 3 for truck {plate}",
                f"Automated decision 'hold' overridden to 'release' for container {box}.",
                {"container_id": box, "original_decision": "hold", "new_decision": "release",
                 "reason": rng.choice(("paperwork verified", "customs cleared", "OCR misread"))},
                None)
    if kind == "gate_locked":
        by = rng.choice(("system", "operator"))
        return ("Gate 3 locked",
                f"Gate 3 locked by {by} after repeated violations at lane {lane}.",
                {"locked_by": by, "lane": lane}, None)
    if kind == "motion_detected":
        obj = rng.choice(("person", "person", "vehicle", "animal", "unknown"))
        return ("Motion detected in restricted zone",
                f"Unidentified movement detected by {device} in {zone_name}.",
                {"camera_id": device, "confidence": round(rng.uniform(0.5, 0.97), 2),
                 "object_class": obj, "drone_dispatched": obj == "person"}, None)
    if kind == "perimeter_breach":
        return (f"Perimeter breach at {zone_name}",
                f"Barrier breach detected by {device}; intruder crossed the fence line "
                f"in {zone_name}.",
                {"sensor_id": device, "breach_point": f"segment_{rng.randrange(1, 40)}"}, None)
    if kind == "fence_tamper":
        return (f"Fence tamper alarm in {zone_name}",
                f"Fence vibration sensor {device} triggered above threshold in {zone_name}.",
                {"sensor_id": device, "vibration_level": round(rng.uniform(3, 9.5), 1)}, None)
    if kind == "camera_offline":
        return (f"Camera {device} offline",
                f"Video feed from {device} lost; last frame "
                f"{rng.randrange(30, 900)} seconds ago.",
                {"camera_id": device, "last_heartbeat_seconds": rng.randrange(30, 900)}, None)
    if kind in ("zone_entry", "zone_exit"):
        verb, prep = ("entered", "into") if kind == "zone_entry" else ("exited", "out of")
        score = rng.randrange(5, 95)
        return (f"{vessel} {verb} {zone_name}",
                f"Vessel MMSI {mmsi} moved {prep} threat zone '{zone_name}' at "
                f"{round(rng.uniform(1, 12), 1)} knots.",
                {**vessel_meta, "risk_score": score},
                _risk_severity(score) if kind == "zone_entry" else None)
    if kind == "ais_gap":
        minutes = rng.randrange(3, 45)
        return (f"AIS gap detected for {vessel}",
                f"Vessel MMSI {mmsi} lost AIS signal for {minutes} minutes while in "
                f"restricted zone '{zone_name}'.",
                {**vessel_meta, "gap_duration_seconds": minutes * 60,
                 "risk_score": rng.randrange(40, 90),
                 "last_known_speed_knots": round(rng.uniform(0, 14), 1),
                 "last_known_heading": rng.randrange(360)}, None)
    if kind == "risk_score_change":
        before = rng.randrange(5, 70)
        after = max(0, min(100, before + rng.choice((-1, 1, 1)) * rng.randrange(15, 40)))
        return (f"Risk score for {vessel} changed from {before} to {after}",
                f"Vessel MMSI {mmsi} risk score changed from {before} to {after} "
                f"({rng.choice(('AIS gap', 'flag change', 'sanctions list match', 'route'))}).",
                {**vessel_meta, "previous_score": before, "risk_score": after},
                _risk_severity(after))
    if kind == "dwell_threshold":
        hours = rng.randrange(7, 30)
        return (f"{vessel} exceeded dwell time at {zone_name}",
                f"Vessel MMSI {mmsi} has remained in '{zone_name}' for {hours} hours "
                f"(limit 6 hours).",
                {**vessel_meta, "dwell_hours": hours, "limit_hours": 6}, None)
    if kind == "speed_anomaly":
        speed = round(rng.uniform(9, 22), 1)
        return (f"Speed anomaly for {vessel}",
                f"Vessel MMSI {mmsi} recorded {speed} knots in '{zone_name}' (limit 8 knots).",
                {**vessel_meta, "speed_knots": speed, "limit_knots": 8}, None)
    if kind == "mission_launched":
        return (f"Drone mission {mission} launched",
                f"{drone} launched to patrol {zone_name}.",
                {"drone_id": drone, "drone_mission_id": mission,
                 "trigger": rng.choice(("scheduled patrol", "motion alert", "operator request"))},
                None)
    if kind == "mission_completed":
        return (f"Drone mission {mission} completed",
                f"{drone} completed its patrol of {zone_name} and returned to dock.",
                {"drone_id": drone, "drone_mission_id": mission,
                 "flight_minutes": rng.randrange(8, 35)}, None)
    if kind == "evidence_captured":
        media = rng.choice(("photo", "video"))
        return (f"Drone captured {media} evidence over {zone_name}",
                f"{drone} captured {media} evidence during mission {mission}.",
                {"drone_id": drone, "drone_mission_id": mission, "media_type": media,
                 "evidence_id": f"evd_{_hex(rng, 10)}"}, None)
    if kind == "drone_low_battery":
        pct = rng.randrange(8, 20)
        return (f"Drone {drone} battery low ({pct}%)",
                f"{drone} battery at {pct}% during mission {mission}; returning to dock.",
                {"drone_id": drone, "drone_mission_id": mission, "battery_percent": pct}, None)
    if kind == "drone_lost_link":
        return (f"Lost link with drone {drone}",
                f"Communication with {drone} lost for {rng.randrange(10, 120)} seconds over "
                f"{zone_name}.",
                {"drone_id": drone, "drone_mission_id": mission}, None)
    # mission_aborted
    reason = rng.choice(("wind above limit", "manual abort", "rain", "airspace restriction"))
    return (f"Drone mission {mission} aborted",
            f"Mission {mission} for {drone} aborted: {reason}.",
            {"drone_id": drone, "drone_mission_id": mission, "abort_reason": reason}, None)


def _turqoa(rng: random.Random, catalog: dict[str, dict[str, Any]], day: str) -> dict[str, Any]:
    kind = _pick(rng, _TURQOA_WEIGHTS)
    spec = catalog[kind]
    category = spec["category"]
    zone = rng.choice(_CATEGORY_ZONES[category])
    device = rng.choice(_DEVICES[category])
    title, description, metadata, varied = _turqoa_details(rng, kind, zone, device)
    severity: str = spec["severity"] or varied or "medium"
    _, lat, lng = _ZONES[zone]
    requires_action = severity in ("high", "critical") or (
        severity == "medium" and rng.random() < 0.3
    )
    event: dict[str, Any] = {
        "type": kind,
        "category": category,
        "severity": severity,
        "title": title,
        "description": description,
        "source": {"module": _MODULES[category], "device": device},
        "location": {
            "lat": round(lat + rng.uniform(-0.0015, 0.0015), 4),
            "lng": round(lng + rng.uniform(-0.0015, 0.0015), 4),
            "zone": zone,
        },
        "metadata": metadata,
        "requires_action": requires_action,
        "assigned_to": rng.choice(_OPERATORS[category]) if requires_action else None,
        "incident_id": None,
    }
    if severity in ("high", "critical") and rng.random() < 0.4:
        event["incident_id"] = f"inc_{day}_{rng.randrange(1, 12):03d}"
    return event


# --------------------------------------------------------------------------------------
# platform: HTTP audit of a cloud platform
# --------------------------------------------------------------------------------------

# event_type -> (event_group, http_method, path template, resource_type, weight)
_PLATFORM_TYPES: dict[str, tuple[str, str, str, str, float]] = {
    "login": ("auth", "POST", "/v1/auth/login", "session", 8),
    "logout": ("auth", "POST", "/v1/auth/logout", "session", 3),
    "token.refreshed": ("auth", "POST", "/v1/auth/refresh", "session", 5),
    "password.changed": ("auth", "PUT", "/v1/users/{user}/password", "user", 0.5),
    "api_key.created": ("auth", "POST", "/v1/api-keys", "api_key", 0.6),
    "vm.created": ("vm", "POST", "/v1/vms", "vm", 2),
    "vm.started": ("vm", "POST", "/v1/vms/{vm}/start", "vm", 4),
    "vm.stopped": ("vm", "POST", "/v1/vms/{vm}/stop", "vm", 3.5),
    "vm.deleted": ("vm", "DELETE", "/v1/vms/{vm}", "vm", 1),
    "vm.snapshot.created": ("vm", "POST", "/v1/vms/{vm}/snapshots", "snapshot", 1.2),
    "task.created": ("task", "POST", "/v1/tasks", "task", 5),
    "task.completed": ("task", "PATCH", "/v1/tasks/{task}", "task", 4),
    "task.failed": ("task", "PATCH", "/v1/tasks/{task}", "task", 0.8),
    "task.cancelled": ("task", "POST", "/v1/tasks/{task}/cancel", "task", 0.6),
    "invoice.paid": ("billing", "POST", "/v1/billing/invoices/{invoice}/pay", "invoice", 0.7),
    "payment_method.updated": ("billing", "PUT", "/v1/billing/payment-method", "customer", 0.3),
    "subscription.updated": ("billing", "PATCH", "/v1/billing/subscription", "subscription", 0.4),
}
_PLATFORM_WEIGHTS = {name: spec[4] for name, spec in _PLATFORM_TYPES.items()}
_PLATFORM_FAILURES = {
    "auth": ((401, "Invalid credentials"), (401, "Refresh token expired"),
             (429, "Too many login attempts, retry after 60 seconds")),
    "vm": ((409, "VM is not in a state that allows this operation"),
           (403, "Quota exceeded: maximum of 10 running VMs"),
           (500, "Hypervisor did not respond within 30 seconds")),
    "task": ((404, "Task not found"), (422, "Invalid task specification: 'image' is required"),
             (503, "Scheduler unavailable")),
    "billing": ((402, "Card declined by issuer"), (422, "Invalid VAT number")),
}
_USER_AGENTS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "python-httpx/0.27.0", "platform-cli/2.4.1 (linux; amd64)", "Terraform/1.9.5 provider/0.8.2",
)
_SERVICES = ("scheduler", "billing-worker", "autoscaler", "ci-runner")
_IMAGES = ("ubuntu-24.04", "debian-12", "rocky-9", "windows-2022")
_SIZES = ("c2.small", "c2.medium", "c2.large", "g1.xlarge")
_REGIONS = ("eu-west-1", "eu-central-1", "us-east-1")


def _platform(rng: random.Random, pools: _Pools) -> dict[str, Any]:
    kind = _pick(rng, _PLATFORM_WEIGHTS)
    group, method, template, resource_type, _ = _PLATFORM_TYPES[kind]
    user_id = rng.choice(pools.platform_users)
    vm_id = rng.choice(pools.vms)
    task_id = rng.randrange(100_000, 999_999)
    # Tasks and billing run partly as background services; people log in.
    by_service = group in ("task", "billing") and rng.random() < 0.4
    failed = kind == "task.failed" or rng.random() < (0.12 if group == "auth" else 0.05)
    resource_id = {
        "vm": vm_id, "snapshot": f"snap-{_hex(rng, 8)}", "task": str(task_id),
        "session": rng.choice(pools.sessions), "user": str(user_id),
        "api_key": f"key_{_hex(rng, 10)}", "invoice": f"in_{_hex(rng, 12)}",
        "customer": f"cus_{user_id}", "subscription": f"sub_{user_id}",
    }[resource_type]
    path = template.format(user=user_id, vm=vm_id, task=task_id, invoice=resource_id)
    status = 201 if method == "POST" and kind.endswith("created") else 200
    error: str | None = None
    if failed and kind != "task.failed":
        status, error = rng.choice(_PLATFORM_FAILURES[group])
    elif kind == "task.failed":
        error = rng.choice(("Container exited with code 137 (out of memory)",
                            "Step 'build' timed out after 3600 seconds"))
    latency = round(rng.lognormvariate(3.2, 0.8) * (8 if group == "vm" else 1), 1)
    payload: dict[str, Any] = {}
    if group == "vm":
        payload = {"image": rng.choice(_IMAGES), "size": rng.choice(_SIZES),
                   "region": rng.choice(_REGIONS)}
    elif group == "task":
        payload = {"queue": rng.choice(("default", "gpu", "batch")), "attempt": rng.randrange(1, 4)}
    elif group == "billing":
        payload = {"amount_cents": rng.randrange(900, 250_000), "currency": "EUR"}
    elif kind == "login":
        payload = {"method": rng.choice(("password", "sso", "password+totp"))}
    outcome = "failure" if error else "success"
    # Failed logins and server errors deserve a look; other client errors are noise.
    severity = ("medium" if group == "auth" or status >= 500 else "low") if error else "info"
    actor = (
        {"type": "service", "id": rng.choice(_SERVICES)}
        if by_service else {"type": "user", "id": str(user_id)}
    )
    verb = "failed" if error else "succeeded"
    event: dict[str, Any] = {
        "type": kind,
        "category": group,
        "outcome": outcome,
        "severity": severity,
        "title": f"{kind} {verb} for {resource_type} {resource_id}",
        "description": f"{method} {path} returned {status}"
        + (f": {error}" if error else f" in {latency} ms"),
        "actor": actor,
        "subject": {"type": resource_type, "id": resource_id},
        "source": {
            "name": "api",
            "ip": rng.choice(pools.platform_ips),
            "node_ip": rng.choice(pools.node_ips),
            "worker_id": f"worker-{rng.randrange(1, 9)}",
        },
        "context": {
            "user_id": user_id,
            "session_id": rng.choice(pools.sessions),
            "request_id": f"req_{_hex(rng, 16)}",
            "correlation_id": f"{_hex(rng, 8)}-{_hex(rng, 4)}-4{_hex(rng, 3)}-"
                              f"{rng.choice('89ab')}{_hex(rng, 3)}-{_hex(rng, 12)}",
            "http_method": method,
            "path": path,
            "http_status": status,
            "latency_ms": latency,
            "user_agent": (
                "platform-internal/1.0" if by_service else rng.choice(_USER_AGENTS)
            ),
        },
        "payload": payload,
    }
    # Only the facts a request has: absent rather than null keeps distinct counts honest.
    if group == "vm":
        event["context"]["vm_id"] = vm_id
    if group == "task":
        event["context"]["task_id"] = task_id
    if error:
        event["error_message"] = error
    return event


# --------------------------------------------------------------------------------------
# authpi: identity
# --------------------------------------------------------------------------------------

_EMAILS = (
    "alice.martin@acme.example", "bob.nguyen@acme.example", "carla.rossi@acme.example",
    "deepak.iyer@acme.example", "emma.schulz@globex.example", "farid.haddad@globex.example",
    "grace.okafor@initech.example", "hiro.tanaka@initech.example", "ines.moreau@umbrella.example",
    "jonas.berg@umbrella.example", "kate.oconnor@acme.example", "liam.walsh@globex.example",
)
# type -> (subject type, auth_type choices, weight)
_AUTHPI_TYPES: dict[str, tuple[str, tuple[str, ...], float]] = {
    "user.created": ("user", ("unauthenticated", "api_key", "client"), 2),
    "user.updated": ("user", ("user", "api_key"), 2.5),
    "user.deleted": ("user", ("api_key", "user"), 0.4),
    "session.created": ("session", ("user",), 10),
    "session.terminated": ("session", ("user", "token"), 4),
    "session.expired": ("session", ("system",), 3),
    "user.verification.succeeded": ("user", ("unauthenticated", "user"), 7),
    "user.verification.failed": ("user", ("unauthenticated",), 1.8),
    "client.created": ("client", ("api_key", "user"), 0.3),
    "client.updated": ("client", ("api_key", "user"), 0.5),
    "client.deleted": ("client", ("api_key",), 0.1),
    "organization.created": ("organization", ("user", "api_key"), 0.2),
    "organization.membership.created": ("membership", ("user", "api_key"), 1),
    "organization.membership.deleted": ("membership", ("user", "api_key"), 0.3),
}
_AUTHPI_WEIGHTS = {name: spec[2] for name, spec in _AUTHPI_TYPES.items()}
_VERIFY_METHODS = ("email_otp", "sms_otp", "passkey", "magic_link", "totp")
_VERIFY_FAILURES = ("Invalid code", "Code expired", "Too many attempts", "Passkey assertion failed")


def _authpi(rng: random.Random, pools: _Pools) -> dict[str, Any]:
    kind = _pick(rng, _AUTHPI_WEIGHTS)
    subject_type, auth_types, _ = _AUTHPI_TYPES[kind]
    auth_type = rng.choice(auth_types)
    user_id, email = rng.choice(pools.auth_users)
    client_id = rng.choice(pools.auth_clients)
    org_id = rng.choice(pools.orgs)
    ip = rng.choice(pools.platform_ips)
    ua = rng.choice(_USER_AGENTS)
    subject_id = {
        "user": user_id, "session": rng.choice(pools.sessions), "client": client_id,
        "organization": org_id, "membership": f"mem_{_hex(rng, 12)}",
    }[subject_type]
    if auth_type == "system":
        actor: dict[str, Any] = {"type": "system", "id": "authpi"}
    elif auth_type in ("client", "api_key"):
        actor = {"type": auth_type, "id": client_id if auth_type == "client" else
                 f"key_{_hex(rng, 8)}", "ip": ip, "user_agent": "authpi-node/3.2.0"}
    else:
        actor = {"type": "user", "id": user_id, "name": email, "ip": ip, "user_agent": ua}
    failed = kind == "user.verification.failed"
    method = rng.choice(_VERIFY_METHODS)
    reason = rng.choice(_VERIFY_FAILURES) if failed else None
    noun = kind.replace(".", " ").replace("_", " ")
    title = {
        "user": f"{noun.capitalize()}: {email}",
        "session": f"{noun.capitalize()} for {email}",
        "client": f"{noun.capitalize()}: {client_id}",
        "organization": f"{noun.capitalize()}: {org_id}",
        "membership": f"{noun.capitalize()}: {email} in {org_id}",
    }[subject_type]
    context: dict[str, Any] = {
        "user_id": user_id, "org_id": org_id, "auth_type": auth_type,
        "request_id": f"req_{_hex(rng, 16)}",
    }
    if rng.random() < 0.15:
        # Some actions are carried out by an AI agent acting for the user.
        context["agent_id"] = rng.choice(pools.agents)
    event: dict[str, Any] = {
        "type": kind,
        "category": "auth",
        "outcome": "failure" if failed else "success",
        "severity": ("medium" if failed else "low" if kind.endswith("deleted") else "info"),
        "title": title,
        "description": (
            f"Verification by {method} failed for {email}: {reason}" if failed
            else f"{noun.capitalize()} ({auth_type}) from {ip}"
        ),
        "actor": actor,
        "subject": {"type": subject_type, "id": subject_id},
        "source": {"issuer_id": rng.choice(pools.issuers), "client_id": client_id, "ip": ip},
        "context": context,
    }
    if kind.startswith("user.verification"):
        event["payload"] = {"method": method}
        if failed:
            event["error_message"] = reason
    return event


# --------------------------------------------------------------------------------------
# llm: LLM API calls
# --------------------------------------------------------------------------------------

#: model -> (provider, USD per 1M input tokens, USD per 1M output tokens): list prices.
LLM_PRICES: dict[str, tuple[str, float, float]] = {
    "gpt-4o-2024-08-06": ("openai", 2.50, 10.00),
    "gpt-4o-mini-2024-07-18": ("openai", 0.15, 0.60),
    "gpt-4.1-2025-04-14": ("openai", 2.00, 8.00),
    "o3-mini-2025-01-31": ("openai", 1.10, 4.40),
    "claude-sonnet-4-20250514": ("anthropic", 3.00, 15.00),
    "claude-3-5-haiku-20241022": ("anthropic", 0.80, 4.00),
    "claude-opus-4-20250514": ("anthropic", 15.00, 75.00),
    "gemini-2.5-pro": ("google", 1.25, 10.00),
    "gemini-2.0-flash": ("google", 0.10, 0.40),
    "mistral-large-2411": ("mistral", 2.00, 6.00),
    "mistral-small-2503": ("mistral", 0.10, 0.30),
}
# Cheap models carry most traffic, as they do in practice.
_LLM_WEIGHTS = {
    "gpt-4o-2024-08-06": 3, "gpt-4o-mini-2024-07-18": 6, "gpt-4.1-2025-04-14": 2,
    "o3-mini-2025-01-31": 1, "claude-sonnet-4-20250514": 4, "claude-3-5-haiku-20241022": 3,
    "claude-opus-4-20250514": 0.5, "gemini-2.5-pro": 1.5, "gemini-2.0-flash": 3,
    "mistral-large-2411": 1, "mistral-small-2503": 1.5,
}
_LLM_SERVICES = ("support-bot", "code-review-agent", "doc-summarizer", "triage-agent",
                 "search-reranker")
_LLM_ERRORS = (
    (429, "rate_limit_exceeded: Rate limit reached for requests per minute"),
    (400, "context_length_exceeded: maximum context length is 128000 tokens"),
    (529, "overloaded_error: the model is temporarily overloaded"),
    (504, "timeout: no response within 60 seconds"),
)


def _llm(rng: random.Random, pools: _Pools) -> dict[str, Any]:
    model = _pick(rng, _LLM_WEIGHTS)
    provider, price_in, price_out = LLM_PRICES[model]
    service = rng.choice(_LLM_SERVICES)
    input_tokens = int(rng.lognormvariate(7.2, 0.9))  # median ~1,300 tokens
    failed = rng.random() < 0.05
    error: str | None = None
    if failed:
        status, error = rng.choice(_LLM_ERRORS)
        output_tokens = 0
        latency = round(rng.uniform(40, 900) if status != 504 else 60_000.0, 1)
        finish = "error"
        if status != 400:  # rejected before the model saw the prompt: nothing billed
            input_tokens = 0
    else:
        output_tokens = int(rng.lognormvariate(5.6, 0.8))  # median ~270 tokens
        # time to first token plus decoding at a model-dependent speed
        latency = round(rng.uniform(250, 900) + output_tokens * rng.uniform(5, 20), 1)
        finish = rng.choices(("stop", "length", "tool_calls"), weights=(85, 5, 10))[0]
    cost = round(input_tokens * price_in / 1e6 + output_tokens * price_out / 1e6, 6)
    event: dict[str, Any] = {
        "type": "llm.call",
        "category": "llm",
        "outcome": "failure" if failed else "success",
        "severity": "low" if failed else "info",
        "title": f"LLM call to {provider} {model} by {service}",
        "description": (
            f"{service} called {model}: {error}" if error
            else f"{service} called {model}: {input_tokens} in / {output_tokens} out tokens, "
                 f"${cost:.4f}"
        ),
        "actor": {"type": "service", "id": service},
        "source": {"client_id": rng.choice(pools.turen_clients)},
        "llm": {
            "provider": provider,
            "model": model,
            "operation": "chat",
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "latency_ms": latency,
            "cost_usd": cost,
            "finish_reason": finish,
        },
        "context": {"request_id": f"req_{_hex(rng, 16)}", "trace_id": _hex(rng, 32)},
    }
    if error:
        event["error_message"] = error
    return event


# --------------------------------------------------------------------------------------
# assembly
# --------------------------------------------------------------------------------------


def domain_of(event: dict[str, Any]) -> str:
    """Which demo domain an event came from (used by tests and the ``demo`` CLI summary)."""
    category = event.get("category")
    if category == "install":
        return "turen"
    if category == "llm":
        return "llm"
    if category in ("gate", "perimeter", "maritime", "drone"):
        return "turqoa"
    if (event.get("source") or {}).get("name") == "api":
        return "platform"
    return "authpi"


def demo_events(n: int = 3000, *, seed: int = 7, now_us: int | None = None) -> list[dict]:
    """``n`` canonical events over the 30 days before ``now_us``, oldest first.

    The five domains get equal shares (the first ``n % 5`` domains one more each);
    timestamps are denser towards ``now_us`` so the last day looks busy and the
    "last 24h" default views of the compat profiles are never empty.
    """
    rng = random.Random(seed)
    end = _now_us() if now_us is None else now_us
    pools = _Pools(rng)
    catalog = {t["type"]: t for t in turqoa_catalog()["types"]}
    makers: dict[str, Callable[[], dict[str, Any]]] = {
        "turen": lambda: _turen(rng, pools),
        "platform": lambda: _platform(rng, pools),
        "authpi": lambda: _authpi(rng, pools),
        "llm": lambda: _llm(rng, pools),
    }
    plan = [DOMAINS[i % len(DOMAINS)] for i in range(n)]
    rng.shuffle(plan)
    events: list[tuple[int, dict[str, Any]]] = []
    for domain in plan:
        # age ~ window * u**2 puts half of the events in the last 7.5 days. The 1 ms margins
        # keep the millisecond rounding inside the window and out of the future.
        ts = end - 1000 - int((_WINDOW_US - 2000) * rng.random() ** 2)
        ts -= ts % 1000  # millisecond precision, like most producers send
        if domain == "turqoa":
            event = _turqoa(rng, catalog, format_us(ts)[:10].replace("-", ""))
        else:
            event = makers[domain]()
        events.append((ts, event))
    events.sort(key=lambda pair: pair[0])
    out: list[dict] = []
    for ts, event in events:
        # timestamp first so the JSON reads naturally
        out.append({"timestamp": format_us(ts), **event})
    return out
