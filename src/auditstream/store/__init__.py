"""Event stores: one interface (``base.EventStore``), one module per backend."""
