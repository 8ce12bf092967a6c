"""One contact per person (LID + phone JID), and operations that arrive before their message."""

import pytest
from django.db import transaction

from inbox.models import Contact, ContactIdentity, Conversation, Message, MessageRevision
from sync import events_builder as b
from sync.models import PendingOperation, RawEvent
from sync.operations import apply_pending_operations
from sync.processor import process_pending, requeue
from tests.factories import ConversationFactory, MessageFactory
from tests.sync.helpers import LID_ANA, PN_ANA, T0, feed, from_phone, incoming

pytestmark = pytest.mark.django_db


@pytest.mark.smoke
def test_first_seen_as_lid_then_as_phone_with_mapping_is_one_contact_one_conversation(acme_connection):
    feed(acme_connection, incoming("L1", "pelo lid", chat=LID_ANA, ts=T0))
    conv = Conversation.objects.unscoped().get()
    assert conv.chat_jid == LID_ANA  # phone number unknown yet
    # Later the same person writes with the phone-number JID and WhatsApp tells us her LID.
    feed(acme_connection, incoming("P1", "pelo número", chat=PN_ANA, sender_alt=LID_ANA, ts=T0 + 10))
    assert Contact.objects.unscoped().count() == 1
    contact = Contact.objects.unscoped().get()
    assert set(contact.identities.values_list("jid", flat=True)) == {LID_ANA, PN_ANA}
    conv = Conversation.objects.unscoped().get()
    assert conv.chat_jid == PN_ANA and conv.contact == contact
    assert set(conv.messages.values_list("external_id", flat=True)) == {"L1", "P1"}
    assert conv.unread_count == 2
    # and later LID-addressed messages land in the same conversation
    feed(acme_connection, incoming("L2", "de novo pelo lid", chat=LID_ANA, ts=T0 + 20))
    assert Conversation.objects.unscoped().get().messages.count() == 3


def test_two_existing_conversations_are_merged_when_the_mapping_arrives(acme_connection):
    feed(acme_connection, incoming("L1", "lid 1", chat=LID_ANA, ts=T0), incoming("L2", "lid 2", chat=LID_ANA, ts=T0 + 1))
    feed(acme_connection, incoming("P1", "pn 1", chat=PN_ANA, ts=T0 + 5, push_name=""))
    assert Contact.objects.unscoped().count() == 2 and Conversation.objects.unscoped().count() == 2
    # A history sync carries the LID <-> phone mapping.
    feed(acme_connection, b.history_sync_ev([], "PUSH_NAME", mappings=[(PN_ANA, LID_ANA)]))
    assert Contact.objects.unscoped().count() == 1
    conv = Conversation.objects.unscoped().get()
    assert conv.chat_jid == PN_ANA
    assert sorted(conv.messages.values_list("external_id", flat=True)) == ["L1", "L2", "P1"]
    assert conv.unread_count == 3 and conv.last_message_preview == "pn 1"
    assert Message.objects.unscoped().count() == 3
    assert set(ContactIdentity.objects.unscoped().values_list("jid", flat=True)) == {LID_ANA, PN_ANA}
    assert Contact.objects.unscoped().get().push_name == "Ana"


def test_mapping_from_phone_sent_message_recipient_alt(acme_connection):
    feed(acme_connection, incoming("L1", chat=LID_ANA))
    feed(acme_connection, from_phone("O1", chat=PN_ANA, recipient_alt=LID_ANA))
    assert Conversation.objects.unscoped().get().messages.count() == 2


@pytest.mark.smoke
def test_receipts_move_status_forward_only_and_may_arrive_before_the_message(acme_connection):
    conv = ConversationFactory(connection=acme_connection, tenant=acme_connection.tenant)
    out = MessageFactory(conversation=conv, direction="out", status="sent", external_id="WA-OUT-1")
    chat = conv.chat_jid
    feed(acme_connection, b.receipt_ev(chat, ["WA-OUT-1"], "read"), b.receipt_ev(chat, ["WA-OUT-1"], "delivered"))
    out.refresh_from_db()
    assert out.status == "read"
    # A receipt for a message not stored yet (the outbox has not recorded its WhatsApp id).
    queued = MessageFactory(conversation=conv, direction="out", status="queued", external_id="local-abc")
    feed(acme_connection, b.receipt_ev(chat, ["WA-OUT-2"], "delivered"))
    assert PendingOperation.objects.unscoped().filter(target_external_id="WA-OUT-2").exists()
    queued.external_id, queued.status = "WA-OUT-2", "sent"  # what the runner does after sending
    queued.save()
    with transaction.atomic():
        assert apply_pending_operations(acme_connection, ["WA-OUT-2"]) == 1
    queued.refresh_from_db()
    assert queued.status == "delivered" and not PendingOperation.objects.unscoped().exists()


def test_receipt_before_a_message_sent_from_the_phone(acme_connection):
    feed(acme_connection, b.receipt_ev(PN_ANA, ["OUT9"], "read"))
    feed(acme_connection, from_phone("OUT9", "mandei do celular"))
    assert Message.objects.unscoped().get(external_id="OUT9").status == "read"


@pytest.mark.parametrize("order", ["original_first", "operations_first"])
def test_edit_revoke_and_reaction_before_and_after_the_original(acme_connection, order):
    original = from_phone("M1", "texto original", ts=T0)
    other = incoming("M2", "outra", ts=T0 + 1)
    edit = b.message_ev(PN_ANA, "5511900000000@s.whatsapp.net", "E1", b.edit("M1", "texto editado", PN_ANA), (T0 + 60) * 1000,
                        from_me=True)
    revoke = b.message_ev(PN_ANA, PN_ANA, "R1", b.revoke("M2", PN_ANA), (T0 + 70) * 1000)
    react = b.message_ev(PN_ANA, PN_ANA, "X1", b.reaction("M1", "👍", PN_ANA, target_from_me=True), (T0 + 80) * 1000)
    if order == "original_first":
        feed(acme_connection, original, other)
        feed(acme_connection, edit, revoke, react)
    else:
        feed(acme_connection, edit, revoke, react)
        assert PendingOperation.objects.unscoped().count() == 3
        feed(acme_connection, original, other)
    m1, m2 = Message.objects.unscoped().get(external_id="M1"), Message.objects.unscoped().get(external_id="M2")
    assert m1.body == "texto editado" and m1.edited_at is not None
    assert list(MessageRevision.objects.unscoped().filter(message=m1).values_list("body", flat=True)) == ["texto original"]
    assert m1.reactions == {PN_ANA: "👍"}
    assert m2.deleted_at is not None and m2.body == "outra"  # the body is kept for admins
    assert Message.objects.unscoped().count() == 2  # protocol messages are not messages of their own
    assert not PendingOperation.objects.unscoped().exists()
    # Replaying everything changes nothing (no second revision, same rows).
    feed(acme_connection, original, other, edit, revoke, react)
    requeue(RawEvent.objects.unscoped().filter(connection=acme_connection))
    process_pending(acme_connection.pk, wait=True)
    assert MessageRevision.objects.unscoped().count() == 1 and Message.objects.unscoped().count() == 2
    # Removing a reaction.
    feed(acme_connection, b.message_ev(PN_ANA, PN_ANA, "X2", b.reaction("M1", "", PN_ANA, target_from_me=True)))
    assert Message.objects.unscoped().get(external_id="M1").reactions == {}
