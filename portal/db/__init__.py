"""The hub's PostgreSQL backend: Django's, with a cheaper start-of-request health check."""
