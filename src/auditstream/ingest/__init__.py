"""The ingest pipeline: parse → validate → normalise → store.append (durable) → publish."""
