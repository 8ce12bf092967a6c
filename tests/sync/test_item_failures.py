"""One bad item of a multi-item event fails alone: the rest is stored, the row is processed with a note,
the run counts the item as failed and still balances, and a structured line says what was dropped."""

from datetime import timedelta

import pytest
from django.utils import timezone

from inbox.models import Alert, Contact, GroupParticipant, Message
from sync import events_builder as b
from sync.actions import do_replay
from sync.models import RawEvent, SyncRun
from sync.processor import process_pending
from tests.factories import ConversationFactory, MessageFactory
from tests.sync.helpers import GROUP, PN_ANA, PN_BRUNO, T0, feed

pytestmark = pytest.mark.django_db


def _chunk_with_one_message_without_an_id():
    return b.history_sync_ev([b.history_conversation(PN_ANA, [
        b.web_message(PN_ANA, "H1", "um", T0),
        b.web_message(PN_ANA, "H2", "dois", T0 + 1),
        b.web_message(PN_ANA, "", "sem id", T0 + 2),
        b.web_message(PN_ANA, "H3", "três", T0 + 3, from_me=True),
    ])], "INITIAL_BOOTSTRAP", progress=100)


def _item_failures(caplog):
    return [r for r in caplog.records if r.getMessage() == "sync.item.failed"]


@pytest.mark.smoke
def test_a_history_chunk_with_a_message_without_an_id_stores_the_other_three(acme_connection, caplog):
    with caplog.at_level("WARNING", logger="sync.processor"):
        summary = feed(acme_connection, _chunk_with_one_message_without_an_id())
    assert sorted(Message.objects.unscoped().values_list("external_id", flat=True)) == ["H1", "H2", "H3"]
    assert (summary.processed, summary.failed, summary.items_failed) == (1, 0, 1)

    row = RawEvent.objects.unscoped().get()
    assert row.state == RawEvent.State.PROCESSED and row.attempts == 0 and row.next_attempt_at is None
    assert row.error == f"item failed: message without an id (chat {PN_ANA}, message order 3)"
    run = SyncRun.objects.unscoped().get(pk=row.sync_run_id)
    assert (run.received, run.saved, run.duplicates, run.skipped_total, run.failed) == (4, 3, 0, 0, 1)
    assert run.balanced and run.finished_at is not None and not run.discrepancy
    assert not Alert.objects.unscoped().exists()

    [line] = _item_failures(caplog)
    assert line.levelname == "WARNING"
    assert (line.connection_id, line.raw_event_id, line.reason, line.chat, line.event_name) == (
        acme_connection.pk, row.pk, "message without an id", PN_ANA, "HistorySyncEv")

    # Nothing comes back to it later: the row is not due (no retry, no quarantine 14 minutes on).
    RawEvent.objects.unscoped().filter(pk=row.pk).update(received_at=timezone.now() - timedelta(hours=1))
    assert process_pending(acme_connection.pk, wait=True).processed == 0
    row.refresh_from_db()
    assert row.state == RawEvent.State.PROCESSED and row.attempts == 0


def test_a_replay_of_that_row_changes_nothing(acme_connection):
    feed(acme_connection, _chunk_with_one_message_without_an_id())
    first_run = SyncRun.objects.unscoped().get()
    row = RawEvent.objects.unscoped().get()
    note = row.error
    books = (first_run.received, first_run.saved, first_run.duplicates, first_run.failed)

    feed(acme_connection, _chunk_with_one_message_without_an_id())  # the same bytes again: journaled once
    out = do_replay(acme_connection)

    assert out["requeued"] == 1 and out["processed"] == 1 and out["saved"] == 0 and out["items_failed"] == 1
    assert sorted(Message.objects.unscoped().values_list("external_id", flat=True)) == ["H1", "H2", "H3"]
    first_run.refresh_from_db()
    assert (first_run.received, first_run.saved, first_run.duplicates, first_run.failed) == books
    replay = SyncRun.objects.unscoped().get(pk=out["run"])
    assert (replay.received, replay.saved, replay.duplicates, replay.failed) == (4, 0, 3, 1) and replay.balanced
    row.refresh_from_db()
    assert row.state == RawEvent.State.PROCESSED and row.error == note  # not noted twice


def test_a_conversation_without_an_id_fails_its_messages_and_not_the_others(acme_connection, caplog):
    chunk = b.history_sync_ev([
        b.history_conversation("", [b.web_message(PN_ANA, f"N{i}", "perdida", T0 + i) for i in range(3)]),
        b.history_conversation(PN_BRUNO, [b.web_message(PN_BRUNO, "B1", "oi", T0)], name="Bruno"),
        b.history_conversation(GROUP, [
            b.web_message(GROUP, "G1", "longo", T0, participant="7" * 200 + "@lid"),
            b.web_message(GROUP, "G2", "ok", T0 + 1, participant=PN_ANA),
        ]),
    ], "INITIAL_BOOTSTRAP", progress=100)
    with caplog.at_level("WARNING", logger="sync.processor"):
        summary = feed(acme_connection, chunk)
    assert sorted(Message.objects.unscoped().values_list("external_id", flat=True)) == ["B1", "G2"]
    assert summary.items_failed == 4 and summary.failed == 0
    row = RawEvent.objects.unscoped().get()
    assert row.state == RawEvent.State.PROCESSED
    assert "3 items failed: history conversation without an ID (conversation #0)" in row.error
    assert "item failed: sender JID longer than 128 characters" in row.error
    run = SyncRun.objects.unscoped().get()
    assert (run.received, run.saved, run.failed) == (6, 2, 4) and run.balanced and not run.discrepancy
    assert [(r.reason, r.count) for r in _item_failures(caplog)] == [
        ("history conversation without an ID", 3), ("sender JID longer than 128 characters", 1)]


def test_a_receipt_with_one_over_long_id_still_moves_the_others(acme_connection):
    conv = ConversationFactory(connection=acme_connection, tenant=acme_connection.tenant)
    out = MessageFactory(conversation=conv, direction="out", status="sent", external_id="WA-OUT-1")
    feed(acme_connection, b.receipt_ev(conv.chat_jid, ["WA-OUT-1", "X" * 129], "read"))
    out.refresh_from_db()
    assert out.status == "read"
    row = RawEvent.objects.unscoped().get()
    assert row.state == RawEvent.State.PROCESSED
    assert row.error == f"item failed: receipt target id longer than 128 characters (chat {conv.chat_jid}, message id #1)"
    run = SyncRun.objects.unscoped().get()
    assert (run.received, run.failed) == (1, 1) and run.balanced


def test_a_group_with_one_over_long_participant_keeps_the_others(acme_connection):
    feed(acme_connection, b.joined_group_ev(GROUP, "Equipe", [
        b.group_participant(PN_ANA, is_admin=True), b.group_participant("8" * 200 + "@s.whatsapp.net"),
        b.group_participant(PN_BRUNO),
    ]))
    row = RawEvent.objects.unscoped().get()
    assert row.state == RawEvent.State.PROCESSED
    assert row.error.startswith(f"item failed: group participant JID longer than 128 characters (chat {GROUP}, 888")
    group = Contact.objects.unscoped().get(identities__jid=GROUP)
    members = GroupParticipant.objects.unscoped().filter(group=group)
    assert sorted(members.values_list("member__identities__jid", "is_admin")) == [(PN_ANA, True), (PN_BRUNO, False)]
