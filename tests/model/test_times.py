"""Time parsing under attack: every hostile value is a ``TimeParseError``, never another
exception, and every accepted value is an instant the engine can format and store."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from auditstream.model.times import (
    MAX_US,
    MIN_US,
    US,
    TimeParseError,
    format_us,
    parse_duration,
    parse_time,
    to_us,
)

NOW = 1_775_000_000 * US
HUGE = "1" + "0" * 400

HOSTILE_TIMES: list[object] = [
    "²",  # str.isdigit() is true for it, int() is not
    "١٢٣٤٥٦٧٨٩٠١٢",  # Arabic-Indic digits: not Unix milliseconds
    HUGE, "-" + HUGE, "1" * 5000,  # beyond int()'s default digit limit
    "9" * 19, "-9223372036854775809", "00000000000000000000000001",
    "1e400", "NaN", "inf", "-inf",
    "999999999999h", "99999999999999999999d", "1" * 5000 + "h",
    "2026-13-45", "0000-01-01", "10000-01-01", "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00",  # year 0 once in UTC
    "9999-12-31T23:59:59-01:00",  # year 10000 once in UTC
    "\x00", "2026-01-01\x00", " ", "",
    10**400, -(10**30), 10**30, float("inf"), float("nan"), 1e300, True, None, [], {},
]


@pytest.mark.parametrize("value", HOSTILE_TIMES, ids=lambda v: repr(v)[:30])
def test_hostile_times_raise_time_parse_error(value: object) -> None:
    with pytest.raises(TimeParseError):
        parse_time(value, now=NOW, allow_relative=True)


@pytest.mark.parametrize("text", [
    "²h", "1" * 5000 + "s", "999999999999h", "99999999999999999999d", "366000d",
    "-1h", "1.5h", "1y", "h",
])
def test_hostile_durations_raise_time_parse_error(text: str) -> None:
    with pytest.raises(TimeParseError):
        parse_duration(text)


def test_duration_limit_is_a_thousand_years() -> None:
    assert parse_duration("365250d") == 365_250 * 86_400 * US
    with pytest.raises(TimeParseError, match="at most"):
        parse_duration("365251d")


@pytest.mark.parametrize("text", [
    "0001-01-01T00:00:00Z", "0001-01-01", "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00-01:00", "9999-12-31T23:59:59+01:00",
])
def test_edges_of_the_range_are_accepted_and_formattable(text: str) -> None:
    us = parse_time(text)
    assert MIN_US <= us <= MAX_US
    assert parse_time(format_us(us)) == us


def test_range_is_years_1_to_9999_utc() -> None:
    assert to_us(datetime(1, 1, 1, tzinfo=UTC)) == MIN_US
    assert to_us(datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)) == MAX_US


def test_unix_milliseconds_still_parse() -> None:
    assert parse_time(1_775_000_000_000) == 1_775_000_000_000_000
    assert parse_time("1775000000000") == 1_775_000_000_000_000
    assert parse_time(1_775_000_000_000.5) == 1_775_000_000_000_500


def test_relative_times_stay_in_range() -> None:
    assert parse_time("24h", now=NOW, allow_relative=True) == NOW - 24 * 3600 * US
    assert parse_time("365250d", now=NOW, allow_relative=True) >= MIN_US


def test_years_below_1000_are_formatted_with_four_digits() -> None:
    assert format_us(MIN_US) == "0001-01-01T00:00:00Z"
    assert format_us(parse_time("0999-05-06T07:08:09.5Z")) == "0999-05-06T07:08:09.500Z"
    assert format_us(parse_time("2026-01-02T03:04:05.000006Z")) == "2026-01-02T03:04:05.000006Z"
