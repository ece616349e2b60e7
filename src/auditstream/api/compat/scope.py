"""Profile scopes: which of a tenant's events each compat profile serves.

Each reference describes one slice of a tenant's stream (turen: package installs and audits;
turqoa: port security), so a profile serves, by default, the events its reference
describes, and an operator can change that per profile with a ``q`` filter in
``AUDITSTREAM_COMPAT_<PROFILE>_SCOPE`` (an empty value: the tenant's whole stream). The
defaults and help texts live in :mod:`auditstream.settings` with every other setting.

A scope is ANDed into every read of its profile (lists, gets by id, summaries, counts,
aggregates), so an event outside it does not exist for that profile: it is never listed,
never counted, and its id answers 404. Scopes are checked at start-up (a typo must stop the
server, not silently widen or empty a profile) and parsed again per request, so a relative
time such as ``since:90d`` moves with the clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request

from ...errors import QuerySyntaxError
from ...model.times import now_us
from ...query.filter import Node
from ...query.predicate import compile_predicate
from ...query.qlang import parse_q

__all__ = ["SETTINGS", "install", "scope", "in_scope"]

#: Scope name → the setting that holds its ``q`` filter. turen's reference documents its
#: LLM calls as a separate store, so its ``/events/llm`` route has a scope of its own.
SETTINGS: Mapping[str, str] = {
    "turen": "compat_turen_scope",
    "turen_llm": "compat_turen_llm_scope",
    "turqoa": "compat_turqoa_scope",
    "platform_audit": "compat_platform_audit_scope",
    "vaultterm": "compat_vaultterm_scope",
    "authpi": "compat_authpi_scope",
}


def install(app: FastAPI, settings: Any) -> None:
    """Check every profile's scope and keep it on ``app.state`` (raises ``ValueError``)."""
    scopes: dict[str, str] = {}
    for name, attr in SETTINGS.items():
        text = str(getattr(settings, attr))
        try:
            parse_q(text, now_us=now_us())
        except QuerySyntaxError as exc:
            raise ValueError(f"AUDITSTREAM_{attr.upper()}={text!r} is not a valid q filter: "
                             f"{exc.detail}") from None
        scopes[name] = text
    app.state.compat_scopes = scopes


def scope(request: Request, name: str, now: int | None = None) -> Node:
    """The filter of scope ``name`` as of ``now`` (default: the current time)."""
    text: str = request.app.state.compat_scopes[name]
    return parse_q(text, now_us=now_us() if now is None else now)


def in_scope(request: Request, name: str, event: dict[str, Any]) -> bool:
    """Whether one stored event is inside scope ``name`` (for gets by id)."""
    return compile_predicate(scope(request, name))(event)
