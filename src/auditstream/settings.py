"""All settings, as data: each has a name, a default and a help text.

The same table drives ``auditstream serve --help``, the environment (``AUDITSTREAM_<NAME>``)
and the settings section of the README. Nothing else in the code reads the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any


def _setting(default: Any, help: str, choices: tuple[str, ...] = ()) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class Settings:
    db: str = _setting("data/auditstream.db", "SQLite database file (created if missing).")
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
    read_pool: int = _setting(4, "Reader connections to the SQLite database.")
    jwt_secret: str = _setting("", "HS256 secret for JWT bearer tokens (empty: HS256 disabled).")
    jwt_jwks: str = _setting("", "Path to a JWKS file for RS256/ES256/EdDSA bearer tokens.")
    jwt_tenant_claim: str = _setting("org_id", "JWT claim that names the tenant.")
    jwt_audience: str = _setting("", "Required JWT audience (empty: not checked).")
    jwt_create_tenants: bool = _setting(
        False, "Create the tenant a valid JWT names on its first use (otherwise a token "
        "naming an unknown tenant gets 403).")
    compat_root: str = _setting("", "Also mount this compat profile at / (turen, turqoa, ...).")
    deployment: str = _setting("auditstream.local", "Deployment name used in checkpoint origins.")
    integrity: bool = _setting(
        True, "Keep each tenant's Merkle log and sign checkpoints (tamper evidence).")
    idempotency_hours: int = _setting(24, "How long an Idempotency-Key is remembered.")

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

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

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
