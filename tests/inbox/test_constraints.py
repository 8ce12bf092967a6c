"""The database, not the code, makes duplicates impossible: each constraint is checked on the engine."""

import threading

import pytest
from django.db import IntegrityError, connection, transaction

from inbox.actions import get_or_create_conversation
from inbox.models import ContactIdentity, Conversation, Message
from tests.factories import ContactFactory, ConversationFactory, MessageFactory

pytestmark = pytest.mark.smoke


@pytest.mark.django_db
def test_duplicate_message_is_rejected():
    message = MessageFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        MessageFactory(conversation=message.conversation, external_id=message.external_id)
    assert Message.objects.unscoped().filter(external_id=message.external_id).count() == 1


@pytest.mark.django_db
def test_same_external_id_on_another_connection_is_allowed():
    message = MessageFactory()
    other = MessageFactory(external_id=message.external_id)
    assert other.connection_id != message.connection_id


@pytest.mark.django_db
def test_empty_external_id_is_rejected():
    conversation = ConversationFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        MessageFactory(conversation=conversation, external_id="")
    assert not Message.objects.unscoped().exists()


@pytest.mark.django_db
def test_null_external_id_is_rejected():
    conversation = ConversationFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        MessageFactory(conversation=conversation, external_id=None)


@pytest.mark.django_db
def test_duplicate_conversation_is_rejected():
    conversation = ConversationFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Conversation.objects.create(
            tenant=conversation.tenant,
            connection=conversation.connection,
            contact=conversation.contact,
            chat_jid=conversation.chat_jid,
        )
    assert Conversation.objects.unscoped().count() == 1


@pytest.mark.django_db
def test_duplicate_contact_identity_is_rejected():
    contact = ContactFactory()
    other = ContactFactory(tenant=contact.tenant)
    jid = contact.identities.get().jid
    with pytest.raises(IntegrityError), transaction.atomic():
        ContactIdentity.objects.create(tenant=contact.tenant, contact=other, jid=jid, kind="pn")
    assert ContactIdentity.objects.unscoped().filter(jid=jid).count() == 1


@pytest.mark.django_db
def test_same_jid_in_two_tenants_is_two_identities():
    contact = ContactFactory()
    other = ContactFactory(phone_number=contact.phone_number)
    assert other.tenant_id != contact.tenant_id
    assert ContactIdentity.objects.unscoped().filter(jid=contact.identities.get().jid).count() == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_get_or_create_conversation_makes_one_row():
    seed = ConversationFactory()
    connection_obj, contact = seed.connection, seed.contact
    chat_jid = "5511900000001@s.whatsapp.net"
    barrier = threading.Barrier(4)
    results, errors = [], []

    def worker():
        try:
            barrier.wait()
            results.append(get_or_create_conversation(connection_obj, chat_jid, contact).pk)
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(results)) == 1
    assert Conversation.objects.unscoped().filter(connection=connection_obj, chat_jid=chat_jid).count() == 1
