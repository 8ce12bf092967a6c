"""Exact query counts of the inbox pages and the live list rows (issue 11 item 6), with data made the way
production makes it: messages journaled as neonize events and processed, labels, assignments, notes and
replies through their actions. Each count is pinned at two sizes, so a query per row fails the test.

Also: a live list row (inbox.rows, pushed by inbox.list_coalescer) is byte for byte the page's row.
"""

import re

import pytest
from django.urls import reverse
from django.utils import translation

from config.redis import redis_client
from connections import actions as connection_actions
from inbox import actions, labels, notes
from inbox.list_coalescer import _key, flush_list_updates
from inbox.models import Conversation
from inbox.rendering import render_conversation_rows
from inbox.selectors import conversations_for_rows
from tests.sync.helpers import T0, feed, incoming

pytestmark = pytest.mark.django_db


def chat(i: int) -> str:
    return f"55119{i:08d}@s.whatsapp.net"


def grow(connection, agent, start: int, n: int, label_pool) -> list[Conversation]:
    """n more customers writing in (two messages each, journaled and processed), each conversation with a
    label, every other one assigned, a reply and a note mentioning the agent on every third."""
    events = []
    for i in range(start, start + n):
        events += [incoming(f"IN{i}A", f"hello {i}", ts=T0 + 60 * i, chat=chat(i), push_name=f"Customer {i}"),
                   incoming(f"IN{i}B", f"*still* there? {i}", ts=T0 + 60 * i + 30, chat=chat(i))]
    summary = feed(connection, *events)
    assert summary.saved == 2 * n
    chats = [chat(i) for i in range(start, start + n)]
    convs = list(Conversation.objects.for_tenant(connection.tenant_id).filter(chat_jid__in=chats))
    for k, conv in enumerate(convs):
        labels.do_add_label(conv, label_pool[k % len(label_pool)], acting_user=agent)
        if k % 2 == 0:
            actions.do_assign_conversation(conv, agent, acting_user=agent)
        if k % 3 == 0:
            actions.do_queue_reply(conv, agent, f"on it, {k}")
            notes.do_add_note(conv, agent, f"@{agent.get_username()} look at this one")
    return convs


@pytest.fixture
def tenant_data(acme, acme_owner, acme_connection):
    pool = [labels.do_create_label(acme, name, color) for name, color in (("VIP", "red"), ("Billing", "blue"))]
    convs = grow(acme_connection, acme_owner, 0, 5, pool)
    return {"pool": pool, "convs": convs}


def exact_counts(client, django_assert_num_queries, pages: dict[str, str], counts: dict[str, int]):
    for name, url in pages.items():
        with django_assert_num_queries(counts[name]):
            response = client.get(url)
        assert response.status_code == 200, name


# What each page reads (the session, the user, and the membership with its tenant and the user's profile
# come first on every page):
PAGE_QUERIES = {
    # + numbers, sync runs, labels, the list (contact, number and assignee joined), its rows' labels
    "inbox": 8,
    # + the list and its rows' labels
    "list": 5,
    # + the label filter's list (a subquery) and its rows' labels
    "label": 5,
    # + the search's list (one UNION of index-backed branches) and its rows' labels
    "search": 5,
    # + the conversation, numbers, sync runs, labels (each saying if it is on the conversation), the list,
    #   its rows' labels, the thread's messages (sender and media joined), its notes, members, the
    #   contact panel's identities and other conversations
    "conversation": 14,
    # the thread alone, as a live refresh fetches it: + the conversation, messages, notes, members, the
    # contact panel (2), the label bar
    "thread": 10,
    # + the user's mentions with their notes, authors and conversations joined
    "mentions": 4,
    # + numbers, their latest state changes, active sync runs, per-hour state changes and messages (the
    #   charts), state changes, journal backlog, open alerts and media per number, recent sync runs, stored
    #   media bytes, open alerts, the user's alert e-mail opt-out, purge jobs (owners and admins)
    "numbers": 17,
}


