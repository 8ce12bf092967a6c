"""Inbox search: by message text, contact name, number and WhatsApp id; tenant-scoped; keyset paging
through the split (UNION of index-backed branches) query on PostgreSQL and the plain OR on SQLite."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from inbox.models import ContactIdentity, Conversation, Message
from inbox.search import reindex_messages
from inbox.selectors import MIN_TEXT_SEARCH
from tests.factories import ConnectionFactory, ContactFactory, ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db


def _world(tenant, connection_, *, offset=0):
    """The same four people in any tenant: a name, a number, a LID-only contact and a message text."""
    now = timezone.now()
    name = ContactFactory(tenant=tenant, display_name="Zélia Quintana", phone_number="+5521999990000")
    lid_only = ContactFactory(tenant=tenant, display_name="", push_name="Bob", phone_number="")
    ContactIdentity.objects.create(tenant=tenant, contact=lid_only, jid="188392750123456@lid", kind="lid")
    plain = ContactFactory(tenant=tenant, display_name="Ana Souza", phone_number="+5511933334444")
    other = ContactFactory(tenant=tenant, display_name="Carlos", phone_number="+5511977776666")
    convs = {
        "name": ConversationFactory(connection=connection_, contact=name, last_message_at=now - timedelta(minutes=1)),
        "lid": ConversationFactory(connection=connection_, contact=lid_only, chat_jid="188392750123456@lid",
                                   last_message_at=now - timedelta(minutes=2)),
        "text": ConversationFactory(connection=connection_, contact=plain),
        "other": ConversationFactory(connection=connection_, contact=other),
    }
    MessageFactory(conversation=convs["text"], body="my parcel tracking number is XK-7781, please check",
                   sent_at=now - timedelta(minutes=3))
    gone = MessageFactory(conversation=convs["other"], body="secret code QZ-5555", sent_at=now - timedelta(minutes=5))
    MessageFactory(conversation=convs["other"], body="nothing to see here", sent_at=now - timedelta(minutes=4))
    # Revoked, as sync.ingest applies a revoke: the body stays for admins, the search entry goes.
    Message.objects.unscoped().filter(pk=gone.pk).update(deleted_at=now)
    reindex_messages([gone.pk])
    return convs


@pytest.fixture
def two_worlds(acme_connection, globex):
    globex_connection = ConnectionFactory(tenant=globex, name="Globex line")
    return _world(acme_connection.tenant, acme_connection), _world(globex, globex_connection)


def _found(client, slug, q, **params):
    resp = client.get(reverse("conversation_list", args=[slug]), {"status": "all", "q": q, **params})
    assert resp.status_code == 200
    return [c.pk for c in resp.context["page"].items], resp


@pytest.mark.smoke
def test_search_by_text_name_number_and_jid_stays_in_tenant(client, acme_agent, two_worlds):
    acme, globex = two_worlds
    client.force_login(acme_agent)
    assert _found(client, "acme", "xk-7781")[0] == [acme["text"].pk]  # message text, any case
    assert _found(client, "acme", "PARCEL TRACKING")[0] == [acme["text"].pk]
    assert _found(client, "acme", "zélia")[0] == [acme["name"].pk]  # display name
    assert _found(client, "acme", "quintana")[0] == [acme["name"].pk]
    assert _found(client, "acme", "bob")[0] == [acme["lid"].pk]  # push name
    assert _found(client, "acme", "21999990000")[0] == [acme["name"].pk]  # number as stored, without +
    assert _found(client, "acme", "+55 (21) 99999-0000")[0] == [acme["name"].pk]  # number as people type it
    assert _found(client, "acme", "188392750123")[0] == [acme["lid"].pk]  # a LID identity
    # Several branches match: each conversation once, newest activity first.
    assert _found(client, "acme", "55119")[0] == [acme["text"].pk, acme["other"].pk]
    assert _found(client, "acme", "qz-5555")[0] == []  # a deleted message's text is not searchable
    assert _found(client, "acme", "nothing like this")[0] == []
    globex_ids = {c.pk for c in globex.values()}
    for q in ("xk-7781", "zélia", "21999990000", "188392750123", "bob", "55119"):
        assert not globex_ids & set(_found(client, "acme", q)[0]), q


def test_search_respects_the_other_filters(client, acme_agent, two_worlds):
    acme, _ = two_worlds
    Conversation.objects.unscoped().filter(pk=acme["text"].pk).update(status="resolved", assignee=acme_agent)
    client.force_login(acme_agent)
    assert _found(client, "acme", "xk-7781", status="open")[0] == []
    assert _found(client, "acme", "xk-7781", status="resolved")[0] == [acme["text"].pk]
    assert _found(client, "acme", "xk-7781", scope="mine")[0] == [acme["text"].pk]
    assert _found(client, "acme", "xk-7781", scope="unassigned")[0] == []


def test_short_search_matches_name_and_number_starts_only_and_says_so(client, acme_agent, two_worlds):
    acme, _ = two_worlds
    client.force_login(acme_agent)
    ids, resp = _found(client, "acme", "zé")
    assert ids == [acme["name"].pk]
    assert f"shorter than {MIN_TEXT_SEARCH} characters" in resp.content.decode()
    assert _found(client, "acme", "ua")[0] == []  # inside "Quintana"/"Souza" but not at a start
    assert _found(client, "acme", "XK")[0] == []  # message text needs 3 characters
    assert _found(client, "acme", "55")[0] == [acme["name"].pk, acme["text"].pk, acme["other"].pk]
    _, long_resp = _found(client, "acme", "zél")
    assert "search-note" not in long_resp.content.decode()


def test_search_pages_by_keyset_without_gaps_or_repeats(client, acme_agent, acme_connection):
    """More matches than a page, from two branches: the UNION's top page must equal the full order."""
    now = timezone.now()
    expected = []
    for i in range(80):
        kind = i % 3  # 0: the name matches, 1: two messages match, 2: nothing matches
        contact = ContactFactory(tenant=acme_connection.tenant, display_name=f"Walrus {i}" if kind == 0 else f"Person {i}")
        conv = ConversationFactory(connection=acme_connection, contact=contact)
        at = now - timedelta(minutes=i)
        if kind == 1:
            MessageFactory(conversation=conv, body=f"about the walrus, take {i}", sent_at=at - timedelta(seconds=1))
            MessageFactory(conversation=conv, body="and another WALRUS", sent_at=at)  # two hits: still one row
        else:
            MessageFactory(conversation=conv, body="no match here", sent_at=at)
        if kind != 2:
            expected.append(conv.pk)
    client.force_login(acme_agent)
    first, resp = _found(client, "acme", "walrus")
    cursor = resp.context["page"].next_cursor
    assert len(first) == 50 and cursor
    second, resp = _found(client, "acme", "walrus", cursor=cursor)
    assert resp.context["page"].next_cursor is None
    assert first + second == expected  # newest activity first, each exactly once


def test_search_query_count_does_not_grow(client, acme_agent, acme_connection):
    client.force_login(acme_agent)

    def queries(q):
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(reverse("conversation_list", args=["acme"]), {"status": "all", "q": q}).status_code == 200
        assert not any("COUNT(" in x["sql"].upper() for x in ctx.captured_queries)
        return len(ctx.captured_queries)

    ConversationFactory(connection=acme_connection, contact=ContactFactory(tenant=acme_connection.tenant,
                                                                           display_name="Otter 0"))
    few = queries("otter")
    for i in range(1, 30):
        conv = ConversationFactory(connection=acme_connection,
                                   contact=ContactFactory(tenant=acme_connection.tenant, display_name=f"Otter {i}"))
        MessageFactory(conversation=conv, body="an otter again")
    assert queries("otter") == few
