"""The kinds of integration, one module each (the ``Sink`` interface is in ``base``)."""

from __future__ import annotations

from .base import Outcome, Sink, SinkConfig, SinkContext
from .slack import SlackSink
from .splunk_hec import SplunkHecSink
from .syslog import SyslogSink
from .webhook import WebhookSink

#: kind name → its sink class.
SINKS: dict[str, type[Sink]] = {s.kind: s for s in (
    WebhookSink, SlackSink, SplunkHecSink, SyslogSink)}

__all__ = ["SINKS", "Outcome", "Sink", "SinkConfig", "SinkContext"]
