"""The one bulk upsert helper of the sync engine.

``insert_new(model, rows, conflict_fields, returning)`` inserts rows that do not exist yet and returns
the ``returning`` columns of the rows it actually inserted; existing rows (by the unique constraint on
``conflict_fields``) are left untouched, which is what makes a replay change nothing.

PostgreSQL: COPY into a temporary table, then one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING
RETURNING``: no per-row round trips and the database tells us exactly which rows were new.
SQLite (the embedded default): ``INSERT OR IGNORE`` through ``bulk_create`` and a read-back.
Call inside ``transaction.atomic()``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import islice

from django.db import connection, models


def _chunks(seq, n):
    it = iter(seq)
    while chunk := list(islice(it, n)):
        yield chunk


def insert_new(model: type[models.Model], rows: Sequence[dict], conflict_fields: Sequence[str],
               returning: Sequence[str]) -> list[tuple]:
    """Insert ``rows`` (dicts of concrete column attnames) that do not conflict; return the new ones."""
    if not rows:
        return []
    if connection.vendor == "postgresql":
        return _insert_new_pg(model, rows, conflict_fields, returning)
    return _insert_new_generic(model, rows, conflict_fields, returning)


def _pg_value(field, value):
    if value is None:
        return None
    if isinstance(field, models.JSONField):
        return json.dumps(value)
    return value


def _insert_new_pg(model, rows, conflict_fields, returning):
    table = model._meta.db_table
    columns = list(rows[0].keys())
    fields = {f.attname: f for f in model._meta.concrete_fields}
    col_sql = ", ".join(connection.ops.quote_name(fields[c].column) for c in columns)
    tmp = f"_ins_{table}"
    ret_sql = ", ".join(connection.ops.quote_name(fields[c].column) for c in returning)
    conflict_sql = ", ".join(connection.ops.quote_name(fields[c].column) for c in conflict_fields)
    field_list = [fields[c] for c in columns]
    with connection.cursor() as cursor:
        # The temporary table has the target's column types and no constraints; dropped at commit.
        cursor.execute(f"DROP TABLE IF EXISTS {tmp}")
        cursor.execute(f"CREATE TEMP TABLE {tmp} ON COMMIT DROP AS SELECT {col_sql} FROM {table} WITH NO DATA")  # noqa: S608
        raw = cursor.cursor  # psycopg cursor: COPY in binary-free text mode, rows written from C
        with raw.copy(f"COPY {tmp} ({col_sql}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([_pg_value(f, row[c]) for f, c in zip(field_list, columns, strict=True)])
        cursor.execute(
            f"INSERT INTO {table} ({col_sql}) SELECT {col_sql} FROM {tmp} "  # noqa: S608 - identifiers from model meta
            f"ON CONFLICT ({conflict_sql}) DO NOTHING RETURNING {ret_sql}"
        )
        result = cursor.fetchall()
        cursor.execute(f"DROP TABLE {tmp}")
    return result


def _insert_new_generic(model, rows, conflict_fields, returning):
    manager = model._base_manager
    key_field = conflict_fields[-1]
    fixed = {f: rows[0][f] for f in conflict_fields[:-1]}
    keys = [r[key_field] for r in rows]
    existing = set()
    for chunk in _chunks(keys, 500):
        existing.update(manager.filter(**fixed, **{f"{key_field}__in": chunk}).values_list(key_field, flat=True))
    new_rows = [r for r in rows if r[key_field] not in existing and all(r[f] == fixed[f] for f in fixed)]
    manager.bulk_create([model(**r) for r in new_rows], ignore_conflicts=True, batch_size=200)
    new_keys = [r[key_field] for r in new_rows]
    out = []
    for chunk in _chunks(new_keys, 500):
        out.extend(manager.filter(**fixed, **{f"{key_field}__in": chunk}).values_list(*returning))
    return out
