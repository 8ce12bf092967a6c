"""The SQL of the sync engine: one function per statement, the PostgreSQL statement first and the SQLite
fallback beside it, so the domain modules (``sync.identities``, ``sync.ingest``) and the processor never
branch on the database. On PostgreSQL rows go in and keys come back as arrays (INSERT ... SELECT FROM unnest(...) ON
CONFLICT DO NOTHING RETURNING; ``= ANY(array)`` probes), without a model instance per row; SQLite (the
embedded default, where batches are small) uses the ORM for the same effect. Call inside the batch's
transaction. ``sync.upsert`` decides which rows are new; the probe and the insert it uses are here.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import tempfile
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from datetime import datetime
from itertools import chain
from operator import add, itemgetter

from django.db import connection as db
from django.db import models
from django.db.models import Q
from django.utils import timezone
from psycopg import postgres
from psycopg.adapt import Dumper
from psycopg.pq import Format

from config.batching import chunks
from config.scope import database_scope
from inbox.actions import identity_kind_for_jid
from inbox.models import Contact, ContactIdentity, Conversation
from sync.models import JidMapping, RawEvent

LOCK_NAMESPACE = 0x5E1C  # first key of the two-key advisory lock: "sync journal"

# --- contacts, identities, JID mappings -----------------------------------------------------------


def pg_array(values) -> str:
    """``values`` (str, int, bool, aware datetime; None = NULL) as one PostgreSQL array literal, to
    pass as a single parameter cast in SQL (``%s::text[]``, ``%s::bigint[]``...). psycopg adapts a
    list element by element in Python (docs/measurements.md); one
    string goes through in C, and the planner still sees a constant array (hashed in filters)."""
    return "{" + ",".join([
        "NULL" if v is None else '"' + (v if isinstance(v, str) else str(v)).replace("\\", "\\\\").replace('"', '\\"') + '"'
        for v in values
    ]) + "}"


def stored_mappings(tenant_id: int, jids: list[str]) -> set[tuple[str, str]]:
    """(pn, lid) mappings of the tenant that name any of ``jids``."""
    if not jids:
        return set()
    if db.vendor != "postgresql":
        known: set[tuple[str, str]] = set()
        for chunk in chunks(jids, 1000):
            known.update(JidMapping.objects.for_tenant(tenant_id)
                         .filter(Q(lid_jid__in=chunk) | Q(pn_jid__in=chunk)).values_list("pn_jid", "lid_jid"))
        return known
    # Arrays are passed as plain parameters (constants the planner hashes or probes an index with),
    # never computed in SQL: the plans stay linear even before the tables have statistics.
    array = pg_array(jids)
    with db.cursor() as cursor:
        cursor.execute(f"SELECT pn_jid, lid_jid FROM {JidMapping._meta.db_table} "  # noqa: S608
                       "WHERE tenant_id = %s AND (lid_jid = ANY(%s::text[]) OR pn_jid = ANY(%s::text[]))",
                       [tenant_id, array, array])
        return set(cursor.fetchall())


def identities_of(tenant_id: int, jids: list[str]) -> dict[str, int]:
    """jid -> contact id of the identities among ``jids`` (a fresh read: sees other processes' commits)."""
    if db.vendor != "postgresql":
        out: dict[str, int] = {}
        for chunk in chunks(jids, 1000):
            out.update(ContactIdentity.objects.for_tenant(tenant_id).filter(jid__in=chunk).values_list("jid", "contact_id"))
        return out
    with db.cursor() as cursor:
        cursor.execute(f"SELECT jid, contact_id FROM {ContactIdentity._meta.db_table} "  # noqa: S608
                       "WHERE tenant_id = %s AND jid = ANY(%s::text[])", [tenant_id, pg_array(jids)])
        return dict(cursor.fetchall())


def identities_of_contacts_of(tenant_id: int, jids: set[str]) -> dict[str, int]:
    """jid -> contact id for every identity of the contacts that hold any of ``jids``."""
    if db.vendor != "postgresql":
        contact_of = identities_of(tenant_id, list(jids))
        for chunk in chunks(set(contact_of.values()), 1000):
            contact_of.update(ContactIdentity.objects.for_tenant(tenant_id).filter(contact_id__in=chunk)
                              .values_list("jid", "contact_id"))
        return contact_of
    identity = ContactIdentity._meta.db_table
    with db.cursor() as cursor:
        cursor.execute(f"""
            SELECT jid, contact_id FROM {identity} WHERE contact_id IN (
                SELECT contact_id FROM {identity} WHERE tenant_id = %s AND jid = ANY(%s::text[]))
        """, [tenant_id, pg_array(jids)])  # noqa: S608 - table name from model meta, values are parameters
        return dict(cursor.fetchall())


def insert_jid_mappings(tenant_id: int, mappings: set[tuple[str, str]], now: datetime) -> None:
    if db.vendor != "postgresql":
        JidMapping.objects.bulk_create(
            [JidMapping(tenant_id=tenant_id, pn_jid=pn, lid_jid=lid) for pn, lid in mappings],
            ignore_conflicts=True, batch_size=1000,
        )
        return
    pns, lids = zip(*mappings, strict=True)
    with db.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {JidMapping._meta.db_table} (tenant_id, pn_jid, lid_jid, created_at) "  # noqa: S608
            "SELECT %s, pn, lid, %s FROM unnest(%s::text[], %s::text[]) AS v(pn, lid) ON CONFLICT DO NOTHING",
            [tenant_id, now, pg_array(pns), pg_array(lids)],
        )


