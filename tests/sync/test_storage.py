"""Storage choices made for ingestion speed keep their guarantees (docs/decisions.md ADR-6, docs/sync.md)."""

import gc

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from connections.models import Connection
from inbox.models import Message
from sync import events_builder as b
from sync.models import RawEvent
from tests.sync.helpers import PN_ANA, T0, feed, incoming

pytestmark = pytest.mark.django_db


@pytest.mark.smoke
def test_message_conversation_fk_is_enforced_and_connection_delete_still_cascades(acme_connection):
    feed(acme_connection, incoming("FK1"), incoming("FK2"))
    msg = Message.objects.get(external_id="FK1")
    # The conversation FK is the database's guarantee: a message pointing nowhere never commits.
    with pytest.raises(IntegrityError), transaction.atomic():
        Message.objects.create(tenant_id=msg.tenant_id, connection_id=msg.connection_id, conversation_id=10**9,
                               external_id="FK-orphan", direction="in", sent_at=timezone.now())
        connection.check_constraints(table_names=[Message._meta.db_table])
    # tenant/connection are ORM relations without a DB constraint: Django's cascade still removes them.
    Connection.objects.filter(pk=acme_connection.pk).delete()
    assert not Message.objects.filter(external_id__in=["FK1", "FK2"]).exists()


def test_journal_payloads_are_lz4_compressed_on_postgresql(acme_connection):
    if connection.vendor != "postgresql":
        pytest.fail("PostgreSQL-only test run on another database (not part of the smoke set)")
    convs = [b.history_conversation(PN_ANA, [b.web_message(PN_ANA, f"LZ{i:04d}", "texto repetido " * 20, T0 + i)
                                             for i in range(40)])]
    summary = feed(acme_connection, b.history_sync_ev(convs, "INITIAL_BOOTSTRAP", chunk_order=1, progress=100))
    assert summary.saved == 40
    row = RawEvent.objects.get(connection=acme_connection)
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
    row = RawEvent.objects.get(connection=acme_connection)
    assert bytes(row.payload) == payload
