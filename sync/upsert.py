"""The one bulk upsert helper of the sync engine.

``insert_new(model, columns, rows, scope, key)`` inserts the rows whose ``key`` column value does not
exist yet within ``scope`` (a dict of column -> value shared by every row, e.g. the connection) and
returns the key values it inserted; existing rows are left untouched, which is what makes a replay
change nothing. ``rows`` are tuples in ``columns`` order (JSON columns as already-encoded strings on
PostgreSQL or Python objects; both are accepted).

The caller holds the per-connection journal lock, so nobody else inserts into the same scope
meanwhile. On PostgreSQL the existing keys are read with one ``= ANY(array)`` probe of the unique
index (rows of a parent created in this transaction are not probed: see ``fresh``) and the new rows
are streamed with a binary COPY straight into the table; should a row appear in the meantime anyway
(another path writing the same key), the unique constraint aborts the batch and the processor retries
its rows one by one, which then see the row and count it as a duplicate.
SQLite (the embedded default): a read-back of existing keys and ``bulk_create(ignore_conflicts)``.
Call inside ``transaction.atomic()``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from contextlib import contextmanager
from operator import itemgetter

import psycopg
from django.db import IntegrityError, connection, models, transaction
from psycopg import postgres
from psycopg.adapt import Dumper
from psycopg.pq import Format

from config.batching import chunks
from sync import timing


def existing_keys(model, scope: dict, key: str | tuple[str, ...], values) -> set:
    """The values of ``key`` (a column, or a tuple of columns whose values are tuples) that exist
    within ``scope`` (column -> value equalities)."""
    manager = model._base_manager
    values = list(values)
    out = set()
    if isinstance(key, tuple):
        return _existing_tuples(model, scope, key, values)
    if connection.vendor == "postgresql":
        table = model._meta.db_table
        fields = {f.attname: f for f in model._meta.concrete_fields}
        where = " AND ".join(f"{connection.ops.quote_name(fields[c].column)} = %s" for c in scope) or "TRUE"
        kcol = connection.ops.quote_name(fields[key].column)
        with connection.cursor() as cursor:
            for chunk in chunks(values, 50_000):
                cursor.execute(f"SELECT {kcol} FROM {table} WHERE {where} AND {kcol} = ANY(%s)",  # noqa: S608
                               [*scope.values(), chunk])
                out.update(r[0] for r in cursor.fetchall())
        return out
    for chunk in chunks(values, 500):
        out.update(manager.filter(**scope, **{f"{key}__in": chunk}).values_list(key, flat=True))
    return out


def _existing_tuples(model, scope: dict, key: tuple[str, ...], values: list[tuple]) -> set:
    """existing_keys for a composite key: on PostgreSQL one join with the arrays of each column."""
    out = set()
    fields = {f.attname: f for f in model._meta.concrete_fields}
    if connection.vendor == "postgresql":
        table = model._meta.db_table
        cols = [connection.ops.quote_name(fields[c].column) for c in key]
        types = _column_types(model, key)
        where = "".join(f" AND t.{connection.ops.quote_name(fields[c].column)} = %s" for c in scope)
        unnest = ", ".join(f"%s::{t}[]" for t in types)
        on = " AND ".join(f"t.{c} = k.c{i}" for i, c in enumerate(cols))
        names = ", ".join(f"c{i}" for i in range(len(cols)))
        select = ", ".join(f"t.{c}" for c in cols)
        with connection.cursor() as cursor:
            for chunk in chunks(values, 50_000):
                cursor.execute(f"SELECT {select} FROM {table} t JOIN unnest({unnest}) AS k({names}) ON {on}"  # noqa: S608
                               f"{where}", [*map(list, zip(*chunk, strict=True)), *scope.values()])
                out.update(tuple(r) for r in cursor.fetchall())
        return out
    by_prefix: dict[tuple, list] = {}
    for v in values:
        by_prefix.setdefault(v[:-1], []).append(v[-1])
    for prefix, lasts in by_prefix.items():
        fixed = dict(zip(key[:-1], prefix, strict=True))
        for chunk in chunks(lasts, 500):
            out.update((*prefix, last) for last in model._base_manager.filter(**scope, **fixed, **{f"{key[-1]}__in": chunk})
                       .values_list(key[-1], flat=True))
    return out


def _json_ready(rows, json_cols):
    for row in rows:
        if json_cols and any(not isinstance(row[i], str) for i in json_cols):
            row = list(row)
            for i in json_cols:
                if not isinstance(row[i], str):
                    row[i] = json.dumps(row[i])
        yield row


class _JsonText(str):
    """Marker type: registers ``_JsonbTextBinaryDumper`` under jsonb's oid (see ``_binary_copy``)."""


class _JsonbTextBinaryDumper(Dumper):
    """Already-encoded JSON text as a binary jsonb value (a version byte, then the text)."""

    format = Format.BINARY
    oid = postgres.types["jsonb"].oid

    def dump(self, obj):
        return b"\x01" + obj.encode()


def _column_types(model, columns) -> list[str]:
    """PostgreSQL type names of ``columns`` for a binary COPY (``varchar(128)`` -> ``varchar``)."""
    fields = {f.attname: f for f in model._meta.concrete_fields}
    return [fields[c].db_type(connection).split("(")[0] for c in columns]


@contextmanager
def _binary_copy(cursor, sql: str, types: list[str]):
    """A binary COPY on a psycopg cursor: less Python per row than text (docs/measurements.md)
    (the formatting runs under the GIL, beside the decoding of the next batch). JSON columns take the
    already-encoded text the row builders make."""
    cursor.adapters.register_dumper(_JsonText, _JsonbTextBinaryDumper)
    with cursor.copy(f"{sql} (FORMAT BINARY)") as copy:
        copy.set_types(types)
        yield copy


