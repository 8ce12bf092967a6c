"""Django's PostgreSQL backend, loading timestamps with psycopg's C loader (``base.TzLoader``)."""