def insert_contacts(tenant_id: int, rows: list[tuple[str, str, str, str]], now: datetime) -> list[int]:
    """Insert contacts from (kind, display_name, push_name, phone_number) rows; their ids, in order."""
    if db.vendor != "postgresql":
        contacts = [Contact(tenant_id=tenant_id, kind=kind, display_name=display, push_name=push, phone_number=phone)
                    for kind, display, push, phone in rows]
        Contact.objects.bulk_create(contacts, batch_size=1000)
        return [c.pk for c in contacts]
    table = Contact._meta.db_table
    # Ids are drawn from the table's sequence first, so each row's id is known without relying on
    # the order of RETURNING. (The sequence is looked up once, not per row: docs/measurements.md.)
    sql = f"""
        WITH fresh AS MATERIALIZED (
            SELECT nextval((SELECT pg_get_serial_sequence(%s, 'id')::regclass)) AS id, v.*
            FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[])
                 WITH ORDINALITY AS v(kind, display_name, push_name, phone_number, ord)
        ), ins AS (
            INSERT INTO {table} (id, tenant_id, kind, display_name, push_name, phone_number, created_at, updated_at)
            SELECT id, %s, kind, display_name, push_name, phone_number, %s, %s FROM fresh
        )
        SELECT id FROM fresh ORDER BY ord
    """  # noqa: S608 - table name from model meta, values are parameters
    kinds, displays, pushes, phones = zip(*rows, strict=True)
    with db.cursor() as cursor:
        cursor.execute(sql, [table, *map(pg_array, (kinds, displays, pushes, phones)), tenant_id, now, now])
        return [r[0] for r in cursor.fetchall()]


def insert_identities(tenant_id: int, claims: list[tuple[str, int]], now: datetime) -> dict[str, int]:
    """Insert the (jid, contact id) identities that no contact holds yet; returns jid -> the contact
    that holds each JID now (ours, or another process's that got there first)."""
    if db.vendor != "postgresql":
        ContactIdentity.objects.bulk_create(
            [ContactIdentity(tenant_id=tenant_id, contact_id=cid, jid=j, kind=identity_kind_for_jid(j)) for j, cid in claims],
            ignore_conflicts=True, batch_size=1000,
        )
        return identities_of(tenant_id, [j for j, _ in claims])
    jids = [j for j, _ in claims]
    sql = f"""
        INSERT INTO {ContactIdentity._meta.db_table} (tenant_id, contact_id, jid, kind, created_at)
        SELECT %s, cid, jid, kind, %s FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS v(cid, jid, kind)
        ON CONFLICT DO NOTHING RETURNING jid, contact_id
    """  # noqa: S608 - table name from model meta, values are parameters
    with db.cursor() as cursor:
        cursor.execute(sql, [tenant_id, now, pg_array([cid for _, cid in claims]), pg_array(jids),
                             pg_array([identity_kind_for_jid(j) for j in jids])])
        holders = dict(cursor.fetchall())
    if len(holders) < len(claims):
        holders.update(identities_of(tenant_id, [j for j in jids if j not in holders]))
    return holders


# --- conversations and messages -------------------------------------------------------------------


