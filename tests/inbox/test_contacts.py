"""Contacts as agents keep them (inbox.contacts): our name (never overwritten by the sync's names), notes and
attributes, live for the other agents; the merge of two contacts by hand through the sync's own merge, with
a confirmation step, tenant-isolated, for owners/admins, safe beside a batch ingesting for either contact."""

import queue
import threading

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import connection
from django.urls import reverse

from inbox import contacts, labels, notes
from inbox.models import Contact, ContactIdentity, Conversation, ConversationLabel, Message, Note
from sync import events_builder as b
from sync.models import RawEvent
from tests.inbox.test_live import receive_until, session_cookie, socket
from tests.locks import backend_pid, wait_blocked_on_lock
from tests.sync.helpers import LID_ANA, PN_ANA, T0, feed, incoming

pytestmark = pytest.mark.django_db


def contact_of(tenant, jid) -> Contact:
    return Contact.objects.for_tenant(tenant).get(identities__jid=jid)


def conversation_of(conn, jid) -> Conversation:
    return Conversation.objects.for_tenant(conn.tenant_id).get(connection=conn, chat_jid=jid)


def edit(client, conv, **data):
    data.setdefault("name", "")
    data.setdefault("notes", "")
    return client.post(reverse("contact_edit", args=["acme", conv.pk]), data, HTTP_HX_REQUEST="true")


# --- editing ---------------------------------------------------------------------------------------


@pytest.mark.smoke
def test_an_agent_edits_name_notes_and_attributes(client, acme, acme_agent, acme_connection):
    feed(acme_connection, incoming("A1", push_name="Ana WhatsApp"))
    conv = conversation_of(acme_connection, PN_ANA)
    client.force_login(acme_agent)
    resp = edit(client, conv, name="Ana Souza (cliente VIP)", notes="Prefere e-mail.\nLiga de tarde.",
                attr_key=["CPF", "Pedido", ""], attr_value=["529.982.247-25", "#4411", ""])
    assert resp.status_code == 200
    html = resp.content.decode()
    assert 'id="contact-details-' in html and "Ana Souza (cliente VIP)" in html and "#4411" in html
    contact = contact_of(acme, PN_ANA)
    assert (contact.display_name, contact.name_locked, contact.push_name) == ("Ana Souza (cliente VIP)", True,
                                                                              "Ana WhatsApp")
    assert contact.notes == "Prefere e-mail.\nLiga de tarde."
    assert contact.attributes == {"CPF": "529.982.247-25", "Pedido": "#4411"}
    page = client.get(reverse("conversation", args=["acme", conv.pk])).content.decode()
    assert "Ana Souza (cliente VIP)" in page and "Prefere e-mail.<br>Liga de tarde." in page and "529.982.247-25" in page
    assert "“Ana WhatsApp” on WhatsApp" in page  # the push name stays apart

    # An emptied value removes its attribute; an emptied name hands the name back to the sync.
    edit(client, conv, name="", notes="", attr_key=["CPF", "Pedido"], attr_value=["529.982.247-25", ""])
    contact.refresh_from_db()
    assert (contact.display_name, contact.name_locked, contact.attributes) == ("", False, {"CPF": "529.982.247-25"})


@pytest.mark.parametrize(("keys", "values", "expected"), [
    (["CPF"], ["111.111.111-11"], "is not a valid CPF"),
    (["Pedido", "pedido"], ["1", "2"], "is there twice"),
    ([""], ["sem nome"], "Give every value a name"),
    (["<script>"], ["x"], "is not a usable name"),
    (["Pedido"], ["x" * 501], "too long"),
])
def test_bad_attributes_are_refused_with_the_reason_and_nothing_changes(client, acme, acme_agent, acme_connection,
                                                                        keys, values, expected):
    feed(acme_connection, incoming("A1"))
    conv = conversation_of(acme_connection, PN_ANA)
    client.force_login(acme_agent)
    edit(client, conv, name="Ana", notes="antes", attr_key=["Plano"], attr_value=["Ouro"])
    resp = edit(client, conv, name="Outro nome", notes="depois", attr_key=keys, attr_value=values)
    assert resp.status_code == 422
    html = resp.content.decode()
    assert expected in html and 'role="alert"' in html and 'value="Outro nome"' in html  # shown back as typed
    contact = contact_of(acme, PN_ANA)
    assert (contact.display_name, contact.notes, contact.attributes) == ("Ana", "antes", {"Plano": "Ouro"})


