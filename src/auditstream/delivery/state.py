"""``StateStore``: the delivery state of every integration, kept apart from the event log.

The event log is append-only and signed; delivery state changes in place all the time
(a cursor per acknowledged message), so it has a store of its own.

Guarantees every implementation gives (``tests/delivery/test_state.py`` checks them,
parametrized over every implementation):

* **Tenant scoping.** ``get``, ``by_tenant``, ``update``, ``delete`` and the attempt and dead
  letter reads take the tenant: another tenant's integration id is not found.
* **Durable on return.** What a method wrote survives a ``kill -9``, and is seen by every
  process that opens the same store.
* **Compare-and-set progress.** ``save_progress`` writes only if the stored cursor is the
  one the caller read (``expect_cursor``); otherwise it writes nothing and returns False.
  A cursor therefore never moves under a deliverer that did not move it, and an
  integration deleted meanwhile is not resurrected.
* **Atomic steps.** A save writes the new progress, its attempt and its dead letters
  together or not at all: an event is never both past the cursor and absent from the
  dead letters after a refusal.
* **Bounded history.** The newest ``ATTEMPTS_KEPT`` attempts of each integration are
  kept; dead letters are kept until redelivered or the integration is deleted.
* **Secrets at rest.** Configs are stored as given (the file is created readable by its
  owner only); hiding secrets in answers is the service's job.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

from .integration import Attempt, DeadLetter, Integration, Progress

#: Attempts kept per integration (the newest).
ATTEMPTS_KEPT = 200


class StateStore(abc.ABC):
    @abc.abstractmethod
    def create(self, integration: Integration) -> None:
        """Store a new integration (its id is new)."""

    @abc.abstractmethod
    def get(self, tenant: str, integration_id: str) -> Integration | None:
        """The tenant's integration, or None."""

    @abc.abstractmethod
    def by_tenant(self, tenant: str) -> list[Integration]:
        """The tenant's integrations, oldest first."""

    @abc.abstractmethod
    def all(self) -> list[Integration]:
        """Every tenant's integrations (for the supervisor)."""

    @abc.abstractmethod
    def update(self, tenant: str, integration_id: str, changes: dict[str, Any],
               at: float) -> Integration | None:
        """Apply ``changes`` (name, rule, format, config, enabled) and clear any wait
        before the next attempt (a fixed config is tried at once). None if not found."""

    @abc.abstractmethod
    def delete(self, tenant: str, integration_id: str) -> bool:
        """Remove the integration with its attempts and dead letters."""

    @abc.abstractmethod
    def save_progress(self, integration_id: str, expect_cursor: int, progress: Progress, *,
                      attempt: Attempt | None = None,
                      dead: Sequence[DeadLetter] = ()) -> bool:
        """Compare-and-set the progress (see the module docstring), with the attempt that
        led to it (its time sets ``last_attempt_at`` and, by its outcome,
        ``last_success_at`` or ``last_error``) and the events it sent to the dead letters."""

    @abc.abstractmethod
    def add_attempt(self, attempt: Attempt) -> None:
        """Record an attempt that moves no cursor (a test message)."""

    @abc.abstractmethod
    def attempts(self, tenant: str, integration_id: str, limit: int = 50) -> list[Attempt]:
        """The newest attempts first."""

    @abc.abstractmethod
    def dead_letters(self, tenant: str, integration_id: str, *, after_seq: int = 0,
                     limit: int = 100) -> list[DeadLetter]:
        """Dead letters with ``seq > after_seq``, in seq order."""

    @abc.abstractmethod
    def dead_letter_count(self, integration_id: str) -> int: ...

    @abc.abstractmethod
    def request_redelivery(self, tenant: str, integration_id: str,
                           seqs: Sequence[int] | None) -> int:
        """Mark dead letters for redelivery (all when ``seqs`` is None); how many were."""

    @abc.abstractmethod
    def redeliveries(self, integration_id: str, limit: int) -> list[DeadLetter]:
        """Dead letters marked for redelivery, in seq order."""

    @abc.abstractmethod
    def finish_redelivery(self, letter: DeadLetter, attempt: Attempt) -> None:
        """After redelivering ``letter``: gone if the attempt succeeded, else kept with one
        more attempt and the error, no longer marked."""

    @abc.abstractmethod
    def close(self) -> None: ...


__all__ = ["ATTEMPTS_KEPT", "StateStore"]
