"""Journal first: every raw WhatsApp event becomes a committed RawEvent row before any processing.

``journal_event`` / ``journal_events`` are what the runner (and ``import_events``) call with the
(event name, serialized protobuf) pairs a transport hands over. Journaling the same bytes twice is a
no-op (unique (connection, digest)). Processing is scheduled on commit.
"""

import hashlib
from collections.abc import Iterable
from contextlib import contextmanager
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from connections.models import Connection
from sync.models import RawEvent


def event_digest(event_name: str, payload: bytes) -> str:
    h = hashlib.sha256(event_name.encode("utf-8"))
    h.update(b"\0")
    h.update(payload)
    return h.hexdigest()


def journal_events(
    connection_id: int,
    events: Iterable[tuple[str, bytes, datetime | None]],
    *,
    schedule: bool = True,
) -> int:
    """Commit (event_name, payload, received_at) rows for a connection; returns how many were new.

    ``schedule`` enqueues ``process_journal_task`` for the connection after commit.
    """
    tenant_id = Connection.objects.values_list("tenant_id", flat=True).get(pk=connection_id)
    now = timezone.now()
    rows = [
        RawEvent(
            tenant_id=tenant_id,
            connection_id=connection_id,
            event_name=name,
            payload=payload,
            digest=event_digest(name, payload),
            received_at=received_at or now,
        )
        for name, payload, received_at in events
    ]
    if not rows:
        return 0
    with transaction.atomic():
        new = _insert_ignoring_duplicates(rows)
        if schedule:
            transaction.on_commit(lambda: schedule_processing(connection_id))
    return new


_COLUMNS = ("tenant_id", "connection_id", "event_name", "payload", "digest", "state", "received_at", "attempts",
            "error", "created_at")


def _insert_ignoring_duplicates(rows: list[RawEvent], chunk: int = 200) -> int:
    """INSERT ... ON CONFLICT (connection, digest) DO NOTHING RETURNING id: the count of rows that
    were really new, exact even when several processes journal the same events at once
    (PostgreSQL and SQLite >= 3.35 both speak this)."""
    table = RawEvent._meta.db_table
    now = timezone.now()
    new = 0
    with _binding_cursor() as cursor:
        for start in range(0, len(rows), chunk):
            part = rows[start:start + chunk]
            placeholders = ", ".join(["(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"] * len(part))
            params = []
            for r in part:
                params += [r.tenant_id, r.connection_id, r.event_name, r.payload, r.digest, RawEvent.State.PENDING,
                           r.received_at, 0, "", now]
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(_COLUMNS)}) VALUES {placeholders} "  # noqa: S608 - placeholders only
                "ON CONFLICT (connection_id, digest) DO NOTHING RETURNING id",
                params,
            )
            new += len(cursor.fetchall())
    return new


@contextmanager
def _binding_cursor():
    """On PostgreSQL a server-side-binding cursor on Django's own connection (same transaction): the
    payloads travel as binary parameters instead of hex literals spliced into the SQL text by Django's
    client-side binding (13.5 MB of history chunks: ~0.18 s -> ~0.04 s)."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            yield cursor
        return
    import psycopg

    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        yield _Unprepared(cursor)


class _Unprepared:
    """Never a named prepared statement (the SQL varies with the row count; poolers in transaction
    mode do not keep them)."""

    def __init__(self, cursor):
        self._cursor = cursor

    def execute(self, sql, params):
        return self._cursor.execute(sql, params, prepare=False)

    def fetchall(self):
        return self._cursor.fetchall()


def journal_event(connection_id: int, event_name: str, payload: bytes, received_at: datetime | None = None) -> int:
    return journal_events(connection_id, [(event_name, payload, received_at)])


def schedule_processing(connection_id: int) -> None:
    from sync.tasks import process_journal_task

    process_journal_task.delay(connection_id)
