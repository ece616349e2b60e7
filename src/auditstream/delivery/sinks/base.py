"""``Sink``: sends batches of one integration's events to its receiver.

Guarantees every sink gives (``tests/delivery/sinks`` checks them against real local
receivers):

* **An outcome, not an exception.** ``send`` returns an ``Outcome`` for every failure of
  the network or the receiver; it raises only for a bug of its own.
* **ok means acknowledged.** ``Outcome.ok``: the receiver acknowledged every event of the
  batch (an HTTP 2xx; syslog over TCP or TLS: written to the connection; UDP: sent, which
  is all UDP can say).
* **Outage or refusal.** A failed outcome is a *refusal* (``refused``: the receiver
  answered and will not take this payload, an HTTP 4xx other than 408 and 429) or an
  *outage* (no connection, a timeout, 408, 429, 5xx). Delivery retries an outage until the
  receiver recovers, however long, and sends a refused payload to the dead letters after
  a few attempts (``delivery.schedule``).
* **Bounded.** It connects only where the ``DestinationPolicy`` allows, every call ends
  within the configured timeout, and at most ``max_response_bytes`` of an answer is read.
* **Stable ids.** The same ``message_id`` for the same events (retries reuse it), so a
  receiver can drop at-least-once duplicates where the kind carries an id.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from ..clock import Clock
from ..guard import DestinationPolicy
from ..payload import Format


class SinkConfig(BaseModel):
    """Base of each kind's ``config``: unknown keys and loose types are refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


@dataclass(frozen=True)
class SinkContext:
    """What every sink shares: the policy, limits and names of this deployment."""

    policy: DestinationPolicy
    clock: Clock
    timeout: float = 10.0
    max_response_bytes: int = 64 * 1024
    deployment: str = "auditstream.local"


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None = None
    error: str | None = None
    #: The receiver answered and refused this payload (see the module docstring).
    refused: bool = False
    #: Seconds the receiver asked to wait (``Retry-After``), if it did.
    retry_after: float | None = None
    latency_ms: float = 0.0
    #: The start of the receiver's answer, for the person debugging it.
    response: str = ""


class Sink(abc.ABC):
    kind: ClassVar[str]
    Config: ClassVar[type[SinkConfig]]
    #: Config keys that are secrets: stored, never shown back.
    SECRETS: ClassVar[tuple[str, ...]] = ()
    #: The payload formats this kind can carry.
    FORMATS: ClassVar[tuple[Format, ...]]

    def __init__(self, config: Any, fmt: Format, context: SinkContext):
        self.config = config
        self.format = fmt
        self.context = context

    @property
    @abc.abstractmethod
    def max_batch(self) -> int:
        """Most events in one ``send``."""

    @classmethod
    def prepare(cls, config: SinkConfig, policy: DestinationPolicy, fmt: Format
                ) -> dict[str, Any]:
        """Checks beyond the config's types (a literal private address, a config that
        cannot carry ``fmt``), at create and update time; returns config values to store
        that the caller did not send (a generated secret). ``InvalidRequest`` for what is
        wrong."""
        return {}

    @abc.abstractmethod
    async def send(self, events: list[dict[str, Any]], message_id: str) -> Outcome:
        """Deliver ``events`` (canonical, with ``seq``, in seq order, at most
        ``max_batch``) as one message where the kind batches."""

    async def aclose(self) -> None:  # noqa: B027 (a sink without connections has none)
        """Release connections (the sink is not used again)."""


__all__ = ["Outcome", "Sink", "SinkConfig", "SinkContext"]