@pytest.mark.smoke
def test_the_sync_never_overwrites_a_name_an_agent_gave(client, acme, acme_agent, acme_connection):
    feed(acme_connection, b.history_sync_ev([b.history_conversation(PN_ANA, [b.web_message(PN_ANA, "H1", "oi", T0)],
                                                                    name="Ana (agenda)")], "INITIAL_BOOTSTRAP"))
    assert contact_of(acme, PN_ANA).display_name == "Ana (agenda)"  # the address book's name, while nobody gave one
    client.force_login(acme_agent)
    edit(client, conversation_of(acme_connection, PN_ANA), name="Ana Souza")
    # Later syncs: a new push name, the address book's name again in a history chunk.
    feed(acme_connection, incoming("A2", ts=T0 + 60, push_name="Aninha"),
         b.history_sync_ev([b.history_conversation(PN_ANA, [b.web_message(PN_ANA, "H2", "oi", T0 + 1)],
                                                   name="Ana (agenda nova)")], "RECENT", chunk_order=2))
    contact = contact_of(acme, PN_ANA)
    assert (contact.display_name, contact.push_name) == ("Ana Souza", "Aninha")


def test_contact_editing_is_tenant_isolated(client, acme, globex_owner, acme_connection):
    feed(acme_connection, incoming("A1"))
    conv = conversation_of(acme_connection, PN_ANA)
    client.force_login(globex_owner)
    assert client.post(reverse("contact_edit", args=["globex", conv.pk]), {"name": "x"}).status_code == 404
    assert client.post(reverse("contact_edit", args=["acme", conv.pk]), {"name": "x"}).status_code == 404
    assert contact_of(acme, PN_ANA).display_name == ""


@pytest.mark.django_db(transaction=True)
def test_an_edit_reaches_the_other_agents_live(client, acme, acme_agent, acme_owner, acme_connection):
    feed(acme_connection, incoming("A1"))
    conv = conversation_of(acme_connection, PN_ANA)
    contact = conv.contact
    cookie = session_cookie(client, acme_owner)

    async def scenario():
        viewer = socket(f"/ws/t/acme/?conversation={conv.pk}", cookie)
        assert (await viewer.connect())[0]
        await sync_to_async(contacts.check_edit_contact)(contact, name="Ana Souza", notes="VIP",
                                                         pairs=[("Pedido", "#9")], user=acme_agent)
        header = await receive_until(viewer, f'id="conv-header-{conv.pk}"')  # the header's name
        assert "Ana Souza" in header
        details = await receive_until(viewer, f'id="contact-details-{conv.contact_id}"')
        assert "Ana Souza" in details and "#9" in details and 'hx-swap-oob="true"' in details
        await viewer.disconnect()

    async_to_sync(scenario)()


# --- merging ---------------------------------------------------------------------------------------


@pytest.fixture
def two_anas(acme, acme_agent, acme_connection):
    """Ana wrote under her phone number and, before WhatsApp told us they are one, under her LID: two
    contacts, two conversations on the same number, each with messages, a note and a label."""
    feed(acme_connection, incoming("P1", "pelo telefone", ts=T0), incoming("P2", "de novo", ts=T0 + 10))
    feed(acme_connection, incoming("L1", "pelo lid", ts=T0 + 20, chat=LID_ANA, push_name="Ana L"))
    phone_conv, lid_conv = conversation_of(acme_connection, PN_ANA), conversation_of(acme_connection, LID_ANA)
    notes.check_add_note(lid_conv, acme_agent, "nota na conversa do lid")
    vip = labels.check_create_label(acme, "VIP", "red")
    labels.do_add_label(lid_conv, vip)
    labels.do_add_label(phone_conv, vip)
    billing = labels.check_create_label(acme, "Billing", "blue")
    labels.do_add_label(lid_conv, billing)
    contacts.check_edit_contact(lid_conv.contact, name="Ana pelo LID", notes="nota do lid",
                                pairs=[("Pedido", "#1"), ("Plano", "Ouro")], user=acme_agent)
    contacts.check_edit_contact(phone_conv.contact, name="", notes="", pairs=[("Pedido", "#2")], user=acme_agent)
    return phone_conv, lid_conv