def conversation_ids(keys: list[tuple[int, str]]) -> dict[tuple[int, str], int]:
    """(connection id, chat jid) -> conversation id of the ones that exist: on PostgreSQL one statement
    joined to the keys as arrays, elsewhere per connection and chunk."""
    out: dict[tuple[int, str], int] = {}
    if db.vendor != "postgresql":
        by_conn: dict[int, list[str]] = defaultdict(list)
        for cid, jid in keys:
            by_conn[cid].append(jid)
        for cid, jids in by_conn.items():
            for chunk in chunks(jids, 1000):
                for jid, pk in (Conversation.objects.unscoped().filter(connection_id=cid, chat_jid__in=chunk)
                                .values_list("chat_jid", "id")):
                    out[(cid, jid)] = pk
        return out
    # A join the planner chooses: for a batch's conversations hashing the small table beats a probe per key
    # (docs/measurements.md).
    with db.cursor() as cursor:
        cursor.execute(f"SELECT t.connection_id, t.chat_jid, t.id FROM {Conversation._meta.db_table} t "  # noqa: S608
                       "JOIN unnest(%s::bigint[], %s::text[]) AS k(c, v) ON t.connection_id = k.c AND t.chat_jid = k.v",
                       [pg_array(c for c, _ in keys), pg_array(v for _, v in keys)])
        for cid, jid, pk in cursor.fetchall():
            out[(cid, jid)] = pk
    return out


def insert_conversations(rows: list[tuple], now: datetime) -> dict[tuple[int, str], int]:
    """Insert conversations from (tenant id, connection id, chat_jid, is_group, contact id, last_message_at,
    preview, oldest synced, newest synced, unread count) rows, skipping chats that exist; (connection id,
    chat_jid) -> id of the ones inserted (on SQLite: of all of them, read back)."""
    if db.vendor != "postgresql":
        Conversation.objects.bulk_create(
            [Conversation(tenant_id=tenant_id, connection_id=conn_id, chat_jid=key, is_group=group,
                          contact_id=contact_id, last_message_at=at, last_message_preview=preview,
                          oldest_synced_at=oldest, newest_synced_at=newest, unread_count=unread)
             for tenant_id, conn_id, key, group, contact_id, at, preview, oldest, newest, unread in rows],
            ignore_conflicts=True, batch_size=1000,
        )
        return conversation_ids([(r[1], r[2]) for r in rows])
    # The model's default for the status; everything else from the rows.
    sql = f"""
        INSERT INTO {Conversation._meta.db_table} (
            tenant_id, connection_id, chat_jid, is_group, contact_id, last_message_at, last_message_preview,
            oldest_synced_at, newest_synced_at, unread_count, status, created_at, updated_at)
        SELECT tenant_id, connection_id, chat_jid, is_group, contact_id, last_at, preview, oldest, newest, unread,
               %s, %s, %s
        FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::boolean[], %s::bigint[], %s::timestamptz[],
                    %s::text[], %s::timestamptz[], %s::timestamptz[], %s::int[])
             AS v(tenant_id, connection_id, chat_jid, is_group, contact_id, last_at, preview, oldest, newest, unread)
        ON CONFLICT DO NOTHING RETURNING connection_id, chat_jid, id
    """  # noqa: S608 - table name from model meta, values are parameters
    columns = list(zip(*rows, strict=True))
    with db.cursor() as cursor:
        cursor.execute(sql, [Conversation.Status.OPEN, now, now, *map(pg_array, columns)])
        return {(cid, jid): conv_id for cid, jid, conv_id in cursor.fetchall()}


