"""When a failed message is tried again, and when its event gives up (the documented
schedule; ``docs/push.md`` repeats it).

After the n-th failed attempt in a row (n ≥ 1) the next one waits

    min(retry_max, retry_base · 2^(n−1)) · uniform(0.5, 1.0)

("equal jitter": receivers coming back from an outage are not hit by every sender at
the same instant), or the receiver's ``Retry-After`` when it asks for longer (up to a
day). With the defaults (1 s, 10 min): about 1, 2, 4, … 512 s, then every 5–10 min.

* An **outage** (no connection, timeout, 408, 425, 429, 5xx) is retried on this schedule
  for as long as it lasts: nothing goes to the dead letters because a receiver is down.
* A **refusal** (another 4xx) of a batch makes the integration send one event per message
  until it is past that batch; a single event refused ``max_attempts`` times (outages in
  between do not count) goes to the dead letters, and delivery goes on with the next.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

#: Longest wait a receiver can ask for with Retry-After.
MAX_RETRY_AFTER = 86_400.0


@dataclass(frozen=True)
class RetrySchedule:
    base: float = 1.0
    cap: float = 600.0
    max_attempts: int = 8
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds before the attempt after the ``failures``-th failure in a row."""
        exp = min(self.cap, self.base * 2.0 ** min(max(failures, 1) - 1, 64))
        wait = exp * self.rng.uniform(0.5, 1.0)
        if retry_after is not None:
            wait = max(wait, min(retry_after, MAX_RETRY_AFTER))
        return wait


__all__ = ["RetrySchedule"]
