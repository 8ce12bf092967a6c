"""config.postgresql: timestamps parsed by psycopg's C loader are the aware datetimes Django's loader gives."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.backends.postgresql.psycopg_any import BaseTzLoader
from psycopg.pq import Format

from config.postgresql.base import HAS_C_LOADER, TIMESTAMPTZ_OID, TzLoader

pytestmark = [pytest.mark.django_db,
              pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's backend")]

VALUES = [
    datetime(2026, 12, 7, 10, 40, 1, 123456, tzinfo=UTC),
    datetime(2026, 12, 7, 10, 40, 1, tzinfo=UTC),  # no fraction
    datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1, 1, 1, 0, 0, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2024, 2, 29, 12, 0, tzinfo=UTC) + timedelta(microseconds=10),
]


def test_the_c_loader_is_used_and_gives_djangos_datetimes():
    assert HAS_C_LOADER  # psycopg-binary is a dependency: without it this backend is Django's
    with connection.cursor() as cursor:
        loader = connection.connection.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)
        assert issubclass(loader, TzLoader) and loader.timezone == connection.timezone
        # A zone other than the session's in the literals: PostgreSQL converts them to the session's (UTC).
        cursor.execute("SELECT v FROM unnest(%s::timestamptz[]) AS v", [VALUES])
        got = [row[0] for row in cursor.fetchall()]
        cursor.execute("SELECT '2026-06-01 09:30:00.5-03'::timestamptz, NULL::timestamptz")
        odd, null = cursor.fetchone()
    assert got == VALUES and all(v.tzinfo is connection.timezone for v in got)
    assert odd == datetime(2026, 6, 1, 12, 30, 0, 500000, tzinfo=UTC) and odd.tzinfo is connection.timezone
    assert null is None


def test_same_values_as_djangos_loader():
    """Each value's text, as PostgreSQL sends it, through both loaders."""
    django_loader = type("L", (BaseTzLoader,), {"timezone": connection.timezone})
    with connection.cursor() as cursor:
        cursor.execute("SELECT v::text FROM unnest(%s::timestamptz[]) AS v", [VALUES])
        texts = [row[0].encode() for row in cursor.fetchall()]
        ours = connection.connection.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)(TIMESTAMPTZ_OID, cursor.cursor)
        theirs = django_loader(TIMESTAMPTZ_OID, cursor.cursor)
        assert [ours.load(t) for t in texts] == [theirs.load(t) for t in texts] == VALUES
        assert [type(ours.load(t).tzinfo) for t in texts] == [type(theirs.load(t).tzinfo) for t in texts]
