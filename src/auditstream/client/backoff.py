"""The reconnection schedule of the stream and the batcher: 1, 2, 4, 8 … at most 30 s."""

from __future__ import annotations

__all__ = ["Backoff"]


class Backoff:
    """Exponential delays, reset once a connection works again.

    >>> b = Backoff()
    >>> [b.next() for _ in range(7)]
    [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    >>> b.reset(); b.next()
    1.0

    No jitter: the server's catch-up reads have their own concurrency limit, so a crowd
    reconnecting at once is queued there rather than spread here.
    """

    def __init__(self, first: float = 1.0, factor: float = 2.0, cap: float = 30.0) -> None:
        self.first = first
        self.factor = factor
        self.cap = cap
        self._next = first

    def next(self) -> float:
        """The delay before the next attempt; each call doubles the one after it."""
        delay = self._next
        self._next = min(self.cap, delay * self.factor)
        return delay

    def reset(self) -> None:
        """Start again from the first delay (after a connection that worked)."""
        self._next = self.first