@pytest.mark.smoke
def test_the_merge_is_confirmed_then_moves_everything_into_one_conversation(client, acme, acme_owner, acme_connection,
                                                                            two_anas):
    phone_conv, lid_conv = two_anas
    survivor, other = phone_conv.contact, lid_conv.contact
    client.force_login(acme_owner)
    found = client.get(reverse("contact_merge_search", args=["acme", phone_conv.pk]), {"q": "pelo LID"})
    assert reverse("contact_merge", args=["acme", phone_conv.pk, other.pk]) in found.content.decode()
    url = reverse("contact_merge", args=["acme", phone_conv.pk, other.pk])
    confirm = client.get(url).content.decode()
    assert LID_ANA in confirm and "become one" in confirm and "Plano: Ouro" in confirm
    assert Contact.objects.for_tenant(acme).filter(pk=other.pk).exists()  # nothing happened yet

    resp = client.post(url)
    assert resp.status_code == 302 and resp["Location"] == reverse("conversation", args=["acme", phone_conv.pk])
    assert not Contact.objects.for_tenant(acme).filter(pk=other.pk).exists()
    assert sorted(ContactIdentity.objects.for_tenant(acme).filter(contact=survivor).values_list("jid", flat=True)) \
        == sorted([PN_ANA, LID_ANA])
    convs = list(Conversation.objects.for_tenant(acme))
    assert [c.pk for c in convs] == [phone_conv.pk]  # one conversation with both message sets
    conv = convs[0]
    assert sorted(Message.objects.for_tenant(acme).filter(conversation=conv).values_list("external_id", flat=True)) \
        == ["L1", "P1", "P2"]
    assert (conv.unread_count, conv.last_message_preview) == (3, "pelo lid")
    assert list(Note.objects.for_tenant(acme).values_list("conversation_id", "body")) == [
        (conv.pk, "nota na conversa do lid")]
    assert sorted(ConversationLabel.objects.for_tenant(acme).values_list("conversation_id", "label__name")) == [
        (conv.pk, "Billing"), (conv.pk, "VIP")]
    survivor.refresh_from_db()
    assert (survivor.display_name, survivor.name_locked) == ("Ana pelo LID", True)  # the agents' name is kept
    assert survivor.attributes == {"Pedido": "#2", "Plano": "Ouro"}
    assert "nota do lid" in survivor.notes and "Pedido (merged): #1" in survivor.notes
    # Later messages under either id land in the one conversation.
    feed(acme_connection, incoming("L2", "depois", ts=T0 + 99, chat=LID_ANA))
    assert list(Conversation.objects.for_tenant(acme).values_list("pk", flat=True)) == [conv.pk]
    assert Message.objects.for_tenant(acme).filter(conversation=conv).count() == 4


def test_merging_is_for_owners_and_admins_and_tenant_isolated(client, acme, acme_agent, globex_owner, two_anas):
    phone_conv, lid_conv = two_anas
    url = reverse("contact_merge", args=["acme", phone_conv.pk, lid_conv.contact_id])
    client.force_login(acme_agent)
    assert client.get(url).status_code == 403 and client.post(url).status_code == 403
    assert client.get(reverse("contact_merge_search", args=["acme", phone_conv.pk]), {"q": "Ana"}).status_code == 403
    client.force_login(globex_owner)
    assert client.post(reverse("contact_merge", args=["globex", phone_conv.pk, lid_conv.contact_id])).status_code == 404
    assert client.post(url).status_code == 404
    assert Contact.objects.for_tenant(acme).count() == 2


