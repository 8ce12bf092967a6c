"""Django's PostgreSQL backend (``ENGINE = "config.postgresql"``, set by config/settings/base.py), with one
change: ``timestamptz`` values are parsed by psycopg-binary's C loader.

Django registers its own loader for ``timestamptz`` (``BaseTzLoader``: psycopg's loader, then
``.replace(tzinfo=<the connection's zone>)``). It subclasses psycopg's pure-Python ``TimestamptzLoader``,
since the C one cannot be subclassed, so every timestamp a query returns was parsed in Python: ~11 % of
the Celery worker's CPU in a live flood (docs/measurements.md). ``TzLoader`` does what Django's does
with the C loader's parse: the same aware datetimes (tests/config/test_db_backend.py compares them). Without
psycopg-binary (the C module), Django's loader stays.
"""

import psycopg
from django.db.backends.postgresql import base
from psycopg.adapt import Loader
from psycopg.pq import Format

TIMESTAMPTZ_OID = psycopg.postgres.types["timestamptz"].oid
# What psycopg itself uses for timestamptz: the C loader when psycopg-binary (or -c) is installed.
_FAST_LOADER = psycopg.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)
HAS_C_LOADER = _FAST_LOADER is not None and not _FAST_LOADER.__module__.startswith("psycopg.")


class TzLoader(Loader):
    """Django's ``BaseTzLoader`` (a value parsed in the session's zone, then given ``timezone``: Django sets
    the session's zone to it) on the C parser. ``timezone``: ``create_cursor`` compares it with Django's."""

    timezone = None

    def __init__(self, oid, context=None):
        super().__init__(oid, context)
        self._parse = _FAST_LOADER(oid, context).load

    def load(self, data):
        return self._parse(data).replace(tzinfo=self.timezone)


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        if HAS_C_LOADER:
            loader = type("SpecificTzLoader", (TzLoader,), {"timezone": self.timezone})
            connection.adapters.register_loader(TIMESTAMPTZ_OID, loader)
        return connection
