"""The seams between the runner and the sync engine: early receipts and the session store's LID map."""

from datetime import UTC, datetime

import pytest

from connections import outbox
from inbox.models import Message
from sync import events_builder as eb
from sync.journal import journal_events
from sync.models import PendingOperation
from sync.processor import process_pending
from tests.factories import ConnectionFactory, ConversationFactory, MessageFactory


def journal_and_process(conn, *events):
    journal_events(conn.pk, [(*eb.serialize(ev), None) for ev in events], schedule=False)
    return process_pending(conn.pk, wait=True)


def claimed_reply(conn, body="Your order left today"):
    """An agent's reply as the runner holds it between the send and the commit: claimed, `sending`."""
    conv = ConversationFactory(connection=conn)
    reply = MessageFactory(conversation=conv, direction=Message.Direction.OUTBOUND, status=Message.Status.QUEUED,
                           external_id=f"local-{body[:20].replace(' ', '-')}", body=body)
    [claimed] = outbox.claim_outbound(conn.pk)
    assert claimed.pk == reply.pk and claimed.status == Message.Status.SENDING
    return conv, claimed


def status(pk):
    return Message.objects.values_list("status", flat=True).get(pk=pk)


@pytest.mark.smoke
@pytest.mark.django_db
def test_a_receipt_that_beat_the_send_commit_applies_the_moment_the_reply_is_marked_sent():
    conn = ConnectionFactory(jid="5511900000601:1@s.whatsapp.net")
    conv, reply = claimed_reply(conn)
    wa_id = "3EB0EA51EE0001"
    # The phone's DELIVERED receipt is journaled and processed before the runner recorded WhatsApp's id.
    journal_and_process(conn, eb.receipt_ev(conv.chat_jid, wa_id, "delivered"))
    assert PendingOperation.objects.filter(connection=conn, target_external_id=wa_id, kind="receipt").count() == 1
    assert status(reply.pk) == Message.Status.SENDING

    assert outbox.do_mark_sent(reply, wa_id, datetime(2026, 11, 25, 10, 0, tzinfo=UTC)) is True

    # Applied in the same transaction: no safety-net wait, no journal processing in between.
    stored = Message.objects.get(pk=reply.pk)
    assert stored.status == Message.Status.DELIVERED and stored.external_id == wa_id
    assert not PendingOperation.objects.filter(connection=conn, target_external_id=wa_id).exists()


@pytest.mark.django_db
def test_early_receipts_never_move_the_reply_backward():
    conn = ConnectionFactory(jid="5511900000602:1@s.whatsapp.net")
    conv, reply = claimed_reply(conn)
    wa_id = "3EB0EA51EE0002"
    # READ arrives first, then a late DELIVERED for the same id: both wait for the id.
    journal_and_process(conn, eb.receipt_ev(conv.chat_jid, wa_id, "read", ts=1_760_000_200),
                        eb.receipt_ev(conv.chat_jid, wa_id, "delivered", ts=1_760_000_100))
    assert PendingOperation.objects.filter(connection=conn, target_external_id=wa_id).count() == 2

    outbox.do_mark_sent(reply, wa_id, datetime(2026, 11, 25, 10, 0, tzinfo=UTC))
    assert status(reply.pk) == Message.Status.READ
    # Another late DELIVERED after the fact changes nothing either.
    journal_and_process(conn, eb.receipt_ev(conv.chat_jid, wa_id, "delivered", ts=1_760_000_300))
    assert status(reply.pk) == Message.Status.READ
    assert not PendingOperation.objects.filter(connection=conn).exists()


@pytest.mark.django_db
def test_marking_sent_leaves_other_messages_pending_operations_alone():
    conn = ConnectionFactory(jid="5511900000603:1@s.whatsapp.net")
    conv, reply = claimed_reply(conn)
    journal_and_process(conn, eb.receipt_ev(conv.chat_jid, "3EB0OTHER00001", "delivered"))
    outbox.do_mark_sent(reply, "3EB0EA51EE0003", datetime(2026, 11, 25, 10, 0, tzinfo=UTC))
    assert status(reply.pk) == Message.Status.SENT
    assert PendingOperation.objects.filter(connection=conn, target_external_id="3EB0OTHER00001").count() == 1
