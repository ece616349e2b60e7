"""auditstream: self-hosted, multi-tenant security and audit events."""

__version__ = "0.1.0"
