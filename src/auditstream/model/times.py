"""Time values in and out: RFC 3339, date-only and Unix milliseconds in; RFC 3339 UTC out.

Internally a timestamp is an ``int`` of microseconds since the Unix epoch (UTC), which
sorts, compares and buckets without any parsing.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta

US = 1_000_000
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# Unix-ms values before 1973 or after 2286 are more likely seconds or nonsense.
_MIN_MS, _MAX_MS = 10**11, 10**13


class TimeParseError(ValueError):
    pass


def now_us() -> int:
    return time.time_ns() // 1000


def to_us(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * US + delta.microseconds


def from_us(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def format_us(us: int) -> str:
    """RFC 3339 UTC with a ``Z``; fractional seconds only when there are any."""
    dt = from_us(us)
    if dt.microsecond == 0:
        return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    if dt.microsecond % 1000 == 0:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_duration(text: str) -> int:
    """``24h``, ``7d``, ``30m`` → microseconds."""
    m = _DURATION.match(text.strip())
    if not m:
        raise TimeParseError(f"not a duration: {text!r} (use e.g. 30m, 24h, 7d)")
    return int(m.group(1)) * _UNITS[m.group(2)] * US


def parse_time(value: object, *, now: int | None = None, allow_relative: bool = False) -> int:
    """Parse a user-supplied time into microseconds since the epoch.

    Accepts RFC 3339 / ISO 8601 date-times (``Z`` or offset; naive means UTC),
    date-only ``YYYY-MM-DD`` (midnight UTC), Unix milliseconds (int or digit string),
    and with ``allow_relative`` a duration meaning "that long ago" (``24h``).
    """
    if isinstance(value, bool):
        raise TimeParseError("expected a timestamp, got a boolean")
    if isinstance(value, int | float):
        ms = float(value)
        if not (_MIN_MS <= ms < _MAX_MS):
            raise TimeParseError(f"Unix milliseconds out of range: {value}")
        return int(ms * 1000)
    if not isinstance(value, str):
        raise TimeParseError(f"expected a timestamp string, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise TimeParseError("empty timestamp")
    if text.lstrip("-").isdigit():
        return parse_time(int(text))
    if allow_relative and _DURATION.match(text):
        return (now_us() if now is None else now) - parse_duration(text)
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            return to_us(datetime(d.year, d.month, d.day, tzinfo=UTC))
        if text[-1] in "zZ":
            text = text[:-1] + "+00:00"
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise TimeParseError(
            f"not a valid timestamp: {value!r} (use RFC 3339, YYYY-MM-DD or Unix ms)"
        ) from None
    if not (1 <= dt.year <= 9998):
        raise TimeParseError(f"year out of range: {value!r}")
    return to_us(dt)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


def parse_us(stored: str) -> int:
    """Microseconds of a timestamp the engine itself formatted (``format_us``); fast path."""
    return (datetime.fromisoformat(stored) - _EPOCH) // _ONE_US
