"""The canonical event and the small value types around it."""