def test_page_query_counts_are_exact_and_do_not_grow_with_rows(client, acme, acme_owner, acme_connection, tenant_data,
                                                               django_assert_num_queries):
    client.force_login(acme_owner)
    pool, conv = tenant_data["pool"], tenant_data["convs"][0]
    pages = {
        "inbox": reverse("inbox", args=["acme"]),
        "list": reverse("conversation_list", args=["acme"]) + "?status=all&scope=mine",
        "label": reverse("conversation_list", args=["acme"]) + f"?status=all&label={pool[0].pk}",
        "search": reverse("conversation_list", args=["acme"]) + "?status=all&q=still",
        "conversation": reverse("conversation", args=["acme", conv.pk]),
        "thread": reverse("thread_messages", args=["acme", conv.pk]),
        "mentions": reverse("mentions", args=["acme"]),
        "numbers": reverse("connections", args=["acme"]),
    }
    exact_counts(client, django_assert_num_queries, pages, PAGE_QUERIES)
    first = client.get(pages["inbox"]).content.decode()
    assert first.count('class="conv-row') == 5 and first.count('class="label-chip label-') == 5

    # Ten times the conversations, more numbers with state changes, more messages in the open thread.
    grow(acme_connection, acme_owner, 5, 45, pool)
    feed(acme_connection, *[incoming(f"MORE{i}", f"more {i}", ts=T0 + 30_000 + i, chat=chat(0)) for i in range(20)])
    for n in range(3):
        number = connection_actions.check_create_connection(acme, name=f"Line {n}", transport="simulator", user=acme_owner)
        connection_actions.do_record_event(number, "disconnected", f"reason {n}")
    exact_counts(client, django_assert_num_queries, pages, PAGE_QUERIES)
    assert client.get(pages["inbox"]).content.decode().count('class="conv-row') == 50
    assert client.get(pages["search"]).content.decode().count('class="conv-row') == 50


def test_live_list_flush_renders_any_number_of_rows_in_three_queries(acme, acme_owner, acme_connection, tenant_data,
                                                                     django_assert_num_queries):
    pending = _key("pending", acme.pk)
    r = redis_client()
    for convs in (tenant_data["convs"], grow(acme_connection, acme_owner, 5, 30, tenant_data["pool"])):
        r.sadd(pending, *[c.pk for c in convs])
        # the conversations, their labels, the tenant's slug; then every language renders without queries
        with django_assert_num_queries(3):
            assert flush_list_updates(acme.pk) == len(convs)


@pytest.mark.parametrize("language", ["en", "pt-br"])
def test_a_live_row_is_the_pages_row(client, acme, acme_owner, acme_connection, tenant_data, language):
    """The page and the live push render one template from one row builder: same bytes, but for the
    live row's data-upsert attribute."""
    client.force_login(acme_owner)
    html = client.get(reverse("conversation_list", args=["acme"]) + "?status=all",
                      HTTP_ACCEPT_LANGUAGE=language).content.decode()
    # What the live flush reads: only the columns a row prints (inbox.selectors.conversations_for_rows)
    convs = conversations_for_rows(acme.pk, Conversation.objects.for_tenant(acme).values_list("pk", flat=True))
    convs.sort(key=lambda c: c.last_message_at, reverse=True)
    with translation.override(language):
        live = render_conversation_rows(convs, "acme", live=True)
    page_rows = re.findall(r'<li id="conv-.*?</li>', html, re.S)
    live_rows = re.findall(r'<li id="conv-.*?</li>', live, re.S)
    assert len(page_rows) == 5 and [row.replace('data-upsert="list"', "") for row in live_rows] == page_rows
    if language == "pt-br":
        assert "Sem responsável" in html and "Aberta" in html  # unassigned, the status
        assert 'aria-label="2 não lidas"' in html  # two unread messages per conversation, the plural translated