def test_a_contact_of_another_tenant_is_not_found_nor_merged(client, acme, acme_owner, globex, two_anas):
    from tests.factories import ContactFactory

    phone_conv, _ = two_anas
    stranger = ContactFactory(tenant=globex, display_name="Ana de outra empresa")
    client.force_login(acme_owner)
    found = client.get(reverse("contact_merge_search", args=["acme", phone_conv.pk]), {"q": "Ana"}).content.decode()
    assert "outra empresa" not in found
    assert client.post(reverse("contact_merge", args=["acme", phone_conv.pk, stranger.pk])).status_code == 404
    assert Contact.objects.for_tenant(globex).filter(pk=stranger.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_a_message_ingested_during_a_merge_lands_in_the_survivor(acme, acme_agent, acme_connection, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.fail("PostgreSQL-only test (row locks and the message triggers)")
    feed(acme_connection, incoming("P1", ts=T0))
    feed(acme_connection, incoming("L1", ts=T0 + 1, chat=LID_ANA))
    survivor, other = contact_of(acme, PN_ANA), contact_of(acme, LID_ANA)
    import sync.identities

    locked, go = threading.Event(), threading.Event()
    real_merge = sync.identities.merge_contacts

    def slow_merge(*args):
        locked.set()  # both contacts and their conversations are locked now
        assert go.wait(10)
        return real_merge(*args)

    monkeypatch.setattr(sync.identities, "merge_contacts", slow_merge)
    errors = []

    def merge():
        try:
            contacts.check_merge_contacts(survivor, other, acme_agent)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    ingest_pid = queue.Queue()

    def ingest():
        try:
            ingest_pid.put(backend_pid())
            feed(acme_connection, incoming("L2", "durante", ts=T0 + 2, chat=LID_ANA))
        finally:
            connection.close()

    merging = threading.Thread(target=merge)
    merging.start()
    assert locked.wait(10)
    ingesting = threading.Thread(target=ingest)
    ingesting.start()
    wait_blocked_on_lock(ingest_pid.get(timeout=10))  # the batch waits for the merge's locks
    assert ingesting.is_alive()
    go.set()
    merging.join(20)
    ingesting.join(20)
    assert not errors
    # A row the merge made fail is retried (here at once) against the survivor.
    from django.utils import timezone

    from sync.processor import process_pending

    RawEvent.objects.unscoped().filter(connection=acme_connection, state="failed").update(next_attempt_at=timezone.now())

    process_pending(acme_connection.pk, wait=True)
    assert not RawEvent.objects.unscoped().exclude(state="processed").filter(connection=acme_connection).exists()
    convs = list(Conversation.objects.for_tenant(acme).values_list("pk", "chat_jid", "contact_id"))
    assert len(convs) == 1 and convs[0][1:] == (PN_ANA, survivor.pk)
    assert sorted(Message.objects.for_tenant(acme).filter(conversation_id=convs[0][0])
                  .values_list("external_id", flat=True)) == ["L1", "L2", "P1"]


# --- query counts ----------------------------------------------------------------------------------


def _count_queries(client, url) -> int:
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_the_contact_panel_costs_the_same_queries_however_much_it_shows(client, acme, acme_owner, acme_connection):
    from tests.factories import ConnectionFactory, ContactFactory, ConversationFactory

    client.force_login(acme_owner)
    bare = ConversationFactory(connection=acme_connection, contact=ContactFactory(tenant=acme))
    rich_contact = ContactFactory(tenant=acme, notes="muitas\nlinhas",
                                  attributes={f"Campo {i}": f"valor {i}" for i in range(30)})
    rich = ConversationFactory(connection=acme_connection, contact=rich_contact)
    for i in range(4):
        ConversationFactory(connection=ConnectionFactory(tenant=acme), contact=rich_contact)
        ContactIdentity.objects.create(tenant=acme, contact=rich_contact, jid=f"2000000000{i}@lid", kind="lid")
    assert _count_queries(client, reverse("conversation", args=["acme", rich.pk])) \
        == _count_queries(client, reverse("conversation", args=["acme", bare.pk]))


def test_the_merge_confirmation_costs_the_same_queries_for_one_or_many_conversations(client, acme, acme_owner,
                                                                                     acme_connection):
    from tests.factories import ConnectionFactory, ContactFactory, ConversationFactory, MessageFactory

    client.force_login(acme_owner)
    survivor = ContactFactory(tenant=acme)
    conv = ConversationFactory(connection=acme_connection, contact=survivor)
    few, many = ContactFactory(tenant=acme), ContactFactory(tenant=acme)
    MessageFactory(conversation=ConversationFactory(connection=acme_connection, contact=few))
    for _ in range(6):
        other = ConversationFactory(connection=ConnectionFactory(tenant=acme), contact=many)
        MessageFactory(conversation=other)
        notes.check_add_note(other, acme_owner, "nota")
    url = lambda other: reverse("contact_merge", args=["acme", conv.pk, other.pk])  # noqa: E731
    assert _count_queries(client, url(many)) == _count_queries(client, url(few))


def test_the_syncs_own_merge_keeps_the_agents_notes_and_labels(acme, acme_agent, acme_connection, two_anas):
    """WhatsApp reveals that the LID is Ana's phone: the sync folds the LID conversation into the phone one,
    and the agents' notes and labels on it come along (they used to be purged with the row)."""
    phone_conv, lid_conv = two_anas
    feed(acme_connection, incoming("L9", "agora com o número", ts=T0 + 300, chat=LID_ANA, sender_alt=PN_ANA))
    assert list(Conversation.objects.for_tenant(acme).values_list("pk", flat=True)) == [phone_conv.pk]
    assert list(Note.objects.for_tenant(acme).values_list("conversation_id", flat=True)) == [phone_conv.pk]
    assert sorted(ConversationLabel.objects.for_tenant(acme).values_list("label__name", flat=True)) == ["Billing", "VIP"]
    contact = Contact.objects.for_tenant(acme).get()
    assert (contact.display_name, contact.name_locked) == ("Ana pelo LID", True)
    # The oldest contact (the phone's) survives: its value stays, the other one is kept in the notes.
    assert contact.attributes == {"Pedido": "#2", "Plano": "Ouro"} and "Pedido (merged): #1" in contact.notes
