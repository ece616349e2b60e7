"""All settings, as data: each has a name, a default and a help text.

The same table drives ``auditstream serve --help``, the environment (``AUDITSTREAM_<NAME>``)
and the settings section of the README. Nothing else in the code reads the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .homes import TenantHomes


def _setting(default: Any, help: str, choices: tuple[str, ...] = ()) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class Settings:
    db: str = _setting("data/auditstream.db", "SQLite database file (created if missing).")
    backend: str = _setting(
        "sqlite", "Where the event index lives: sqlite (the database file) or clickhouse "
        "(AUDITSTREAM_CLICKHOUSE_URL; the log stays in the database file).",
        choices=("sqlite", "clickhouse"))
    clickhouse_url: str = _setting(
        "", "The ClickHouse of the clickhouse backend: http(s)://user:password@host:port/"
        "database (a server or cluster) or chdb:///path (embedded, one process per path; "
        "?database=NAME picks the database).")
    node: str = _setting(
        "", "This node's name, when several nodes share one ClickHouse index "
        "(docs/scale-out.md).")
    nodes: str = _setting(
        "", "Every node's base URL, as name=URL pairs separated by commas "
        "(a=https://node-a:8080,b=https://node-b:8080): where appends for another node's "
        "tenants are redirected or forwarded.")
    tenant_homes: str = _setting(
        "", "The node that sequences each tenant's appends, as tenant=node pairs separated by "
        "commas; *=node is the home of every other tenant. Empty: this node is every "
        "tenant's home (one node). Needs the clickhouse backend.")
    forward_appends: bool = _setting(
        False, "Forward a request for another node's tenant that its home must answer (an "
        "append, a redaction, a checkpoint or proof) and relay the answer, instead of "
        "answering 307 with the home's URL.")
    drop_indexed_bodies: bool = _setting(
        False, "With the clickhouse backend: once the index holds a range of signed "
        "events, the log forgets their bodies (keeping ids, columns, leaf hashes, the tree "
        "and checkpoints), 4,096 seqs at a time; the index's copy is then the only one: "
        "its inserts are fsync'd, and verify checks it against the leaves "
        "(docs/scale-out.md).")
    host: str = _setting("127.0.0.1", "Interface to listen on.")
    port: int = _setting(8080, "TCP port to listen on.")
    demo: bool = _setting(
        True, "On first start of an empty database, create a demo tenant and data.")
    max_batch_events: int = _setting(10_000, "Most events accepted in one ingest request.")
    max_body_bytes: int = _setting(10 * 1024 * 1024, "Largest ingest request body, in bytes.")
    synchronous: str = _setting(
        "full", "SQLite synchronous mode: full (survives power loss) or normal (survives kill -9).",
        choices=("full", "normal"))
    indexed_paths: str = _setting(
        "subject.ecosystem,subject.package,location.zone,source.module,source.client_id,"
        "context.user_id,context.session_id,context.vm_id,actor.id,llm.provider,llm.model",
        "Comma list of dotted paths that get an index (others still filter, only slower).",
    )
    read_pool: int = _setting(
        4, "Reader connections to the SQLite database, shared out among the HTTP workers "
        "(each has at least one).")
    workers: int = _setting(
        2, "HTTP worker processes. 1: one process that also runs the writer thread; N > 1: "
        "a writer process (the only one that writes the database and holds the signing "
        "key) and N workers. 2 measured best on 2 cores (bench/RESULTS.md).")
    writer_queue_events: int = _setting(
        50_000, "Most events waiting for the writer; beyond it ingest answers 503 with "
        "Retry-After (nothing acknowledged is ever dropped).")
    jwt_secret: str = _setting("", "HS256 secret for JWT bearer tokens (empty: HS256 disabled).")
    jwt_jwks: str = _setting("", "Path to a JWKS file for RS256/ES256/EdDSA bearer tokens.")
    jwt_tenant_claim: str = _setting("org_id", "JWT claim that names the tenant.")
    jwt_audience: str = _setting("", "Required JWT audience (empty: not checked).")
    jwt_create_tenants: bool = _setting(
        False, "Create the tenant a valid JWT names on its first use (otherwise a token "
        "naming an unknown tenant gets 403).")
    compat_root: str = _setting(
        "", "Also mount this compat profile at / (turen, turqoa, ...), on the paths that no "
        "native route uses; the others stay native and are logged at start-up.")
    compat_turen_scope: str = _setting(
        "type:install,audit", "q filter: the events turen's /api/v1/events and "
        "/api/v1/stats/summary serve (empty: all).")
    compat_turen_llm_scope: str = _setting(
        "type:llm.call OR llm.model:* OR llm.provider:*",
        "q filter: the events turen's /api/v1/events/llm serves (empty: all).")
    compat_turqoa_scope: str = _setting(
        "category:gate,perimeter,maritime,drone,system,decision",
        "q filter: the events the turqoa profile serves (empty: all).")
    compat_turqoa_zones: str = _setting(
        "lng_terminal=LNG Terminal Restricted; north_perimeter=North Perimeter Sector 3; "
        "gate_3=Gate 3 Truck Lanes; container_yard=Container Yard Block C; berth_7=Berth 7",
        "turqoa zone directory, 'id=Name' pairs separated by ';': a zone filter takes either, "
        "records show the name.")
    compat_platform_audit_scope: str = _setting(
        "", "q filter: the events the platform-audit profile serves (empty: all).")
    compat_vaultterm_scope: str = _setting(
        "", "q filter: the events the VaultTerm profile serves (empty: all).")
    compat_authpi_scope: str = _setting(
        "", "q filter: the events the authpi profile serves (empty: all).")
    deployment: str = _setting("auditstream.local", "Deployment name used in checkpoint origins.")
    public_key: str = _setting(
        "", "The checkpoint verifier key `auditstream verify` trusts (the key, or a file "
        "holding it, kept away from the server). Empty: the key beside the database, which "
        "whoever can write the database may have replaced too; verify then says so.")
    integrity: bool = _setting(
        True, "Keep each tenant's Merkle log and sign checkpoints (tamper evidence).")
    idempotency_hours: int = _setting(24, "How long an Idempotency-Key is remembered.")
    max_exports: int = _setting(
        4, "Most exports streaming at once (one tenant: half of them); more get 503 with "
        "Retry-After.")
    metrics_dir: str = _setting(
        "", "Directory where every process of a multi-process server keeps its Prometheus "
        "values, so /metrics on any worker reports the sum over all processes (emptied at "
        "start; prometheus_client's multiprocess mode). Empty: a fresh temporary directory "
        "per `serve` run that starts several processes; one process counts in memory.")
    stream_heartbeat_seconds: float = _setting(
        30.0, "Seconds between heartbeat messages (WebSocket) or keepalive comments (SSE) "
        "of the live stream.")
    stream_max_connections_per_key: int = _setting(
        10, "Most live streams one credential may hold open at once (over all workers); "
        "one more is closed with code 4429.")
    stream_queue_messages: int = _setting(
        1000, "Events waiting for one stream subscriber at most; beyond, it reads from the "
        "store until it has caught up (nothing is dropped).")
    stream_stall_seconds: float = _setting(
        30.0, "A stream whose client has not taken a message for this long is closed "
        "(code 4008).")
    stream_catchup_reads: int = _setting(
        4, "Store reads of streams catching up at once, per process (the others wait).")
    push_allow_private: str = _setting(
        "", "Comma-separated hosts or CIDRs that push integrations may deliver to although "
        "they are private, loopback or link-local (e.g. 127.0.0.1,10.0.0.0/8); every other "
        "such address is refused.")
    push_state_db: str = _setting(
        "", "SQLite file holding push integrations and their delivery state (empty: "
        "<db>.delivery beside the database).")
    push_timeout_seconds: float = _setting(
        10.0, "Timeout of each outbound push call (connect, send, read, each).")
    push_max_response_bytes: int = _setting(
        65_536, "Most bytes of a receiver's answer that are read.")
    push_max_attempts: int = _setting(
        8, "Refusals (an HTTP 4xx) of one event after which it goes to the integration's "
        "dead letters. Outages (no answer, 5xx, 429) do not count: they are retried for as "
        "long as they last.")
    push_retry_base_seconds: float = _setting(
        1.0, "Wait after the first failed push attempt; it doubles with each failure "
        "(with jitter) up to push_retry_max_seconds.")
    push_retry_max_seconds: float = _setting(
        600.0, "Longest wait between push attempts (a receiver's Retry-After may ask for "
        "more, up to a day).")
    push_drain_seconds: float = _setting(
        5.0, "At shutdown, how long push delivery may finish the messages it is sending.")
    shutdown_grace_seconds: int = _setting(
        5, "At shutdown (Ctrl-C, SIGTERM), how long open requests may finish; then they "
        "are cut. Server-Sent Events streams never finish by themselves and are cut then "
        "(clients resume with Last-Event-ID); WebSocket streams are closed at once (1012).")
    session_hours: float = _setting(
        12.0, "How long a console sign-in (the session cookie) lasts, in hours.")
    console_frame_ancestors: str = _setting(
        "'self'", "Origins that may frame the embeddable viewer (/console/embed), as a CSP "
        "frame-ancestors list (e.g. 'self' https://app.example.com); every other page "
        "refuses to be framed.")

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, **overrides: Any
    ) -> Settings:
        """Defaults, then ``AUDITSTREAM_*`` variables, then explicit (non-None) overrides."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get("AUDITSTREAM_" + f.name.upper())
            if raw is not None:
                values[f.name] = _coerce(f.type, raw, f.name)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def __post_init__(self) -> None:
        for f in fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise ValueError(f"AUDITSTREAM_{f.name.upper()} must be one of "
                                 f"{', '.join(choices)}, got {getattr(self, f.name)!r}")
        for name in ("max_exports", "workers", "writer_queue_events",
                     "stream_max_connections_per_key", "stream_queue_messages",
                     "stream_catchup_reads", "push_max_attempts", "push_max_response_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"AUDITSTREAM_{name.upper()} must be at least 1, got "
                                 f"{getattr(self, name)}")
        if self.backend == "clickhouse":
            if not self.clickhouse_url:
                raise ValueError("AUDITSTREAM_BACKEND=clickhouse needs "
                                 "AUDITSTREAM_CLICKHOUSE_URL (http(s)://user:password@host:"
                                 "port/database or chdb:///path)")
            from .store.clickhouse.engine import database_of

            database_of(self.clickhouse_url)  # the scheme and the database name
        elif self.tenant_homes:
            raise ValueError("AUDITSTREAM_TENANT_HOMES needs AUDITSTREAM_BACKEND=clickhouse: "
                             "nodes share tenants through the ClickHouse index")
        if self.drop_indexed_bodies and (self.backend != "clickhouse" or not self.integrity):
            raise ValueError("AUDITSTREAM_DROP_INDEXED_BODIES needs AUDITSTREAM_BACKEND="
                             "clickhouse and AUDITSTREAM_INTEGRITY=true: the index must hold "
                             "the bodies, and the leaves prove its copies")
        self.homes  # noqa: B018 (parsed once here so that a bad map stops the start)
        if not 0 < self.session_hours <= 24 * 30:
            raise ValueError("AUDITSTREAM_SESSION_HOURS must be between 0 and 720 hours, "
                             f"got {self.session_hours}")
        if any(c in self.console_frame_ancestors for c in ";,\r\n"):
            raise ValueError("AUDITSTREAM_CONSOLE_FRAME_ANCESTORS is a space-separated list "
                             f"of sources, got {self.console_frame_ancestors!r}")
        for name in ("stream_heartbeat_seconds", "stream_stall_seconds",
                     "push_timeout_seconds", "push_retry_base_seconds",
                     "push_retry_max_seconds", "push_drain_seconds", "shutdown_grace_seconds"):
            if not 0 < getattr(self, name) <= 86_400:
                raise ValueError(f"AUDITSTREAM_{name.upper()} must be between 0 and 86400 "
                                 f"seconds, got {getattr(self, name)}")

    def to_env(self) -> dict[str, str]:
        """Every setting as ``AUDITSTREAM_*`` variables (for processes the server starts)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out["AUDITSTREAM_" + f.name.upper()] = (
                ("true" if value else "false") if isinstance(value, bool) else str(value))
        return out

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @property
    def push_state_path(self) -> str:
        return self.push_state_db or f"{self.db}.delivery"

    @property
    def homes(self) -> TenantHomes:
        return TenantHomes.parse(self.node, self.nodes, self.tenant_homes)

    @property
    def indexed_path_list(self) -> list[str]:
        return [p.strip() for p in self.indexed_paths.split(",") if p.strip()]


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _coerce(type_name: Any, raw: str, name: str) -> Any:
    """Parse an environment value strictly: a typo must not silently mean something else
    (``AUDITSTREAM_INTEGRITY=flase`` turning tamper evidence off)."""
    t = str(type_name)
    env = f"AUDITSTREAM_{name.upper()}"
    if t == "int":
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{env} must be an integer, got {raw!r}") from None
    if t == "float":
        try:
            number = float(raw)
        except ValueError:
            raise ValueError(f"{env} must be a number, got {raw!r}") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError(f"{env} must be a finite number, got {raw!r}")
        return number
    if t == "bool":
        value = raw.strip().lower()
        if value in _TRUE or value in _FALSE:
            return value in _TRUE
        raise ValueError(f"{env} must be true or false (also 1/0, yes/no, on/off), "
                         f"got {raw!r}")
    return raw


def describe() -> list[tuple[str, str, Any, str]]:
    """(name, env var, default, help) for every setting, for --help and the docs."""
    return [
        (f.name, "AUDITSTREAM_" + f.name.upper(), f.default, f.metadata["help"])
        for f in fields(Settings)
    ]