def _copy_beside(sql: str, types: list[str], rows, json_cols, alongside) -> None:
    """COPY ``rows`` from a helper thread on this thread's database connection (same transaction)
    while ``alongside()`` runs here; this thread does not touch the connection until the COPY is done.
    An error of the COPY is raised here, after ``alongside`` returned."""
    connection.ensure_connection()
    raw = connection.connection
    errors: list[BaseException] = []

    def feed():
        try:
            with raw.cursor() as cursor, _binary_copy(cursor, sql, types) as copy:
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


def _id_sequence(table: str) -> str:
    if table not in _SEQUENCES:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
            _SEQUENCES[table] = cursor.fetchone()[0]
    return _SEQUENCES[table]


_SEQUENCES: dict[str, str] = {}
logger = logging.getLogger(__name__)


def insert_new(model: type[models.Model], columns: Sequence[str], rows: Sequence[tuple], scope: dict,
               key: str | tuple[str, ...],
               alongside=None, id_range: list | None = None,
               fresh: tuple[str, set] | None = None) -> list:
    """Insert rows whose ``key`` (a column, or a tuple of columns: values are then tuples) is new within
    ``scope``; returns the inserted key values in order.

    ``alongside``: a callable with no database access, run in this thread while a helper thread feeds
    the COPY (PostgreSQL only; the server then does the work and both threads mostly wait on it, so
    the caller's CPU work overlaps the server's). Not run when there is nothing to insert.
    ``id_range``: a list that receives ``(after_id, through_id)`` on PostgreSQL: every inserted row's
    primary key is in ``after_id < id <= through_id`` (one ``nextval`` before the COPY, this session's
    ``currval`` after it; other sessions' ids may be interleaved).
    ``fresh``: ``(column, values)``: rows whose ``column`` is in ``values`` are not probed (PostgreSQL),
    because their parent row was created in this transaction (a message of a conversation this batch
    created cannot exist yet: a first history sync probes nothing). Should one exist anyway, the unique
    constraint aborts the batch and the processor's row-by-row retry counts it as a duplicate."""
    if not rows:
        return []
    cols = list(columns)
    k = itemgetter(*(cols.index(c) for c in key)) if isinstance(key, tuple) else itemgetter(cols.index(key))
    started = time.perf_counter()
    unprobed: list[tuple] = []
    probed = rows
    if fresh is not None and fresh[1] and connection.vendor == "postgresql":
        f, values = list(columns).index(fresh[0]), fresh[1]
        probed = [r for r in rows if r[f] not in values]
        unprobed = [r for r in rows if r[f] in values]
    present = existing_keys(model, scope, key, (k(r) for r in probed)) if probed else set()
    timing.add("message_probe", time.perf_counter() - started)
    new_rows = [r for r in rows if k(r) not in present] if present else list(rows)  # in the rows' order
    if connection.vendor != "postgresql":
        return _bulk_create(model, columns, new_rows, k)
    if not unprobed:
        return _copy_new(model, columns, new_rows, k, alongside, id_range)
    try:
        with transaction.atomic():  # a savepoint: the COPY of unprobed rows may meet an existing key
            return _copy_new(model, columns, new_rows, k, alongside, id_range)
    except (IntegrityError, psycopg.errors.UniqueViolation):
        logger.info("sync.upsert.fresh_key_existed", extra={"table": model._meta.db_table, "rows": len(rows)})
    present = existing_keys(model, scope, key, (k(r) for r in unprobed))
    return _copy_new(model, columns, [r for r in new_rows if k(r) not in present], k, None, id_range)


def _copy_new(model, columns, new_rows, k, alongside, id_range: list | None) -> list:
    if not new_rows:
        return []
    fields = {f.attname: f for f in model._meta.concrete_fields}
    json_cols = [i for i, c in enumerate(columns) if isinstance(fields[c], models.JSONField)]
    col_sql = ", ".join(connection.ops.quote_name(fields[c].column) for c in columns)
    if id_range is None:
        return _copy_rows(model, columns, col_sql, new_rows, json_cols, k, alongside)
    sequence = _id_sequence(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(%s)", [sequence])
        after_id = cursor.fetchone()[0]
    inserted = _copy_rows(model, columns, col_sql, new_rows, json_cols, k, alongside)
    with connection.cursor() as cursor:
        cursor.execute("SELECT currval(%s)", [sequence])
        id_range[:] = [after_id, cursor.fetchone()[0]]
    return inserted


def _bulk_create(model, columns, new_rows, k) -> list:
    """SQLite (the embedded default): ``bulk_create(ignore_conflicts)`` after the probe."""
    if not new_rows:
        return []
    fields = {f.attname: f for f in model._meta.concrete_fields}
    json_cols = [i for i, c in enumerate(columns) if isinstance(fields[c], models.JSONField)]
    objs = []
    for row in new_rows:
        values = dict(zip(columns, row, strict=True))
        for i in json_cols:
            if isinstance(row[i], str):
                values[columns[i]] = json.loads(row[i])
        objs.append(model(**values))
    model._base_manager.bulk_create(objs, ignore_conflicts=True, batch_size=200)
    return [k(r) for r in new_rows]


def _copy_rows(model, columns, col_sql: str, new_rows, json_cols, k, alongside) -> list:
    sql = f"COPY {model._meta.db_table} ({col_sql}) FROM STDIN"
    types = _column_types(model, columns)
    if alongside is not None:
        _copy_beside(sql, types, new_rows, json_cols, alongside)
        return [k(r) for r in new_rows]
    with connection.cursor() as cursor, _binary_copy(cursor.cursor, sql, types) as copy:
        write = copy.write_row
        for row in _json_ready(new_rows, json_cols):
            write(row)
    return [k(r) for r in new_rows]
