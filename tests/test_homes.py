"""The tenant → node map: parsed strictly, because a wrong map lets two nodes sequence one
tenant (tests/store/clickhouse/test_nodes.py shows what the nodes do with it)."""

from __future__ import annotations

import re

import pytest

from auditstream.homes import TenantHomes
from auditstream.settings import Settings

NODES = "a=http://node-a:8080,b=https://node-b/"


def test_a_listed_tenant_lives_on_its_node_and_the_rest_on_the_default() -> None:
    homes = TenantHomes.parse("a", NODES, "acme=a, globex = b,*=b")
    assert (homes.home_of("acme"), homes.home_of("globex"), homes.home_of("x")) == \
        ("a", "b", "b")
    assert homes.owns("acme") and not homes.owns("globex") and not homes.owns("x")
    assert homes.url_of("b") == "https://node-b"


def test_without_a_default_unlisted_tenants_stay_on_this_node() -> None:
    homes = TenantHomes.parse("a", NODES, "globex=b")
    assert homes.owns("acme") and not homes.owns("globex")


def test_an_empty_map_is_one_node_that_owns_every_tenant() -> None:
    assert TenantHomes.parse("", "", "").owns("anything")


@pytest.mark.parametrize(("node", "nodes", "homes", "message"), [
    ("", NODES, "acme=a", "needs AUDITSTREAM_NODE"),
    ("a", NODES, "acme=c", "home 'c' has no URL"),
    ("a", NODES, "*=c", "home 'c' has no URL"),
    ("a", NODES, "acme", "name=value"),
    ("a", NODES, "acme=a,acme=b", "names something twice"),
    ("a", "a=ftp://x", "acme=a", "must be http(s)://host"),
    ("a", "a=http://x/path", "acme=a", "must be http(s)://host"),
    ("a", "a=http://x?q=1", "acme=a", "must be http(s)://host"),
    ("a", "a b=http://x", "acme=a", "not a node name"),
    ("a\n", NODES, "acme=a", "not a node name"),
])
def test_a_bad_map_is_refused_with_what_is_wrong(node: str, nodes: str, homes: str,
                                                 message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        TenantHomes.parse(node, nodes, homes)


def test_settings_refuse_a_map_without_a_shared_index_and_check_it_at_start() -> None:
    with pytest.raises(ValueError, match="needs AUDITSTREAM_BACKEND=clickhouse"):
        Settings(node="a", nodes=NODES, tenant_homes="acme=a")
    with pytest.raises(ValueError, match="has no URL"):
        Settings(backend="clickhouse", clickhouse_url="chdb:///tmp/x", node="a",
                 tenant_homes="acme=z")
    env = {"AUDITSTREAM_BACKEND": "clickhouse", "AUDITSTREAM_CLICKHOUSE_URL": "chdb:///tmp/x",
           "AUDITSTREAM_NODE": "a", "AUDITSTREAM_NODES": NODES,
           "AUDITSTREAM_TENANT_HOMES": "*=b", "AUDITSTREAM_FORWARD_APPENDS": "true"}
    settings = Settings.from_env(env)
    assert settings.forward_appends and settings.homes.home_of("acme") == "b"