def update_conversation_aggregates(aggs: dict) -> None:
    """One UPDATE per 5,000 conversations (PostgreSQL: every column one array parameter, ``pg_array``; elsewhere
    UPDATE ... FROM (VALUES ...) per 400): last message, preview, unread, window (``aggs``: conversation id ->
    ``sync.ingest``'s aggregate: last_at, preview, oldest, newest, unread_add, unread_set).

    Values only ever move forward (GREATEST/LEAST), so replays and out-of-order batches are safe, and
    concurrent changes by agents (marking read) are not overwritten except by an explicit history
    unread count."""
    if not aggs:
        return
    table = Conversation._meta.db_table
    pg = db.vendor == "postgresql"
    greatest, least = ("GREATEST", "LEAST") if pg else ("MAX", "MIN")
    items = list(aggs.items())
    for chunk in chunks(items, 5000 if pg else 400):
        rows = [(cid, a.last_at, a.preview, a.oldest, a.newest, a.unread_add, a.unread_set) for cid, a in chunk]
        if pg:
            # Seven parameters, not seven per conversation: psycopg adapted a VALUES list's ~700 parameters
            # one by one in Python (the largest share of a live sweep's client-side query conversion).
            from_sql = ("(SELECT unnest(%s::bigint[]) AS id, unnest(%s::timestamptz[]) AS last_at, "
                        "unnest(%s::text[]) AS preview, unnest(%s::timestamptz[]) AS oldest, "
                        "unnest(%s::timestamptz[]) AS newest, unnest(%s::int[]) AS unread_add, "
                        "unnest(%s::int[]) AS unread_set) AS v")
            params = [pg_array(column) for column in zip(*rows, strict=True)]
        else:
            # SQLite names VALUES columns column1..N; alias them through a CTE.
            values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(chunk))
            from_sql = ("(WITH v(id, last_at, preview, oldest, newest, unread_add, unread_set) AS (VALUES "  # noqa: S608
                        + values + ") SELECT * FROM v) AS v")
            params = [value for row in rows for value in row]
        sql = f"""
            UPDATE {table} SET
              last_message_preview = CASE WHEN v.last_at IS NOT NULL AND v.last_at >= {table}.last_message_at
                                          THEN v.preview ELSE {table}.last_message_preview END,
              last_message_at = CASE WHEN v.last_at IS NULL THEN {table}.last_message_at
                                     ELSE {greatest}({table}.last_message_at, v.last_at) END,
              oldest_synced_at = CASE WHEN v.oldest IS NULL THEN {table}.oldest_synced_at
                                      WHEN {table}.oldest_synced_at IS NULL THEN v.oldest
                                      ELSE {least}({table}.oldest_synced_at, v.oldest) END,
              newest_synced_at = CASE WHEN v.newest IS NULL THEN {table}.newest_synced_at
                                      WHEN {table}.newest_synced_at IS NULL THEN v.newest
                                      ELSE {greatest}({table}.newest_synced_at, v.newest) END,
              unread_count = COALESCE(v.unread_set, {table}.unread_count) + v.unread_add,
              updated_at = %s
            FROM {from_sql}
            WHERE {table}.id = v.id
        """  # noqa: S608 - table name from model meta, values are parameters
        with db.cursor() as cursor:
            cursor.execute(sql, [timezone.now(), *params])


def insert_media_of_messages(tenant_id: int, rows: list[tuple]) -> None:
    """Pending media rows for messages just stored, from (message id, connection id, kind, ref, declared
    mimetype, declared size, filename, history) tuples; a message already registered is left.

    On PostgreSQL one INSERT ... SELECT FROM unnest(...) per 5,000 rows, every column one array
    parameter (``pg_array``; the refs as hex, docs/measurements.md), no ORM objects; the message ids
    come from the COPY (``insert_rows`` draws them first), so nothing is looked up. SQLite: ``bulk_create``."""
    from inbox.models import MediaFile

    if db.vendor != "postgresql":
        MediaFile.objects.bulk_create(
            [MediaFile(tenant_id=tenant_id, message_id=mid, connection_id=c, kind=kind, ref=ref,
                       declared_mimetype=mime, declared_size=size, filename=name, history=history)
             for mid, c, kind, ref, mime, size, name, history in rows],
            ignore_conflicts=True, batch_size=1000)
        return
    now = timezone.now()
    sql = f"""
        INSERT INTO {MediaFile._meta.db_table} (
            tenant_id, message_id, connection_id, kind, history, ref, declared_mimetype, declared_size, filename,
            state, attempts, error, sha256, mimetype, storage_name, thumbnail_name, created_at, updated_at)
        SELECT %s, k.m, k.c, k.kind, k.hist, k.ref, k.mime, k.size, k.fname, %s, 0, '', '', '', '', '', %s, %s
        FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::boolean[], %s::bytea[], %s::text[], %s::bigint[],
                    %s::text[]) AS k(m, c, kind, hist, ref, mime, size, fname)
        ON CONFLICT DO NOTHING
    """  # noqa: S608 - table names from model meta, values are parameters
    with db.cursor() as cursor:
        for chunk in chunks(rows, 5000):
            mids, conn_ids, kinds, refs, mimes, sizes, names, history = zip(*chunk, strict=True)
            cursor.execute(sql, [tenant_id, MediaFile.State.PENDING, now, now, pg_array(mids), pg_array(conn_ids),
                                 pg_array(kinds), pg_array(history), pg_array("\\x" + ref.hex() for ref in refs),
                                 pg_array(mimes), pg_array(sizes), pg_array(names)])


