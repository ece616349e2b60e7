"""Whole-hour answers of hourly count aggregates, kept between requests and brought up to
date by seq.

A 30-day hourly answer is ~20k (hour, key, count) rows, and its SQL is most of its time;
yet between two requests only the hours that new events fall in can change. But *any*
hour can change: events carry client timestamps, so an event for a long-closed hour may
arrive at any time. So an entry does not trust the clock; it remembers the tenant's last
seq its rows reflect. A request reads the tenant's last seq in its read transaction; if it
moved, the hours of the events appended since (``seq`` in between: the log is gap-free
and visible in seq order) are counted again, and only those. Nothing is ever removed from
a tenant's counts (redaction keeps what rollups count), so no other hour can have changed.

Entries are immutable once published (requests run on several threads): a refresh builds a
new entry and replaces the old one. The total number of rows kept is bounded; the least
recently used entries go first.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from .rollup import HOUR

#: One row of an hourly answer: (hour, key, count).
HourRow = tuple[int, Any, int]
#: Rows of a range of whole hours, ordered by hour, then count (largest first), then key.
Fill = Callable[[int, int], Iterable[HourRow]]
#: The hours holding events appended after a seq (up to the request's last seq).
Dirty = Callable[[int], Iterable[int]]


@dataclass(frozen=True)
class _Entry:
    seq: int
    lo: int  # the entry knows every hour in [lo, hi): an hour it lacks has no events
    hi: int
    hours: dict[int, tuple[tuple[Any, int], ...]]  # hour → (key, count) in answer order
    order: tuple[int, ...]  # the hours, sorted
    size: int  # rows

    @classmethod
    def of(cls, seq: int, lo: int, hi: int, hours: dict[int, tuple[tuple[Any, int], ...]]
           ) -> _Entry:
        return cls(seq, lo, hi, hours, tuple(sorted(hours)),
                   sum(len(v) for v in hours.values()))


class HourCache:
    """See the module docstring. ``max_rows`` and ``max_entries`` bound what is kept (an
    empty answer is an entry too: a caller varying its filter must not grow the cache);
    ``max_catch_up``: an entry more than that many events behind is counted afresh."""

    def __init__(self, *, max_rows: int = 100_000, max_entries: int = 256,
                 max_catch_up: int = 50_000):
        self.max_rows = max_rows
        self.max_entries = max_entries
        self.max_catch_up = max_catch_up
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0  # requests answered without counting their range again
        self.refreshed_hours = 0

    def rows(self, key: Hashable, seq: int, lo: int, hi: int, fill: Fill, dirty: Dirty
             ) -> list[HourRow]:
        """The rows of the whole hours [lo, hi) at ``seq``, in answer order (not cut)."""
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and (seq < entry.seq or seq - entry.seq > self.max_catch_up
                                  or hi <= entry.lo or entry.hi <= lo):
            entry = None  # older snapshot, far behind, or another range: count afresh
        if entry is None:
            entry = _Entry.of(seq, lo, hi, _by_hour(fill(lo, hi)))
        else:
            entry = self._update(entry, seq, lo, hi, fill, dirty)
        self._publish(key, entry)
        at, end = bisect.bisect_left(entry.order, lo), bisect.bisect_left(entry.order, hi)
        return [(h, k, n) for h in entry.order[at:end] for k, n in entry.hours[h]]

    def _update(self, entry: _Entry, seq: int, lo: int, hi: int, fill: Fill, dirty: Dirty
                ) -> _Entry:
        hours = entry.hours
        fresh = True
        if seq != entry.seq:
            touched = sorted({h for h in dirty(entry.seq) if entry.lo <= h < entry.hi})
            if touched:
                hours = dict(hours)
                for a, b in _runs(touched):
                    for h in [h for h in hours if a <= h < b]:
                        del hours[h]
                    hours.update(_by_hour(fill(a, b)))
                    self.refreshed_hours += (b - a) // HOUR
                fresh = False
        new_lo, new_hi = min(lo, entry.lo), max(hi, entry.hi)
        if new_lo < entry.lo or new_hi > entry.hi:
            hours = dict(hours) if hours is entry.hours else hours
            if new_lo < entry.lo:
                hours.update(_by_hour(fill(new_lo, entry.lo)))
            if new_hi > entry.hi:
                hours.update(_by_hour(fill(entry.hi, new_hi)))
            fresh = False
        if fresh:
            self.hits += 1
        if hours is entry.hours:
            return _Entry(seq, entry.lo, entry.hi, hours, entry.order, entry.size)
        return _Entry.of(seq, new_lo, new_hi, hours)

    def _publish(self, key: Hashable, entry: _Entry) -> None:
        with self._lock:
            old = self._entries.get(key)
            if old is not None and old.seq > entry.seq:
                return  # a request that read a newer snapshot got there first
            self._entries[key] = entry
            self._entries.move_to_end(key)
            total = sum(e.size for e in self._entries.values())
            while self._entries and (total > self.max_rows
                                     or len(self._entries) > self.max_entries):
                _, dropped = self._entries.popitem(last=False)
                total -= dropped.size


def _runs(hours: list[int], most: int = 8) -> list[tuple[int, int]]:
    """Sorted hours as ranges of consecutive hours, or one range over them all when there
    are more than ``most`` (each range is one statement)."""
    runs: list[tuple[int, int]] = []
    for h in hours:
        if runs and runs[-1][1] == h:
            runs[-1] = (runs[-1][0], h + HOUR)
        else:
            runs.append((h, h + HOUR))
    return runs if len(runs) <= most else [(hours[0], hours[-1] + HOUR)]


def _by_hour(rows: Iterable[HourRow]) -> dict[int, tuple[tuple[Any, int], ...]]:
    out: dict[int, list[tuple[Any, int]]] = {}
    keys: dict[Any, Any] = {}  # one object per distinct key, not one per row
    for h, k, n in rows:
        out.setdefault(h, []).append((keys.setdefault(k, k), n))
    return {h: tuple(v) for h, v in out.items()}


__all__ = ["HourCache"]
