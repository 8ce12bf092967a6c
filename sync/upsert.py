"""The one bulk upsert helper of the sync engine.

``insert_new(model, columns, rows, scope, key)`` inserts the rows whose ``key`` column value does not
exist yet within ``scope`` (a dict of column -> value shared by every row, e.g. the connection) and
returns the key values it inserted; existing rows are left untouched, which is what makes a replay
change nothing. ``rows`` are tuples in ``columns`` order (JSON columns as already-encoded strings on
PostgreSQL or Python objects; both are accepted).

The caller holds the per-connection journal lock, so nobody else inserts into the same scope
meanwhile. On PostgreSQL the existing keys are read with one ``= ANY(array)`` probe of the unique
index and the new rows are streamed with COPY straight into the table; should a row appear in the
meantime anyway (another path writing the same key), the unique constraint aborts the batch and the
processor retries its rows one by one, which then see the row and count it as a duplicate.
SQLite (the embedded default): a read-back of existing keys and ``bulk_create(ignore_conflicts)``.
Call inside ``transaction.atomic()``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from itertools import islice

from django.db import connection, models


def _chunks(seq, n):
    it = iter(seq)
    while chunk := list(islice(it, n)):
        yield chunk


def existing_keys(model, scope: dict, key: str, values) -> set:
    manager = model._base_manager
    out = set()
    if connection.vendor == "postgresql":
        table = model._meta.db_table
        fields = {f.attname: f for f in model._meta.concrete_fields}
        where = " AND ".join(f"{connection.ops.quote_name(fields[c].column)} = %s" for c in scope)
        kcol = connection.ops.quote_name(fields[key].column)
        values = list(values)
        with connection.cursor() as cursor:
            for chunk in _chunks(values, 50_000):
                cursor.execute(f"SELECT {kcol} FROM {table} WHERE {where} AND {kcol} = ANY(%s)",  # noqa: S608
                               [*scope.values(), chunk])
                out.update(r[0] for r in cursor.fetchall())
        return out
    for chunk in _chunks(list(values), 500):
        out.update(manager.filter(**scope, **{f"{key}__in": chunk}).values_list(key, flat=True))
    return out


def _json_ready(rows, json_cols):
    for row in rows:
        if json_cols and any(not isinstance(row[i], str) for i in json_cols):
            row = list(row)
            for i in json_cols:
                if not isinstance(row[i], str):
                    row[i] = json.dumps(row[i])
        yield row


def _copy_beside(sql: str, rows, json_cols, alongside) -> None:
    """COPY ``rows`` from a helper thread on this thread's database connection (same transaction)
    while ``alongside()`` runs here; this thread does not touch the connection until the COPY is done.
    An error of the COPY is raised here, after ``alongside`` returned."""
    connection.ensure_connection()
    raw = connection.connection
    errors: list[BaseException] = []

    def feed():
        try:
            with raw.cursor() as cursor, cursor.copy(sql) as copy:
                write = copy.write_row
                for row in _json_ready(rows, json_cols):
                    write(row)
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            errors.append(exc)

    feeder = threading.Thread(target=feed, name="copy-feed")
    feeder.start()
    try:
        alongside()
    finally:
        feeder.join()
    if errors:
        raise errors[0]


def insert_new(model: type[models.Model], columns: Sequence[str], rows: Sequence[tuple], scope: dict, key: str,
               timings: dict | None = None, alongside=None) -> list:
    """Insert rows whose ``key`` is new within ``scope``; returns the inserted key values in order.

    ``alongside``: a callable with no database access, run in this thread while a helper thread feeds
    the COPY (PostgreSQL only; the server then does the work and both threads mostly wait on it, so
    the caller's CPU work overlaps the server's). Not run when there is nothing to insert."""
    if not rows:
        return []
    k = list(columns).index(key)
    started = time.perf_counter()
    present = existing_keys(model, scope, key, (r[k] for r in rows))
    if timings is not None:
        timings["message_probe"] += time.perf_counter() - started
    new_rows = [r for r in rows if r[k] not in present]
    if not new_rows:
        return []
    fields = {f.attname: f for f in model._meta.concrete_fields}
    if connection.vendor == "postgresql":
        json_cols = [i for i, c in enumerate(columns) if isinstance(fields[c], models.JSONField)]
        col_sql = ", ".join(connection.ops.quote_name(fields[c].column) for c in columns)
        if alongside is not None:
            _copy_beside(f"COPY {model._meta.db_table} ({col_sql}) FROM STDIN", new_rows, json_cols, alongside)
            return [r[k] for r in new_rows]
        with connection.cursor() as cursor, cursor.cursor.copy(
                f"COPY {model._meta.db_table} ({col_sql}) FROM STDIN") as copy:
            write = copy.write_row
            if json_cols:
                for row in new_rows:
                    if any(not isinstance(row[i], str) for i in json_cols):
                        row = list(row)
                        for i in json_cols:
                            if not isinstance(row[i], str):
                                row[i] = json.dumps(row[i])
                    write(row)
            else:
                for row in new_rows:
                    write(row)
    else:
        json_cols = [i for i, c in enumerate(columns) if isinstance(fields[c], models.JSONField)]
        objs = []
        for row in new_rows:
            values = dict(zip(columns, row, strict=True))
            for i in json_cols:
                if isinstance(row[i], str):
                    values[columns[i]] = json.loads(row[i])
            objs.append(model(**values))
        model._base_manager.bulk_create(objs, ignore_conflicts=True, batch_size=200)
    return [r[k] for r in new_rows]