def conversations_of_chats(tenant_id: int, jids: list[str]) -> list[Conversation]:
    """The tenant's conversations whose chat_jid is one of ``jids`` (any connection)."""
    if db.vendor == "postgresql":
        # Probe with one array parameter; rows are loaded only when there is something to re-key.
        with db.cursor() as cursor:
            cursor.execute(f"SELECT id FROM {Conversation._meta.db_table} "  # noqa: S608
                           "WHERE tenant_id = %s AND chat_jid = ANY(%s::text[])", [tenant_id, pg_array(jids)])
            ids = [r[0] for r in cursor.fetchall()]
        return list(Conversation.objects.for_tenant(tenant_id).filter(pk__in=ids)) if ids else []
    return list(Conversation.objects.for_tenant(tenant_id).filter(chat_jid__in=jids))


# --- the journal processor's lock and commit mode ------------------------------------------------


@contextmanager
def journal_lock(connection_id: int, wait: bool):
    """Only one processor per connection at a time. Yields True when held, False when busy."""
    if db.vendor == "postgresql":
        fn = "pg_advisory_lock" if wait else "pg_try_advisory_lock"
        with db.cursor() as cursor:
            cursor.execute(f"SELECT {fn}(%s, %s)", [LOCK_NAMESPACE, connection_id])
            got = True if wait else cursor.fetchone()[0]
        try:
            yield got
        finally:
            if got:
                with db.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_NAMESPACE, connection_id])
        return
    # SQLite lives on one machine: an exclusive lock on a file named after the database and connection.
    path = os.path.join(tempfile.gettempdir(), f"inbox-journal-{database_scope()}-{connection_id}.lock")
    fh = open(path, "a+")  # noqa: SIM115 - closed below
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            got = True
        except BlockingIOError:
            got = False
        try:
            yield got
        finally:
            if got:
                fcntl.flock(fh, fcntl.LOCK_UN)
    finally:
        fh.close()


BATCH_SETTINGS = "SET LOCAL synchronous_commit TO off; SET LOCAL work_mem TO '32MB'"  # batch_settings(), as SQL


def batch_settings() -> None:
    """Settings of a journal batch's transaction (PostgreSQL; ``SET LOCAL``: this transaction only).

    ``synchronous_commit`` off: the COMMIT returns before its WAL is flushed to disk. Safe because of the
    journal: the rows were committed durably when they were journaled, and a batch commits its messages
    and the rows' ``processed`` mark together, so a crash can only lose both (the last ~0.6 s of batches
    at most, never half of one): the rows are still pending and are processed again. Saves the WAL
    flush of every batch (docs/measurements.md).

    ``work_mem`` 32 MB: the message table's integrity trigger (ADR-11) keeps the rows of the batch's COPY
    in a transition table, which spills to a temporary file beyond ``work_mem`` (4 MB by default: a
    history batch's ~28,000 rows took ~5 MB of temporary file each). A bigger batch still works, spilling."""
    if db.vendor == "postgresql":
        with db.cursor() as cursor:
            cursor.execute(BATCH_SETTINGS)


# --- new rows: the probe of existing keys and the insert behind ``sync.upsert.insert_new`` -------------


def _fields(model) -> dict:
    return {f.attname: f for f in model._meta.concrete_fields}


def existing_keys(model, scope: dict, key: str, values: list) -> set:
    """The values of column ``key`` among ``values`` that exist within ``scope`` (column -> value
    equalities): on PostgreSQL one ``= ANY(array)`` probe of the unique index per 50,000 values."""
    out = set()
    if db.vendor != "postgresql":
        for chunk in chunks(values, 500):
            out.update(model._base_manager.filter(**scope, **{f"{key}__in": chunk}).values_list(key, flat=True))
        return out
    fields, quote = _fields(model), db.ops.quote_name
    where = " AND ".join(f"{quote(fields[c].column)} = %s" for c in scope) or "TRUE"
    kcol = quote(fields[key].column)
    with db.cursor() as cursor:
        for chunk in chunks(values, 50_000):
            cursor.execute(f"SELECT {kcol} FROM {model._meta.db_table} WHERE {where} AND {kcol} = ANY(%s)",  # noqa: S608
                           [*scope.values(), chunk])
            out.update(r[0] for r in cursor.fetchall())
    return out