def bubbles_of_every_kind(acme_connection, agent):
    """A group thread with a message of each shape a bubble has (inbox.bubbles), hostile text where text is
    printed."""
    from django.utils import timezone

    from inbox.models import MediaFile
    from tests.factories import ConversationFactory, MessageFactory

    conv = ConversationFactory(connection=acme_connection, is_group=True)
    evil = '<img src=x onerror=alert(1)> "quoted" & \'single\''
    now = timezone.now()
    made = [
        MessageFactory(conversation=conv, body=f"*bold* _it_ {evil} https://example.com/a?b=1&c=2", sender_name=evil),
        MessageFactory(conversation=conv, body="no name", sender_name="", sender_jid="5511@s.whatsapp.net"),
        MessageFactory(conversation=conv, body="quoting", quoted_body=(evil * 6)[:300], reactions={"a@lid": "👍", "b@lid": "👍",
                                                                                          "c@lid": "❤", "d@lid": ""}),
        MessageFactory(conversation=conv, body="quoting a lost one", quoted_external_id="3EB0X"),
        MessageFactory(conversation=conv, body="changed", edited_at=now),
        MessageFactory(conversation=conv, body="secret", deleted_at=now, edited_at=now),
        MessageFactory(conversation=conv, direction="out", status="read", body="from the phone"),
        MessageFactory(conversation=conv, direction="out", status="delivered", body="from an agent", sender_user=agent),
        MessageFactory(conversation=conv, direction="out", status="failed", body="bounced", error=evil, sender_user=agent),
        MessageFactory(conversation=conv, type="image", body="look", media_filename="pic.jpg", media_size=2048),
        MessageFactory(conversation=conv, type="document", body="", media_filename=evil, media_size=4096),
    ]
    MediaFile.objects.for_tenant(conv.tenant_id).create(
        tenant_id=conv.tenant_id, message=made[-2], connection=acme_connection, kind="image", state="fetched",
        mimetype="image/jpeg", size=2048, thumbnail_name="t.jpg")
    MediaFile.objects.for_tenant(conv.tenant_id).create(
        tenant_id=conv.tenant_id, message=made[-1], connection=acme_connection, kind="document", state="failed",
        error=evil)
    return conv, made


@pytest.mark.parametrize("language", ["en", "pt-br"])
def test_a_live_message_is_the_pages_message(client, acme, acme_owner, acme_connection, language,
                                             django_assert_num_queries):
    """The thread page and the live push render a bubble with one function (inbox.bubbles), the push from a
    query of only the columns a bubble reads: same bytes, but for the live bubble's data-upsert attribute, for
    every shape of message, in one query whatever the number of messages."""
    from inbox.rendering import render_message
    from inbox.selectors import messages_for_bubbles

    conv, made = bubbles_of_every_kind(acme_connection, acme_owner)
    client.force_login(acme_owner)
    html = client.get(reverse("conversation", args=["acme", conv.pk]), HTTP_ACCEPT_LANGUAGE=language).content.decode()
    with django_assert_num_queries(1), translation.override(language):
        live = "".join(render_message(m, live=True) for m in messages_for_bubbles(acme.pk, [m.pk for m in made]))
    page_bubbles = re.findall(r'<article id="msg-.*?</article>', html, re.S)
    live_bubbles = re.findall(r'<article id="msg-.*?</article>', live, re.S)
    assert len(page_bubbles) == len(made)
    assert [b.replace(' data-upsert="thread"', "") for b in live_bubbles] == page_bubbles
    assert "<img src=x" not in live and "onerror=alert(1)&gt;" in live  # hostile text escaped everywhere
    assert '<a href="https://example.com/a?b=1&amp;c=2" target="_blank"' in live and "<strong>bold</strong>" in live
    if language == "pt-br":
        assert "Pelo celular" in live and "Não enviada" in live  # "From the phone", "Not sent"
