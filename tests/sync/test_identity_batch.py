"""Identities and conversations of a batch are resolved set-wise (sync/ingest.py: resolve_identities,
ensure_conversations): a fixed number of statements per batch, names stored exactly as sent, and a JID
that another process claims first goes to that process's contact."""

import threading
import time

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from inbox.models import Contact, ContactIdentity, Conversation
from sync import events_builder as b
from sync.models import JidMapping
from tests.sync.helpers import PN_ANA, T0, feed, incoming

pytestmark = pytest.mark.django_db


def _history_chunk(first: int, n: int, order: int):
    """A history chunk with ``n`` 1:1 chats (every other one with a LID mapping) and one group."""
    convs, mappings, pushnames = [], [], []
    for i in range(first, first + n):
        chat = f"55119{i:08d}@s.whatsapp.net"
        if i % 2:
            mappings.append((chat, f"2{i:014d}@lid"))
        pushnames.append((chat, f"Cliente {i}"))
        convs.append(b.history_conversation(chat, [b.web_message(chat, f"H{i}-{k}", f"msg {k}", T0 + i * 10 + k)
                                                   for k in range(3)], name=f"Contato {i}", unread_count=1))
    group = f"1203630{first:011d}@g.us"
    convs.append(b.history_conversation(group, [
        b.web_message(group, f"G{first}-{k}", "no grupo", T0 + k, participant=f"55219{first + k:08d}@s.whatsapp.net")
        for k in range(3)], name=f"Grupo {first}"))
    return b.history_sync_ev(convs, "INITIAL_BOOTSTRAP", chunk_order=order, progress=50, pushnames=pushnames,
                             mappings=mappings)


def _queries_to_process(conn, event) -> int:
    with CaptureQueriesContext(connection) as ctx:
        summary = feed(conn, event)
    assert summary.failed == 0
    return len(ctx.captured_queries)


def test_a_history_chunk_costs_the_same_statements_for_4_or_60_people(acme_connection):
    if connection.vendor != "postgresql":
        # SQLite caps parameters per statement, so its bulk inserts (messages too) come in slices.
        pytest.fail("PostgreSQL-only test run on another database (not part of the smoke set)")
    feed(acme_connection, _history_chunk(1000, 2, 1))  # opens the sync run
    small = _queries_to_process(acme_connection, _history_chunk(1, 4, 2))
    big = _queries_to_process(acme_connection, _history_chunk(100, 60, 3))
    assert big == small
    # ... and everything was created: 66 people + 9 group members + 3 groups, a LID for every other person.
    assert Conversation.objects.unscoped().count() == 66 + 3
    assert Contact.objects.unscoped().count() == 66 + 9 + 3
    assert ContactIdentity.objects.unscoped().count() == 66 + 33 + 9 + 3
    assert JidMapping.objects.unscoped().count() == 33
    person = Contact.objects.unscoped().get(identities__jid="5511900000101@s.whatsapp.net")
    assert sorted(person.identities.values_list("jid", "kind")) == [
        ("200000000000101@lid", "lid"), ("5511900000101@s.whatsapp.net", "pn")]
    assert (person.push_name, person.display_name, person.phone_number) == ("Cliente 101", "Contato 101",
                                                                            "+5511900000101")
    conv = Conversation.objects.unscoped().get(chat_jid="5511900000101@s.whatsapp.net")
    assert conv.contact == person and conv.unread_count == 1 and conv.status == "open"
    assert conv.last_message_at.timestamp() == T0 + 1010 + 2
    group = Conversation.objects.unscoped().get(chat_jid="120363000000000100@g.us")
    assert group.is_group and group.contact.kind == "group" and group.contact.display_name == "Grupo 100"


@pytest.mark.smoke
def test_names_with_quotes_backslashes_braces_and_commas_are_stored_exactly(acme_connection):
    name = 'Ana "A\\B" {x, y} NULL, ☺'
    feed(acme_connection, incoming("N1", chat=PN_ANA, push_name=name))
    contact = Contact.objects.unscoped().get()
    assert contact.push_name == name and contact.phone_number == "+5511987654321"


@pytest.mark.django_db(transaction=True)
def test_a_jid_another_process_claims_first_goes_to_its_contact_and_ours_is_dropped(acme_connection):
    if connection.vendor != "postgresql":
        pytest.fail("PostgreSQL-only test run on another database (not part of the smoke set)")
    theirs = Contact.objects.create(tenant=acme_connection.tenant, push_name="Ana (other process)")
    claimed, release = threading.Event(), threading.Event()

    def other_process():
        # Claims PN_ANA in a transaction that stays open until the ingest below has read the
        # identities (it does not see the claim yet) and waits on the unique index.
        try:
            with transaction.atomic():
                ContactIdentity.objects.create(tenant=acme_connection.tenant, contact=theirs, jid=PN_ANA, kind="pn")
                claimed.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=other_process)
    thread.start()
    claimed.wait(10)
    threading.Timer(0.5, release.set).start()
    started = time.monotonic()
    summary = feed(acme_connection, incoming("R1", chat=PN_ANA))
    thread.join()
    assert time.monotonic() - started >= 0.4  # it did wait for the other process's claim
    assert summary.failed == 0 and summary.saved == 1
    conv = Conversation.objects.unscoped().get()
    assert conv.contact_id == theirs.pk and conv.messages.count() == 1
    # The contact this batch created lost its only JID and is gone; no JID has two contacts.
    assert list(Contact.objects.unscoped().values_list("pk", flat=True)) == [theirs.pk]
    assert list(ContactIdentity.objects.unscoped().values_list("jid", "contact_id")) == [(PN_ANA, theirs.pk)]
