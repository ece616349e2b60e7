"""Tenant homes: which node sequences each tenant's appends when several nodes share one
ClickHouse index (docs/scale-out.md, "Many nodes").

Every node reads every tenant from the shared index, but a tenant's seqs, leaf hashes and
checkpoints come from one log, so exactly one node may append for it: its *home*. The
assignment is configuration that every node holds the same copy of:

* ``AUDITSTREAM_NODE``: this node's name;
* ``AUDITSTREAM_NODES``: ``name=base URL`` pairs, comma-separated, for redirects and
  forwarding (``a=https://node-a:8080,b=https://node-b:8080``);
* ``AUDITSTREAM_TENANT_HOMES``: ``tenant=node`` pairs, comma-separated; ``*=node`` is the
  home of every tenant not listed (without it, an unlisted tenant's home is this node).

A static map (rather than rendezvous hashing over the node list) is deliberate: adding a
node must not move tenants by itself, because a move copies a log (docs/scale-out.md,
"Moving a tenant"). An empty ``AUDITSTREAM_TENANT_HOMES`` is the single-node deployment:
this node is every tenant's home.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class TenantHomes:
    node: str = ""
    urls: dict[str, str] = field(default_factory=dict)
    homes: dict[str, str] = field(default_factory=dict)
    default: str = ""

    @classmethod
    def parse(cls, node: str, nodes: str, tenant_homes: str) -> TenantHomes:
        """Check the three settings together; a ``ValueError`` names what is wrong."""
        urls = dict(_pairs(nodes, "AUDITSTREAM_NODES"))
        for name, url in urls.items():
            _check_name(name, "AUDITSTREAM_NODES")
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname or (
                    parts.path not in ("", "/")) or parts.query or parts.fragment:
                raise ValueError(f"AUDITSTREAM_NODES: {name}'s URL must be http(s)://host"
                                 f"[:port] with no path, got {url!r}")
            urls[name] = url.rstrip("/")
        if node:
            _check_name(node, "AUDITSTREAM_NODE")
        homes = dict(_pairs(tenant_homes, "AUDITSTREAM_TENANT_HOMES"))
        if not homes:
            return cls(node=node, urls=urls)
        if not node:
            raise ValueError("AUDITSTREAM_TENANT_HOMES needs AUDITSTREAM_NODE (this node's "
                             "name)")
        for tenant, home in homes.items():
            if home != node and home not in urls:
                raise ValueError(f"AUDITSTREAM_TENANT_HOMES: {tenant}'s home {home!r} has "
                                 "no URL in AUDITSTREAM_NODES")
        default = homes.pop("*", node)
        return cls(node=node, urls=urls, homes=homes, default=default)

    def home_of(self, tenant: str) -> str:
        return self.homes.get(tenant, self.default or self.node)

    def owns(self, tenant: str) -> bool:
        return not self.homes and not self.default or self.home_of(tenant) == self.node

    def url_of(self, node: str) -> str:
        return self.urls[node]


def _pairs(raw: str, setting: str) -> list[tuple[str, str]]:
    out = []
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"{setting} is a comma-separated list of name=value, got "
                             f"{item.strip()!r}")
        out.append((key.strip(), value.strip()))
    names = [k for k, _ in out]
    if len(set(names)) != len(names):
        raise ValueError(f"{setting} names something twice")
    return out


def _check_name(name: str, setting: str) -> None:
    if not _NAME.fullmatch(name):
        raise ValueError(f"{setting}: {name!r} is not a node name (letters, digits, _ . -)")


__all__ = ["TenantHomes"]
