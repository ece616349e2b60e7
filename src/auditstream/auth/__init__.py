"""Who is calling: tenants, API keys, users, JWTs, and the scopes they carry."""
