"""The native /v1 API."""