PROBE_KEYS = 2000  # existing_key_tuples: index probes up to this many keys (a live sweep's batch), a join above


def existing_key_tuples(model, scope: dict, key: tuple[str, ...], values: list[tuple]) -> set[tuple]:
    """``existing_keys`` for a composite key (values are tuples): on PostgreSQL one join with an array
    per column; elsewhere per prefix of the key and chunk."""
    out: set[tuple] = set()
    if db.vendor != "postgresql":
        by_prefix: dict[tuple, list] = defaultdict(list)
        for v in values:
            by_prefix[v[:-1]].append(v[-1])
        for prefix, lasts in by_prefix.items():
            fixed = dict(zip(key[:-1], prefix, strict=True))
            for chunk in chunks(lasts, 500):
                out.update((*prefix, last) for last in model._base_manager.filter(
                    **scope, **fixed, **{f"{key[-1]}__in": chunk}).values_list(key[-1], flat=True))
        return out
    # Up to PROBE_KEYS keys (any live sweep batch), one index probe per key (LATERAL ... LIMIT 1), never a join
    # the planner may turn into a hash of the whole table: it did for the live sweep's ~500 keys against a
    # 60,000-message table (a sequential scan per batch, 26-39 ms and growing with the table; bench/flood.py,
    # docs/measurements.md), as it had for media rows. A history chunk's thousands of keys keep the join: probes
    # made bench/ingest's ingest/COPY ratio 0.28-0.29 -> 0.24-0.25.
    fields, quote = _fields(model), db.ops.quote_name
    cols = [quote(fields[c].column) for c in key]
    unnest = ", ".join(f"%s::{t}[]" for t in _column_types(model, key))
    on = " AND ".join(f"t.{c} = k.c{i}" for i, c in enumerate(cols))
    names = ", ".join(f"c{i}" for i in range(len(cols)))
    where = "".join(f" AND t.{quote(fields[c].column)} = %s" for c in scope)
    if len(values) <= PROBE_KEYS:
        sql = (f"SELECT {', '.join(f'k.c{i}' for i in range(len(cols)))} FROM unnest({unnest}) AS k({names}) "  # noqa: S608
               f"CROSS JOIN LATERAL (SELECT 1 FROM {model._meta.db_table} t WHERE {on}{where} LIMIT 1) AS hit")
    else:
        sql = (f"SELECT {', '.join(f't.{c}' for c in cols)} FROM {model._meta.db_table} t "  # noqa: S608
               f"JOIN unnest({unnest}) AS k({names}) ON {on}{where}")
    with db.cursor() as cursor:
        for chunk in chunks(values, 50_000):
            cursor.execute(sql, [*map(list, zip(*chunk, strict=True)), *scope.values()])
            out.update(tuple(r) for r in cursor.fetchall())
    return out


def insert_rows(model, columns: Sequence[str], rows: list[tuple], beside_copy: Callable[[], None] | None = None) \
        -> list[int]:
    """Insert ``rows`` (tuples in ``columns`` order; JSON columns as encoded text or Python objects) and
    return their primary keys, in order. A key that exists already raises ``IntegrityError`` (nothing is
    skipped silently: ``sync.upsert`` probes first).

    PostgreSQL: the keys are drawn from the table's sequence first (one statement), then the rows go in
    with a binary COPY (docs/measurements.md), the keys included, so nothing is read back afterwards.
    ``beside_copy``: work without database access that this thread runs while a helper thread feeds the
    COPY (the server does the work, so both cores are used; ADR-9). SQLite: ``bulk_create``, whose
    RETURNING gives the keys; ``beside_copy`` is not run there."""
    json_cols = [i for i, c in enumerate(columns) if isinstance(_fields(model)[c], models.JSONField)]
    if db.vendor != "postgresql":
        objs = []
        for row in rows:
            values = dict(zip(columns, row, strict=True))
            for i in json_cols:
                if isinstance(row[i], str):
                    values[columns[i]] = json.loads(row[i])
            objs.append(model(**values))
        model._base_manager.bulk_create(objs, batch_size=200)
        return [o.pk for o in objs]
    pk = model._meta.pk
    ids = next_ids(model, len(rows))
    fields = _fields(model)
    sql = (f"COPY {model._meta.db_table} ({db.ops.quote_name(pk.column)}, "  # noqa: S608
           f"{', '.join(db.ops.quote_name(fields[c].column) for c in columns)}) FROM STDIN")
    types = _column_types(model, [pk.attname, *columns])
    copied = _copy_rows(ids, rows, json_cols)
    with db.wrap_database_errors:  # psycopg's errors as Django's (IntegrityError), as a Django cursor raises them
        if beside_copy is None:
            with db.cursor() as cursor, _binary_copy(cursor.cursor, sql, types) as copy:
                write = copy.write_row
                for row in copied:
                    write(row)
        else:
            _copy_beside(sql, types, copied, beside_copy)
    return ids


