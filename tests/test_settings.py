"""Settings are strict: a typo is an error naming the setting and what it accepts."""

from __future__ import annotations

import pytest

from auditstream.settings import Settings


@pytest.mark.parametrize(("name", "raw", "accepted"), [
    ("INTEGRITY", "flase", "true or false"),
    ("DEMO", "maybe", "true or false"),
    ("SYNCHRONOUS", "FULL", "full, normal"),
    ("SYNCHRONOUS", "bogus", "full, normal"),
    ("PORT", "80a", "integer"),
])
def test_a_bad_value_names_the_setting(name: str, raw: str, accepted: str) -> None:
    with pytest.raises(ValueError, match=f"AUDITSTREAM_{name}.*{accepted}"):
        Settings.from_env({f"AUDITSTREAM_{name}": raw})


@pytest.mark.parametrize("raw", ["-1", "0", "86401", "99999999999999999999", "5.5"])
def test_the_shutdown_grace_is_a_whole_number_of_seconds_up_to_a_day(raw: str) -> None:
    with pytest.raises(ValueError, match="AUDITSTREAM_SHUTDOWN_GRACE_SECONDS"):
        Settings.from_env({"AUDITSTREAM_SHUTDOWN_GRACE_SECONDS": raw})


def test_good_values() -> None:
    s = Settings.from_env({"AUDITSTREAM_INTEGRITY": "off", "AUDITSTREAM_DEMO": "Yes",
                           "AUDITSTREAM_SYNCHRONOUS": "normal"})
    assert (s.integrity, s.demo, s.synchronous) == (False, True, "normal")


@pytest.mark.parametrize(("env", "accepted"), [
    ({"AUDITSTREAM_BACKEND": "postgres"}, "sqlite, clickhouse"),
    ({"AUDITSTREAM_BACKEND": "clickhouse"}, "needs AUDITSTREAM_CLICKHOUSE_URL"),
    ({"AUDITSTREAM_BACKEND": "clickhouse", "AUDITSTREAM_CLICKHOUSE_URL": "ftp://h/db"},
     "http"),
    ({"AUDITSTREAM_BACKEND": "clickhouse", "AUDITSTREAM_CLICKHOUSE_URL": "chdb:///x?database=a-b"},
     "database name"),
    ({"AUDITSTREAM_DROP_INDEXED_BODIES": "true"}, "DROP_INDEXED_BODIES needs"),
    ({"AUDITSTREAM_BACKEND": "clickhouse", "AUDITSTREAM_CLICKHOUSE_URL": "chdb:///x",
      "AUDITSTREAM_DROP_INDEXED_BODIES": "true", "AUDITSTREAM_INTEGRITY": "false"},
     "INTEGRITY=true"),
])
def test_a_bad_clickhouse_setting_is_refused_at_start(env: dict[str, str],
                                                      accepted: str) -> None:
    with pytest.raises(ValueError, match=accepted):
        Settings.from_env(env)


def test_clickhouse_urls() -> None:
    for url in ("chdb:///var/lib/auditstream/ch", "https://u:p@ch.internal:8443/audit",
                "http://localhost:8123"):
        s = Settings.from_env({"AUDITSTREAM_BACKEND": "clickhouse",
                               "AUDITSTREAM_CLICKHOUSE_URL": url})
        assert (s.backend, s.clickhouse_url) == ("clickhouse", url)
