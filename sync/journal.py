"""Journal first: every raw WhatsApp event becomes a committed RawEvent row before any processing.

``journal_event`` / ``journal_events`` are what the runner (and ``import_events``) call with the
(event name, serialized protobuf) pairs a transport hands over. Journaling the same bytes twice is a
no-op (unique (connection, digest)). Processing is scheduled on commit.
"""

import hashlib
from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
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
        digests = [r.digest for r in rows]
        before = RawEvent.objects.filter(connection_id=connection_id, digest__in=digests).count()
        RawEvent.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
        after = RawEvent.objects.filter(connection_id=connection_id, digest__in=digests).count()
        if schedule:
            transaction.on_commit(lambda: schedule_processing(connection_id))
    return after - before


def journal_event(connection_id: int, event_name: str, payload: bytes, received_at: datetime | None = None) -> int:
    return journal_events(connection_id, [(event_name, payload, received_at)])


def schedule_processing(connection_id: int) -> None:
    from sync.tasks import process_journal_task

    process_journal_task.delay(connection_id)
