"""The kinds of integration, one module each (the ``Sink`` interface is in ``base``)."""

from __future__ import annotations

from .base import Outcome, Sink, SinkConfig, SinkContext
from .webhook import WebhookSink

#: kind name → its sink class.
SINKS: dict[str, type[Sink]] = {s.kind: s for s in (WebhookSink,)}

__all__ = ["SINKS", "Outcome", "Sink", "SinkConfig", "SinkContext"]
