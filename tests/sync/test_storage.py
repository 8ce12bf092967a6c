"""Storage choices made for ingestion speed keep their guarantees (docs/decisions.md ADR-6, docs/sync.md)."""

import gc
from datetime import UTC, datetime

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from connections.models import Connection
from inbox.models import Conversation, Message
from sync import events_builder as b
from sync.models import RawEvent
from sync.selectors import sync_report
from tests.sync.helpers import PN_ANA, PN_BRUNO, T0, feed, incoming

pytestmark = pytest.mark.django_db


@pytest.mark.smoke
def test_message_relations_are_kept_by_the_database_or_orphans_are_reported(acme_connection):
    """ADR-6/ADR-11: a message's foreign keys are ORM relations; Django's cascades remove a deleted
    connection's or conversation's messages. On PostgreSQL the database refuses a message whose
    conversation does not exist (migration inbox/0001); on SQLite sync_report counts any orphan a raw write left."""
    feed(acme_connection, incoming("FK1"), incoming("FK2"), incoming("FK3", chat=PN_BRUNO))
    assert sync_report(acme_connection)["orphaned_messages"] == 0
    msg = Message.objects.unscoped().get(external_id="FK1")
    orphan = {"tenant_id": msg.tenant_id, "connection_id": msg.connection_id, "conversation_id": 10**9,
              "external_id": "FK-orphan", "direction": "in", "sent_at": timezone.now()}
    if connection.vendor == "postgresql":
        with pytest.raises(IntegrityError, match="no such conversation"), transaction.atomic():
            Message.objects.create(**orphan)
        assert sync_report(acme_connection)["orphaned_messages"] == 0
    else:
        Message.objects.create(**orphan)
        assert sync_report(acme_connection)["orphaned_messages"] == 1
        Message.objects.unscoped().filter(external_id="FK-orphan").delete()
    Conversation.objects.unscoped().filter(pk=msg.conversation_id).delete()
    assert list(Message.objects.unscoped().filter(connection=acme_connection)
                .values_list("external_id", flat=True)) == ["FK3"]
    Connection.objects.unscoped().filter(pk=acme_connection.pk).delete()
    assert not Message.objects.unscoped().filter(external_id__startswith="FK").exists()


def test_journal_payloads_are_lz4_compressed_on_postgresql(acme_connection):
    if connection.vendor != "postgresql":
        pytest.fail("PostgreSQL-only test run on another database (not part of the smoke set)")
    convs = [b.history_conversation(PN_ANA, [b.web_message(PN_ANA, f"LZ{i:04d}", "texto repetido " * 20, T0 + i)
                                             for i in range(40)])]
    summary = feed(acme_connection, b.history_sync_ev(convs, "INITIAL_BOOTSTRAP", chunk_order=1, progress=100))
    assert summary.saved == 40
    row = RawEvent.objects.unscoped().get(connection=acme_connection)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_column_compression(payload), length(payload) FROM sync_rawevent WHERE id = %s",
                       [row.pk])
        method, size = cursor.fetchone()
    assert size > 4000 and method == "lz4"


@pytest.mark.smoke
def test_garbage_collection_is_back_on_after_a_batch_even_when_it_fails(acme_connection):
    assert gc.isenabled()
    summary = feed(acme_connection, ("MessageEv", b"\xff\x00not a protobuf"), incoming("GC1"))
    assert summary.failed == 1 and summary.saved == 1
    assert gc.isenabled()


@pytest.mark.smoke
def test_journal_keeps_payload_bytes_exactly_and_stays_idempotent(acme_connection):
    import os

    from sync.journal import journal_events

    payload = b"\x00\xff\x80" + os.urandom(200_000) + b"\\x00'\""  # NULs, invalid UTF-8, quote/escape lookalikes
    assert journal_events(acme_connection.pk, [("MessageEv", payload, None)], schedule=False) == 1
    assert journal_events(acme_connection.pk, [("MessageEv", payload, None)], schedule=False) == 0
    row = RawEvent.objects.unscoped().get(connection=acme_connection)
    assert bytes(row.payload) == payload


def test_a_batch_of_small_events_keeps_every_column_exactly_and_its_order(acme_connection):
    """Live-sized payloads go in as one array per column: bytes, names, times and the rest come back as given."""
    from datetime import timedelta
    from datetime import timezone as tz

    from sync.journal import journal_events

    sao_paulo = tz(timedelta(hours=-3))
    events = [("MessageEv", bytes([i]) + b'\x00"{},\\' + bytes(range(256)) * (i + 1),
               datetime(2026, 12, 7, 20, 0, i, 123_456 + i, tzinfo=sao_paulo)) for i in range(5)]
    events.append(("ReceiptEv", b"\\N", None))  # no time given: stamped now
    before = timezone.now()
    assert journal_events(acme_connection.pk, events, schedule=False) == 6
    rows = list(RawEvent.objects.unscoped().filter(connection=acme_connection).order_by("id"))
    assert [(r.event_name, bytes(r.payload)) for r in rows] == [(name, payload) for name, payload, _ in events]
    assert [r.received_at for r in rows[:5]] == [received for _, _, received in events[:5]]
    assert rows[5].received_at >= before and rows[5].received_at == rows[5].created_at
    assert {(r.tenant_id, r.state, r.attempts, r.error) for r in rows} == {
        (acme_connection.tenant_id, RawEvent.State.PENDING, 0, "")}


def test_an_id_already_stored_elsewhere_in_a_new_conversation_is_a_duplicate_not_an_error(acme_connection):
    """Messages of a conversation the batch creates are not probed (sync.upsert ``fresh``): an id that
    exists anyway aborts the COPY, and the row-by-row retry counts it as a duplicate."""
    feed(acme_connection, incoming("SAME1", "primeira", chat=PN_ANA))
    history = b.history_sync_ev([b.history_conversation(PN_BRUNO, [
        b.web_message(PN_BRUNO, "SAME1", "colide", T0 + 1), b.web_message(PN_BRUNO, "NEW1", "nova", T0 + 2)])],
        "RECENT", chunk_order=1)
    summary = feed(acme_connection, history)
    assert summary.failed == 0 and summary.saved == 1 and summary.duplicates == 1
    assert Message.objects.unscoped().get(external_id="SAME1").body == "primeira"
    bruno = Message.objects.unscoped().get(external_id="NEW1").conversation
    assert bruno.chat_jid == PN_BRUNO
    # The new conversation was created counting both messages; it is recomputed from the one stored.
    at = datetime.fromtimestamp(T0 + 2, UTC)
    assert (bruno.oldest_synced_at, bruno.newest_synced_at, bruno.last_message_at) == (at, at, at)
    assert bruno.last_message_preview == "nova" and bruno.messages.count() == 1
    assert not RawEvent.objects.unscoped().exclude(state="processed").exists()
