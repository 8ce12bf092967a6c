"""``field__any=ids``: ``field__in=ids`` for long lists of integers (the live sweep's hundreds of row ids).

On PostgreSQL it is ``field = ANY('{1,2,...}'::bigint[])`` with the list as one parameter, which is how
PostgreSQL runs ``IN (1, 2, ...)`` anyway (same plan). ``field IN (%s, %s, ...)`` with one placeholder per id
made each such query long enough to miss psycopg's statement cache, so psycopg split and re-assembled it in
Python every time (~16 % of the worker's sweep in a CPU profile; docs/measurements.md). Anything else (another
database, a subquery, values other than integers) is ``__in`` as Django writes it. Registered on every field
by ``inbox.apps``.
"""

from django.core.exceptions import EmptyResultSet
from django.db.models import Field, ForeignObject
from django.db.models.lookups import In


def int_array(values) -> str:
    """Integers as one PostgreSQL array literal (``'{1,2,3}'``), to pass as a single ``%s::bigint[]`` parameter:
    psycopg adapts a list element by element in Python, one string goes through in C."""
    return "{" + ",".join(map(str, map(int, values))) + "}"


class AnyOf(In):
    lookup_name = "any"

    def as_postgresql(self, compiler, connection):
        if not self.rhs_is_direct_value():
            return super().as_sql(compiler, connection)
        values = {v for v in self.rhs if v is not None}  # NULL is never equal to anything, as in ``__in``
        if not all(type(v) is int for v in values):  # (not bool either)
            return super().as_sql(compiler, connection)
        if not values:
            raise EmptyResultSet
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s::bigint[])", (*lhs_params, int_array(values))


def register() -> None:
    Field.register_lookup(AnyOf)
    ForeignObject.register_lookup(AnyOf)  # a relation's lookups are its own, not Field's (ids only, as above)
