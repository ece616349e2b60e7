"""Push delivery: integrations that send a tenant's matching events to a receiver.

Each tenant's gap-free seq is the outbox (see ``store.base``): an integration keeps a
cursor (the last seq its receiver acknowledged) in a ``StateStore`` and reads from the
event store after it, woken by the commit feed. Nothing is copied at ingest.

    integration.py   what an integration is, and the checks on what a caller sends
    state.py         StateStore: integrations, cursors, attempts, dead letters (ABC)
    sqlite_state.py  its SQLite implementation (a file beside the database)
    payload.py       the record each format carries (native, cloudevents, vaultterm, authpi)
    guard.py         the destination policy: no private addresses unless allowed
    schedule.py      the retry schedule and which failures count towards dead letters
    sinks/           one module per kind: webhook, slack, splunk_hec, syslog
    deliverer.py     one integration's loop: read, send, record, back off
    supervisor.py    which process delivers which integration; start, stop, drain
    service.py       what the API and the CLI do with integrations
"""
