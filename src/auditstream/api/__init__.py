"""HTTP surfaces: ``native`` (the /v1 API) and ``compat`` (one module per seed profile)."""
