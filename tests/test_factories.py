"""The factories build data the product could have written: a conversation built with MessageFactory has the
aggregates the sync's batch gives the same messages."""

import pytest

from inbox.models import Conversation, Message
from sync import events_builder as b
from tests.factories import ConnectionFactory, ConversationFactory, MessageFactory
from tests.sync.helpers import PN_ANA, T0, feed, from_phone, incoming

pytestmark = pytest.mark.django_db

AGGREGATES = ("last_message_at", "last_message_preview", "unread_count", "oldest_synced_at", "newest_synced_at")


def aggregates(conversation) -> tuple:
    conversation.refresh_from_db()
    return tuple(getattr(conversation, name) for name in AGGREGATES)


@pytest.mark.smoke
def test_factory_messages_give_the_aggregates_the_sync_gives(acme, acme_connection):
    # Live messages arriving one by one, one of them older than the one before it (its preview must not win),
    # the team's own reply (no unread) and a captioned image (a typed preview).
    arrivals = [incoming("IN1", "bom dia", ts=T0 + 10), incoming("IN0", "antes", ts=T0),
                from_phone("OUT1", "já vejo", ts=T0 + 20), incoming("IMG", b.image(caption="foto"), ts=T0 + 30),
                incoming("IN2", "obrigada", ts=T0 + 25)]
    for event in arrivals:
        feed(acme_connection, event)
    synced = Conversation.objects.for_tenant(acme).get(chat_jid=PN_ANA)
    stored = list(Message.objects.for_tenant(acme).filter(conversation=synced).order_by("pk"))
    assert [m.external_id for m in stored] == ["IN1", "IN0", "OUT1", "IMG", "IN2"]

    built = ConversationFactory(connection=ConnectionFactory(tenant=acme))
    for m in stored:
        MessageFactory(conversation=built, direction=m.direction, type=m.type, body=m.body, sent_at=m.sent_at)

    assert aggregates(built) == aggregates(synced)
    assert built.unread_count == 4 and built.last_message_preview == synced.last_message_preview != ""


def test_a_history_message_adds_no_unread_and_the_caller_sees_the_stored_values(acme_connection):
    conversation = ConversationFactory(connection=acme_connection)
    MessageFactory(conversation=conversation, body="antiga", live=False)
    assert conversation.unread_count == 0 and conversation.last_message_preview == "antiga"
    message = MessageFactory(conversation=conversation, body="nova")
    assert (conversation.unread_count, conversation.last_message_at) == (1, message.sent_at)