def next_ids(model, n: int) -> list[int]:
    """``n`` primary keys drawn from ``model``'s id sequence (PostgreSQL), in increasing order. One
    statement; when nobody else drew from the sequence meanwhile (the usual case) the keys are one
    range and only its ends travel, else the keys themselves (docs/measurements.md)."""
    with db.cursor() as cursor:
        cursor.execute("""
            WITH drawn AS MATERIALIZED (SELECT nextval(%s) AS id FROM generate_series(1, %s))
            SELECT min(id), max(id),
                   CASE WHEN max(id) - min(id) + 1 = count(*) THEN NULL ELSE array_agg(id) END
            FROM drawn
        """, [_id_sequence(model._meta.db_table), n])
        first, last, scattered = cursor.fetchone()
    return list(range(first, last + 1)) if scattered is None else sorted(scattered)


_SEQUENCES: dict[str, str] = {}


def _id_sequence(table: str) -> str:
    if table not in _SEQUENCES:
        with db.cursor() as cursor:
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
            _SEQUENCES[table] = cursor.fetchone()[0]
    return _SEQUENCES[table]


def _copy_rows(ids: list[int], rows: list[tuple], json_cols: list[int]):
    """``(id, *row)`` for each row, for the COPY. When the JSON columns hold encoded text already (the
    sync's own rows) the tuples are built in C (``zip``, ``operator.add``): the feeding thread shares the
    GIL with the decoding beside it. Otherwise each row's Python objects are encoded first."""
    if json_cols:
        values = (map(itemgetter(json_cols[0]), rows) if len(json_cols) == 1
                  else chain.from_iterable(map(itemgetter(*json_cols), rows)))
        if not all(v.__class__ is str for v in values):
            rows = [_json_encoded(row, json_cols) for row in rows]
    return map(add, zip(ids), rows)


def _json_encoded(row: tuple, json_cols: list[int]) -> tuple:
    row = list(row)
    for i in json_cols:
        if not isinstance(row[i], str):
            row[i] = json.dumps(row[i])
    return tuple(row)


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
    fields = _fields(model)
    return [fields[c].db_type(db).split("(")[0] for c in columns]


@contextmanager
def _binary_copy(cursor, sql: str, types: list[str]):
    """A binary COPY on a psycopg cursor: less Python per row than text (docs/measurements.md)
    (the formatting runs under the GIL, beside the decoding of the next batch). JSON columns take the
    already-encoded text the row builders make."""
    cursor.adapters.register_dumper(_JsonText, _JsonbTextBinaryDumper)
    with cursor.copy(f"{sql} (FORMAT BINARY)") as copy:
        copy.set_types(types)
        yield copy


def _copy_beside(sql: str, types: list[str], rows, beside_copy: Callable[[], None]) -> None:
    """COPY ``rows`` from a helper thread on this thread's database connection (same transaction)
    while ``beside_copy()`` runs here; this thread does not touch the connection until the COPY is done.
    An error of the COPY is raised here, after ``beside_copy`` returned."""
    db.ensure_connection()
    raw = db.connection
    errors: list[BaseException] = []

    def feed():
        try:
            with raw.cursor() as cursor, _binary_copy(cursor, sql, types) as copy:
                write = copy.write_row
                for row in rows:
                    write(row)
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            errors.append(exc)

    feeder = threading.Thread(target=feed, name="copy-feed")
    feeder.start()
    try:
        beside_copy()
    finally:
        feeder.join()
    if errors:
        raise errors[0]


# --- the journal ----------------------------------------------------------------------------------


