"""New conversation by phone number: validated, Brazilian ninth digit handled, never a duplicate."""

import pytest
from django.urls import reverse

from inbox.models import Contact, ContactIdentity, Conversation
from inbox.new_conversation import NewConversationRefused, parse_phone
from tests.factories import ConnectionFactory, ContactFactory, ConversationFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("typed", "expected"), [
    ("+55 11 98765-4321", "+5511987654321"),
    ("(11) 98765-4321", "+5511987654321"),  # no country code: PHONE_DEFAULT_REGION (BR)
    ("+55 11 8765-4321", "+5511987654321"),  # a mobile without its ninth digit: the same line
    ("5511987654321", "+5511987654321"),
    ("+1 650 253 0000", "+16502530000"),
    ("+55 11 3456-7890", "+551134567890"),  # a landline keeps its eight digits
])
def test_numbers_are_read_as_whatsapp_reads_them(typed, expected):
    assert parse_phone(typed) == expected


@pytest.mark.parametrize("typed", ["", "abc", "+55 11 123", "+999 12345", "1" * 41])
def test_bad_numbers_are_refused(typed):
    with pytest.raises(NewConversationRefused):
        parse_phone(typed)


def test_starting_a_conversation_creates_contact_identity_and_conversation_once(client, acme, acme_agent, acme_connection):
    client.force_login(acme_agent)
    url = reverse("new_conversation", args=["acme"])
    assert client.get(url).status_code == 200
    resp = client.post(url, {"connection": acme_connection.pk, "phone": "(11) 8765-4321"})
    conv = Conversation.objects.for_tenant(acme).get()
    assert resp.status_code == 302 and resp.url == reverse("conversation", args=["acme", conv.pk])
    assert conv.chat_jid == "5511987654321@s.whatsapp.net" and conv.connection_id == acme_connection.pk
    assert conv.contact.phone_number == "+5511987654321"
    # The nine-digit form, the international form: the same conversation, no second contact.
    again = client.post(url, {"connection": acme_connection.pk, "phone": "+55 11 98765-4321"})
    assert again.url == resp.url
    assert Contact.objects.for_tenant(acme).count() == 1 and Conversation.objects.for_tenant(acme).count() == 1


def test_an_existing_contact_is_reused_even_when_known_under_a_lid(client, acme, acme_agent, acme_connection):
    contact = ContactFactory(tenant=acme, phone_number="+5521999990000", display_name="Lia")
    ContactIdentity.objects.for_tenant(acme).filter(contact=contact).delete()
    ContactIdentity.objects.create(tenant=acme, contact=contact, jid="12345@lid", kind="lid")
    lid_chat = ConversationFactory(connection=acme_connection, contact=contact, chat_jid="12345@lid")
    client.force_login(acme_agent)
    resp = client.post(reverse("new_conversation", args=["acme"]), {"connection": acme_connection.pk,
                                                                     "phone": "+55 21 99999-0000"})
    assert resp.url == reverse("conversation", args=["acme", lid_chat.pk])
    assert Conversation.objects.for_tenant(acme).count() == 1
    # From another number of the team: a new conversation of the same contact.
    other_number = ConnectionFactory(tenant=acme, name="Sales")
    resp = client.post(reverse("new_conversation", args=["acme"]), {"connection": other_number.pk,
                                                                     "phone": "+55 21 99999-0000"})
    new = Conversation.objects.for_tenant(acme).get(connection=other_number)
    assert new.contact_id == contact.pk and new.chat_jid == "5521999990000@s.whatsapp.net"
    assert Contact.objects.for_tenant(acme).count() == 1
    assert ContactIdentity.objects.for_tenant(acme).filter(contact=contact, jid="5521999990000@s.whatsapp.net").exists()


def test_refusals_and_tenant_isolation(client, acme, globex, globex_owner, acme_agent, acme_connection):
    client.force_login(acme_agent)
    url = reverse("new_conversation", args=["acme"])
    bad = client.post(url, {"connection": acme_connection.pk, "phone": "123"})
    assert bad.status_code == 422 and "not a valid phone number" in bad.content.decode()
    theirs = ConnectionFactory(tenant=globex)
    assert client.post(url, {"connection": theirs.pk, "phone": "+5511987654321"}).status_code == 404
    client.force_login(globex_owner)
    assert client.post(url, {"connection": acme_connection.pk, "phone": "+5511987654321"}).status_code == 404
    assert not Conversation.objects.unscoped().exists()
