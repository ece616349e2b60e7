"""Time values in and out: RFC 3339, date-only and Unix milliseconds in; RFC 3339 UTC out.

Internally a timestamp is an ``int`` of microseconds since the Unix epoch (UTC), which
sorts, compares and buckets without any parsing.

Range: every time the engine accepts lies in ``MIN_US`` .. ``MAX_US`` (0001-01-01 to
9999-12-31T23:59:59.999999, UTC), so it can always be formatted back to RFC 3339 and bound
as a 64-bit SQLite integer; durations are at most ``MAX_DURATION_US`` (1,000 years).
Anything outside, or not a time at all, is a ``TimeParseError``, never another exception.
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, date, datetime, timedelta

US = 1_000_000
# ASCII digits only: ``\d`` and ``str.isdigit`` also take "²" or "٣", which ``int`` refuses
# or reads as something the user did not type. 15 digits bound the work ``int`` does.
_DURATION = re.compile(r"^([0-9]{1,15})([smhdw])$")
_MILLIS = re.compile(r"^-?[0-9]+$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# Unix-ms values before 1973 or after 2286 are more likely seconds or nonsense.
_MIN_MS, _MAX_MS = 10**11, 10**13
#: Longest duration accepted (``365250d``): far beyond any retention, and "that long ago"
#: stays inside the range of times from any present moment.
MAX_DURATION_US = 365_250 * 86_400 * US


class TimeParseError(ValueError):
    pass


def now_us() -> int:
    return time.time_ns() // 1000


def to_us(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * US + delta.microseconds


_NAIVE_EPOCH = datetime(1970, 1, 1)

#: Earliest and latest instants the engine accepts: years 1 to 9999 in UTC.
MIN_US = to_us(datetime(1, 1, 1, tzinfo=UTC))
MAX_US = to_us(datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC))


def from_us(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def format_us(us: int) -> str:
    """RFC 3339 UTC with a ``Z``; fractional seconds only when there are any."""
    # isoformat, not strftime: glibc's %Y does not pad years below 1000 to four digits.
    dt = _NAIVE_EPOCH + timedelta(microseconds=us)
    micro = dt.microsecond
    spec = "seconds" if micro == 0 else "milliseconds" if micro % 1000 == 0 else "microseconds"
    return dt.isoformat(timespec=spec) + "Z"


def parse_duration(text: str) -> int:
    """``24h``, ``7d``, ``30m`` → microseconds (at most ``MAX_DURATION_US``)."""
    m = _DURATION.match(text.strip())
    if not m:
        raise TimeParseError(f"not a duration: {_show(text)} (use e.g. 30m, 24h, 7d)")
    us = int(m.group(1)) * _UNITS[m.group(2)] * US
    if us > MAX_DURATION_US:
        raise TimeParseError(f"duration too long: {_show(text)} (at most 365250d)")
    return us


def _show(value: object) -> str:
    """``repr`` of a user's value, cut short: a 5,000-digit value makes a 5 KB message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _in_range(us: int, value: object) -> int:
    if not MIN_US <= us <= MAX_US:
        raise TimeParseError(f"time out of range: {_show(value)} "
                             "(years 0001 to 9999, UTC)")
    return us


def parse_time(value: object, *, now: int | None = None, allow_relative: bool = False) -> int:
    """Parse a user-supplied time into microseconds since the epoch.

    Accepts RFC 3339 / ISO 8601 date-times (``Z`` or offset; naive means UTC),
    date-only ``YYYY-MM-DD`` (midnight UTC), Unix milliseconds (int or digit string),
    and with ``allow_relative`` a duration meaning "that long ago" (``24h``).
    """
    if isinstance(value, bool):
        raise TimeParseError("expected a timestamp, got a boolean")
    if isinstance(value, int):
        # Compared as an int: float() of a 400-digit integer raises OverflowError.
        if not (_MIN_MS <= value < _MAX_MS):
            raise TimeParseError(f"Unix milliseconds out of range: {_show(value)}")
        return value * 1000
    if isinstance(value, float):
        if not (math.isfinite(value) and _MIN_MS <= value < _MAX_MS):
            raise TimeParseError(f"Unix milliseconds out of range: {_show(value)}")
        return int(value * 1000)
    if not isinstance(value, str):
        raise TimeParseError(f"expected a timestamp string, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise TimeParseError("empty timestamp")
    if _MILLIS.match(text):
        if len(text.lstrip("-").lstrip("0")) > len(str(_MAX_MS)):
            raise TimeParseError(f"Unix milliseconds out of range: {_show(value)}")
        return parse_time(int(text))
    if allow_relative and _DURATION.match(text):
        return _in_range((now_us() if now is None else now) - parse_duration(text), value)
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            return to_us(datetime(d.year, d.month, d.day, tzinfo=UTC))
        if text[-1] in "zZ":
            text = text[:-1] + "+00:00"
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise TimeParseError(
            f"not a valid timestamp: {_show(value)} (use RFC 3339, YYYY-MM-DD or Unix ms)"
        ) from None
    # Checked in UTC: "0001-01-01T00:00:00+01:00" is a valid string but year 0 in UTC.
    return _in_range(to_us(dt), value)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


def parse_us(stored: str) -> int:
    """Microseconds of a timestamp the engine itself formatted (``format_us``); fast path."""
    return (datetime.fromisoformat(stored) - _EPOCH) // _ONE_US