@contextmanager
def binding_cursor():
    """A cursor that sends parameters apart from the SQL text. On PostgreSQL a server-side-binding
    cursor on Django's own connection (same transaction): the journal's payloads travel as binary
    parameters instead of hex literals spliced into the SQL by Django's client-side binding
    (docs/measurements.md); never a named prepared statement (the SQL varies with the row count;
    poolers in transaction mode do not keep them). SQLite's own cursor binds its parameters already."""
    if db.vendor != "postgresql":
        with db.cursor() as cursor:
            yield cursor
        return
    import psycopg

    db.ensure_connection()
    with psycopg.Cursor(db.connection) as cursor:
        yield _Unprepared(cursor)


class _Unprepared:
    def __init__(self, cursor):
        self._cursor = cursor

    def execute(self, sql, params):
        return self._cursor.execute(sql, params, prepare=False)

    def fetchall(self):
        return self._cursor.fetchall()


_ARRAY_PAYLOAD_MAX = 64 * 1024  # bytes: live events are a few hundred


def insert_journal_rows(model, columns: tuple[str, ...], rows: list[tuple], chunk: int) -> int:
    """The journal's INSERT ... ON CONFLICT (connection_id, digest) DO NOTHING RETURNING id, by chunks;
    the number of rows really new. PostgreSQL: one array per column, so the statement's text is the same
    whatever the row count and psycopg parses it once per process (a VALUES list of 200 x 10 placeholders
    was parsed again for every batch: ~15 % of a runner child's CPU in a flood, docs/measurements.md); rows
    keep their order (ORDER BY the array position), so journal ids follow the order events were handed
    over. A batch holding a payload over ``_ARRAY_PAYLOAD_MAX`` (history chunks, ~0.5 MB each) and SQLite
    (>= 3.35) take a VALUES list: journal rows of history chunks inserted through the arrays made
    bench/ingest's processing of them ~15 % slower (1.34 vs 1.14 s, A/B in one quiet window, cause not found;
    docs/measurements.md), and the parse cost the arrays save is nothing beside such payloads."""
    table, names = model._meta.db_table, ", ".join(columns)
    payload = columns.index("payload")
    kinds = _element_types(model, columns)
    new = 0
    with binding_cursor() as cursor:
        for start in range(0, len(rows), chunk):
            part = rows[start:start + chunk]
            if db.vendor == "postgresql" and all(len(row[payload]) <= _ARRAY_PAYLOAD_MAX for row in part):
                arrays = ", ".join(f"%s::{kind}[]" for kind in kinds)
                sql = (f"INSERT INTO {table} ({names}) SELECT {names} "  # noqa: S608 - placeholders only
                       f"FROM unnest({arrays}) WITH ORDINALITY AS v({names}, n) ORDER BY n "
                       "ON CONFLICT (connection_id, digest) DO NOTHING RETURNING id")
                # The payloads as a list (binary bytea[]); the other columns as literals (``pg_array``):
                # psycopg dumps a list element by element in Python.
                params = [list(column) if i == payload else pg_array(column)
                          for i, column in enumerate(zip(*part, strict=True))]
            else:
                placeholders = ", ".join(["(" + ", ".join(["%s"] * len(columns)) + ")"] * len(part))
                sql = (f"INSERT INTO {table} ({names}) VALUES {placeholders} "  # noqa: S608 - placeholders only
                       "ON CONFLICT (connection_id, digest) DO NOTHING RETURNING id")
                params = [value for row in part for value in row]
            cursor.execute(sql, params)
            new += len(cursor.fetchall())
    return new


@functools.cache
def _element_types(model, columns: tuple[str, ...]) -> list[str]:
    """The columns' SQL types, for their arrays (Django works a field's type out anew at each call)."""
    return [model._meta.get_field(column).db_type(db) for column in columns]


def has_live_sweep() -> bool:
    """Whether the live sweep (``sync.sweep``) can run: its statements (advisory locks of many
    connections in one statement, ``SKIP LOCKED``) are PostgreSQL's. Elsewhere a task per connection."""
    return db.vendor == "postgresql"


def locked_journal_rows(ids: list[int], *, without_payload: bool = False) -> list[RawEvent]:
    """The journal rows ``ids``, locked for this transaction, in journal order. On PostgreSQL rows that
    another processor holds are skipped (``SKIP LOCKED``; it processes them); SQLite has one writer.
    ``without_payload``: the bytes stay in the database (the rows were decoded ahead)."""
    qs = (RawEvent.objects.unscoped().select_for_update(skip_locked=db.vendor == "postgresql")
          .filter(pk__in=ids).order_by("id"))
    return list(qs.defer("payload") if without_payload else qs)
