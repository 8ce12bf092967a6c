"""The message write path: ids drawn before the COPY, the rows that hang off them, the fallback when a
message of a new conversation was stored already, the batch's transaction settings, and phase timings
that cost nothing unless switched on (docs/sync.md "Message COPY")."""

import threading

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from inbox.models import Conversation, MediaFile, Message
from sync import events_builder as b
from sync import timing
from sync.ingest import MESSAGE_COLUMNS
from sync.models import RawEvent
from sync.processor import requeue
from sync.statements import batch_settings
from sync.upsert import insert_new
from tests.sync.helpers import PN_ANA, PN_BRUNO, T0, feed, incoming

pytestmark = pytest.mark.django_db


def _history(*conversations):
    return b.history_sync_ev([b.history_conversation(chat, msgs) for chat, msgs in conversations],
                             "INITIAL_BOOTSTRAP", chunk_order=1, progress=100)


def test_media_rows_name_the_messages_the_copy_inserted_and_a_replay_adds_none(acme_connection):
    feed(acme_connection,
         _history((PN_ANA, [b.web_message(PN_ANA, "H-TXT", "olá", T0),
                            b.web_message(PN_ANA, "H-IMG", b.image(size=111, caption="foto"), T0 + 1),
                            b.web_message(PN_ANA, "H-DOC", b.document(size=222), T0 + 2, from_me=True)])),
         b.message_ev(PN_BRUNO, PN_BRUNO, "L-IMG", b.image(size=333), (T0 + 3) * 1000))
    media = {m.message.external_id: m for m in MediaFile.objects.unscoped().select_related("message")}
    assert set(media) == {"H-IMG", "H-DOC", "L-IMG"}
    for ext, m in media.items():
        assert m.message.connection_id == m.connection_id == acme_connection.pk
        assert m.tenant_id == m.message.tenant_id and m.kind == m.message.type and m.state == "pending"
        assert m.history is (ext != "L-IMG")
    assert (media["H-IMG"].declared_size, media["H-DOC"].declared_size, media["L-IMG"].declared_size) == (111, 222, 333)

    requeue(RawEvent.objects.unscoped().filter(connection=acme_connection))
    again = feed(acme_connection)
    assert again.saved == 0 and again.duplicates == 4
    assert MediaFile.objects.unscoped().count() == 3


def test_insert_new_hands_back_the_ids_its_rows_got(acme_connection):
    feed(acme_connection, incoming("SEED"))
    conv = Conversation.objects.unscoped().get(connection=acme_connection, chat_jid=PN_ANA)
    now = timezone.now()

    def row(ext):
        values = {"tenant_id": conv.tenant_id, "conversation_id": conv.pk, "connection_id": acme_connection.pk,
                  "external_id": ext, "direction": "in", "status": "received", "type": "text", "raw_type": "",
                  "body": ext, "media_mimetype": "", "media_size": None, "media_filename": "", "extra": "{}",
                  "sender_jid": PN_ANA, "sender_name": "", "quoted_external_id": "", "quoted_body": "",
                  "reactions": "{}", "sent_at": now, "send_attempts": 0, "error": "", "created_at": now,
                  "updated_at": now}
        return tuple(values[c] for c in MESSAGE_COLUMNS)

    with transaction.atomic():
        ids, id_range = [], []
        inserted = insert_new(Message, MESSAGE_COLUMNS, [row("A"), row("B"), row("C")], {},
                              ("connection_id", "external_id"), ids=ids, id_range=id_range)
    stored = dict(Message.objects.unscoped().values_list("external_id", "pk"))
    assert [ext for _, ext in inserted] == ["A", "B", "C"] and ids == [stored["A"], stored["B"], stored["C"]]
    assert id_range[0] < min(ids) and id_range[1] == max(ids)

    with transaction.atomic():  # B exists: only D is inserted, and only D's id comes back
        ids = []
        inserted = insert_new(Message, MESSAGE_COLUMNS, [row("B"), row("D")], {}, ("connection_id", "external_id"),
                              ids=ids)
    assert inserted == [(acme_connection.pk, "D")] and ids == [Message.objects.unscoped().get(external_id="D").pk]


def test_a_new_conversations_message_stored_already_under_another_chat_is_a_duplicate(acme_connection, caplog):
    """A new conversation's messages are not probed before the COPY; one that exists (the same id in
    another chat) sends the COPY back (in a savepoint) to be redone with a probe, and the new
    conversation gets the values of what was really inserted."""
    feed(acme_connection, _history((PN_ANA, [b.web_message(PN_ANA, "SAME-ID", "de Ana", T0)])))
    caplog.set_level("INFO", logger="sync.upsert")
    summary = feed(acme_connection, _history((PN_BRUNO, [b.web_message(PN_BRUNO, "SAME-ID", "de Bruno", T0 + 5),
                                                         b.web_message(PN_BRUNO, "BRUNO-1", "só de Bruno", T0 + 2)])))
    assert summary.saved == 1 and summary.duplicates == 1
    assert any(r.message == "sync.upsert.fresh_key_existed" for r in caplog.records)
    assert Message.objects.unscoped().get(external_id="SAME-ID").body == "de Ana"
    bruno = Conversation.objects.unscoped().get(chat_jid=PN_BRUNO)
    assert list(bruno.messages.values_list("external_id", flat=True)) == ["BRUNO-1"]
    assert bruno.last_message_preview == "só de Bruno"
    assert bruno.last_message_at == bruno.newest_synced_at == bruno.oldest_synced_at


@pytest.mark.django_db(transaction=True)  # a real transaction: SET LOCAL lasts until its end
def test_a_batch_transaction_commits_without_the_wal_flush_and_keeps_its_trigger_rows_in_memory():
    """PostgreSQL's settings (the suite's database); on SQLite, which has neither, it sends nothing."""
    if connection.vendor != "postgresql":
        with transaction.atomic(), CaptureQueriesContext(connection) as queries:
            batch_settings()
        assert len(queries) == 0
        return
    def settings():
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            sync_commit = cursor.fetchone()[0]
            cursor.execute("SHOW work_mem")
            return sync_commit, cursor.fetchone()[0]

    before = settings()
    with transaction.atomic():
        batch_settings()
        inside = settings()
    assert inside == ("off", "32MB") != before
    assert settings() == before  # SET LOCAL: this transaction only


def test_phase_timings_count_only_inside_their_block_and_thread(acme_connection):
    timing.add("decode", 1.0)  # off: nothing is kept anywhere
    with timing.phase_timings() as totals:
        timing.add("decode", 0.25)
        other = threading.Thread(target=timing.add, args=("decode", 5.0))  # another thread is not timed
        other.start()
        other.join()
        feed(acme_connection, incoming("T1"))
    assert totals["decode"] > 0.25 - 1e-9 and totals["decode"] < 5.0
    assert {"identities", "message_copy", "commit"} <= set(totals)
    timing.add("decode", 1.0)
    with timing.phase_timings() as fresh:
        pass
    assert dict(fresh) == {}
