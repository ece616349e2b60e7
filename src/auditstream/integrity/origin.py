"""The origin line of a tenant's log, shared by the signer (store) and the proof service."""

from __future__ import annotations


def origin_for(deployment: str, tenant: str) -> str:
    """Names the deployment and the tenant's log, e.g. ``auditstream.local/acme``."""
    return f"{deployment}/{tenant}"
