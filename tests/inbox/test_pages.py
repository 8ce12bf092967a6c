"""The inbox pages through Django's test client: access, filters, search, paging, actions."""

import pytest
from django.urls import reverse

from inbox.actions import MAX_REPLY_LENGTH
from inbox.models import Conversation, Message
from tests.factories import PASSWORD, ConnectionFactory, ContactFactory, ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db


def tenant_urls(slug, conv_id, conn_id):
    return [
        ("get", reverse("inbox", args=[slug])),
        ("get", reverse("conversation_list", args=[slug])),
        ("get", reverse("conversation", args=[slug, conv_id])),
        ("get", reverse("thread_messages", args=[slug, conv_id])),
        ("post", reverse("reply", args=[slug, conv_id])),
        ("post", reverse("assign", args=[slug, conv_id])),
        ("post", reverse("set_status", args=[slug, conv_id])),
        ("post", reverse("mark_read", args=[slug, conv_id])),
        ("post", reverse("request_history", args=[slug, conv_id])),
        ("get", reverse("connections", args=[slug])),
        ("post", reverse("connection_action", args=[slug, conn_id])),
        ("post", reverse("connection_pair", args=[slug, conn_id])),
        ("get", reverse("connection_pairing", args=[slug, conn_id])),
    ]


@pytest.mark.smoke
def test_login_picker_and_tenant_home(client, acme_agent, acme_connection):
    page = client.get(reverse("login"))
    assert page.status_code == 200 and b'name="password"' in page.content
    bad = client.post(reverse("login"), {"username": "acme-agent", "password": "wrong"})
    assert bad.status_code == 200 and b"alert-error" in bad.content
    ok = client.post(reverse("login"), {"username": "acme-agent", "password": PASSWORD})
    assert ok.status_code == 302 and ok.url == reverse("tenant_picker")
    # One tenant: straight to its inbox.
    assert client.get(reverse("tenant_picker")).url == reverse("inbox", args=["acme"])
    home = client.get(reverse("inbox", args=["acme"]))
    assert home.status_code == 200 and b"Acme" in home.content
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("inbox", args=["acme"])).status_code == 302


def test_picker_lists_every_tenant_of_a_user(client, acme_owner, globex):
    from tests.factories import MembershipFactory

    MembershipFactory(user=acme_owner, tenant=globex, role="agent")
    client.force_login(acme_owner)
    page = client.get(reverse("tenant_picker"))
    assert page.status_code == 200
    assert reverse("inbox", args=["acme"]).encode() in page.content
    assert reverse("inbox", args=["globex"]).encode() in page.content


@pytest.mark.smoke
def test_tenant_isolation_every_url(client, acme_agent, acme_owner, globex_owner, acme_connection):
    conv = ConversationFactory(connection=acme_connection)
    urls = tenant_urls("acme", conv.pk, acme_connection.pk)
    for method, url in urls:  # anonymous: to the login page
        resp = getattr(client, method)(url)
        assert resp.status_code == 302 and resp.url.startswith(reverse("login")), url
    client.force_login(globex_owner)
    for method, url in urls:  # another tenant's user: 404, never a hint that acme exists
        assert getattr(client, method)(url).status_code == 404, url
    # globex's own slug with acme's ids: 404 through the access helpers.
    for method, url in tenant_urls("globex", conv.pk, acme_connection.pk):
        if f"/{conv.pk}/" in url or f"/{acme_connection.pk}/" in url:
            assert getattr(client, method)(url).status_code == 404, url
    client.force_login(acme_agent)
    for method, url in urls:
        if "/connections/" in url:  # agents may not manage numbers
            assert getattr(client, method)(url).status_code == 403, url
    assert client.get(reverse("inbox", args=["acme"])).status_code == 200


def test_list_filters_and_search(client, acme_agent, acme_owner, acme_connection, make_conversations):
    other_number = ConnectionFactory(tenant=acme_connection.tenant, name="Sales")
    mine, unassigned, pending = make_conversations(3)
    (elsewhere,) = make_conversations(1, connection=other_number)
    Conversation.objects.unscoped().filter(pk=mine.pk).update(assignee=acme_agent)
    Conversation.objects.unscoped().filter(pk=pending.pk).update(status="pending")
    special = ContactFactory(tenant=acme_connection.tenant, display_name="Zélia Quintana", phone_number="+5521999990000")
    by_name = ConversationFactory(connection=acme_connection, contact=special)
    by_text = make_conversations(1)[0]
    MessageFactory(conversation=by_text, body="my parcel tracking number is XK-7781")
    client.force_login(acme_agent)
    url = reverse("conversation_list", args=["acme"])

    def ids(**params):
        html = client.get(url, params).content.decode()
        return {c.pk for c in [mine, unassigned, pending, elsewhere, by_name, by_text] if f'id="conv-{c.pk}"' in html}

    assert ids() == {mine.pk, unassigned.pk, elsewhere.pk, by_name.pk, by_text.pk}  # default: open
    assert ids(status="pending") == {pending.pk}
    assert ids(status="all", scope="mine") == {mine.pk}
    assert ids(status="all", scope="unassigned") == {unassigned.pk, pending.pk, elsewhere.pk, by_name.pk, by_text.pk}
    assert ids(status="all", connection=other_number.pk) == {elsewhere.pk}
    assert ids(q="zélia") == {by_name.pk}
    assert ids(q="21999990000") == {by_name.pk}
    assert ids(q="xk-7781") == {by_text.pk}
    assert ids(q="nothing like this") == set()
    # Garbage filters are a 400 that names each bad one (tests/inbox/test_bad_parameters.py), not a 500.
    bad = client.get(url, {"status": "bogus", "connection": "x", "cursor": "nope"})
    assert bad.status_code == 400
    assert all(f"<strong>{name}</strong>" in bad.content.decode() for name in ("status", "connection", "cursor"))


def test_keyset_pagination_has_no_gaps_or_repeats(client, acme_agent, make_conversations):
    convs = make_conversations(63)
    client.force_login(acme_agent)
    url = reverse("conversation_list", args=["acme"])
    first = client.get(url)
    page = first.context["page"]
    assert len(page.items) == 50 and page.next_cursor
    second = client.get(url, {"cursor": page.next_cursor}).context["page"]
    assert second.next_cursor is None
    seen = [c.pk for c in page.items] + [c.pk for c in second.items]
    assert seen == [c.pk for c in convs]  # newest activity first, each exactly once


def _list_queries(client, django_assert_max_num_queries, url):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    assert not any("COUNT(" in q["sql"].upper() for q in ctx.captured_queries)
    return len(ctx.captured_queries)


def test_list_and_thread_query_counts_do_not_grow(client, acme_agent, make_conversations, make_messages,
                                                   django_assert_max_num_queries):
    client.force_login(acme_agent)
    small = make_conversations(10)
    make_messages(small[0], 10)
    inbox_url = reverse("inbox", args=["acme"])
    thread_url = reverse("conversation", args=["acme", small[0].pk])
    list_small = _list_queries(client, django_assert_max_num_queries, inbox_url)
    thread_small = _list_queries(client, django_assert_max_num_queries, thread_url)
    make_conversations(190)
    make_messages(small[0], 190, direction="out", status="delivered")
    list_big = _list_queries(client, django_assert_max_num_queries, inbox_url)
    thread_big = _list_queries(client, django_assert_max_num_queries, thread_url)
    assert list_big == list_small
    assert thread_big == thread_small
    assert list_small <= 8 and thread_small <= 14


def test_thread_pages_back_through_the_database(client, acme_agent, acme_connection, make_messages):
    conv = ConversationFactory(connection=acme_connection)
    msgs = make_messages(conv, 120)
    client.force_login(acme_agent)
    page = client.get(reverse("conversation", args=["acme", conv.pk]))
    shown = page.context["messages"]
    assert [m.pk for m in shown] == [m.pk for m in msgs[-50:]]
    older = client.get(reverse("thread_messages", args=["acme", conv.pk]), {"before": page.context["older_cursor"]})
    assert [m.pk for m in older.context["messages"]] == [m.pk for m in msgs[20:70]]
    oldest = client.get(reverse("thread_messages", args=["acme", conv.pk]), {"before": older.context["older_cursor"]})
    assert [m.pk for m in oldest.context["messages"]] == [m.pk for m in msgs[:20]]
    assert oldest.context["older_cursor"] is None
    # Past the oldest stored message the simulator transport can ask the phone.
    assert b"Load older messages from the phone" in oldest.content
    assert client.get(reverse("thread_messages", args=["acme", conv.pk]), {"before": "garbage"}).status_code == 400


def test_neonize_thread_says_older_history_is_not_available(client, acme_agent, acme_connection):
    acme_connection.transport = "neonize"
    acme_connection.save()
    conv = ConversationFactory(connection=acme_connection)
    MessageFactory(conversation=conv)
    client.force_login(acme_agent)
    page = client.get(reverse("conversation", args=["acme", conv.pk]))
    assert b"Older history is not available from the phone" in page.content
    resp = client.post(reverse("request_history", args=["acme", conv.pk]))
    assert b"Older history is not available from the phone" in resp.content


def test_request_history_nudges_the_runner(client, acme_agent, acme_connection, nudges, django_capture_on_commit_callbacks):
    conv = ConversationFactory(connection=acme_connection)
    client.force_login(acme_agent)
    with django_capture_on_commit_callbacks(execute=True):
        resp = client.post(reverse("request_history", args=["acme", conv.pk]))
    assert b"Asked the phone" in resp.content
    got = nudges()
    assert [(n["connection_id"], n["action"], n["payload"]["chat_jid"]) for n in got] == [
        (acme_connection.pk, "request_history", conv.chat_jid)]


@pytest.mark.smoke
def test_reply_is_queued_and_nudges_send(client, acme_agent, acme_connection, nudges, django_capture_on_commit_callbacks):
    conv = ConversationFactory(connection=acme_connection)
    client.force_login(acme_agent)
    with django_capture_on_commit_callbacks(execute=True):
        resp = client.post(reverse("reply", args=["acme", conv.pk]), {"body": "  Hello *there*\nsecond line "},
                           HTTP_HX_REQUEST="true")
    assert resp.status_code == 200
    msg = Message.objects.unscoped().get(conversation=conv)
    assert (msg.direction, msg.status, msg.body, msg.sender_user) == ("out", "queued", "Hello *there*\nsecond line", acme_agent)
    assert msg.external_id.startswith("local-")
    conv.refresh_from_db()
    assert conv.last_message_preview == "Hello *there* second line" and conv.last_message_at == msg.sent_at
    assert f'id="msg-{msg.pk}"'.encode() in resp.content and b"<strong>there</strong>" in resp.content
    assert [(n["action"], n["payload"]["message_id"]) for n in nudges() if n["connection_id"] == acme_connection.pk] == [
        ("send", msg.pk)]


def test_empty_and_overlong_replies_are_refused_and_kept(client, acme_agent, acme_connection):
    conv = ConversationFactory(connection=acme_connection)
    client.force_login(acme_agent)
    url = reverse("reply", args=["acme", conv.pk])
    empty = client.post(url, {"body": "   \n "}, HTTP_HX_REQUEST="true")
    assert empty.status_code == 422 and b"Type a message before sending." in empty.content
    long_text = "x" * (MAX_REPLY_LENGTH + 1)
    too_long = client.post(url, {"body": long_text}, HTTP_HX_REQUEST="true")
    assert too_long.status_code == 422 and b"at most 4096" in too_long.content
    assert long_text.encode() in too_long.content  # the agent's text is given back, not lost
    assert not Message.objects.unscoped().filter(conversation=conv).exists()


def test_assign_status_and_read(client, acme_agent, acme_owner, acme_connection, globex_owner, nudges,
                                django_capture_on_commit_callbacks):
    conv = ConversationFactory(connection=acme_connection)
    older = MessageFactory(conversation=conv, sender_jid=conv.chat_jid)
    newest = MessageFactory(conversation=conv, sender_jid=conv.chat_jid)
    assert conv.unread_count == 2  # two live inbound messages
    client.force_login(acme_agent)
    base = ["acme", conv.pk]
    assert client.post(reverse("assign", args=base), {"assign_to_me": "1"}).status_code == 302
    conv.refresh_from_db()
    assert conv.assignee == acme_agent
    client.post(reverse("assign", args=base), {"assignee": str(acme_owner.pk)})
    conv.refresh_from_db()
    assert conv.assignee == acme_owner
    # A user of another tenant cannot be assigned.
    assert client.post(reverse("assign", args=base), {"assignee": str(globex_owner.pk)}).status_code == 400
    client.post(reverse("assign", args=base), {"assignee": ""})
    conv.refresh_from_db()
    assert conv.assignee is None
    resp = client.post(reverse("set_status", args=base), {"status": "pending"}, HTTP_HX_REQUEST="true")
    assert resp.status_code == 200 and b'aria-pressed="true">Pending' in resp.content
    assert client.post(reverse("set_status", args=base), {"status": "closed"}).status_code == 400
    conv.refresh_from_db()
    assert conv.status == "pending"
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(reverse("mark_read", args=base)).status_code == 204
    conv.refresh_from_db()
    assert conv.unread_count == 0
    got = [n for n in nudges() if n["action"] == "mark_read"]
    assert len(got) == 1
    assert sorted(got[0]["payload"]["message_ids"]) == sorted([older.external_id, newest.external_id])
    assert got[0]["payload"]["chat_jid"] == conv.chat_jid and got[0]["payload"]["sender_jid"] == conv.chat_jid


def test_untrusted_content_is_escaped_in_pages(client, acme_agent, acme_connection):
    evil = ContactFactory(tenant=acme_connection.tenant, display_name="<script>alert(1)</script>")
    conv = ConversationFactory(connection=acme_connection, contact=evil)
    MessageFactory(conversation=conv, body="<img src=x onerror=alert(1)> see javascript:alert(2) https://example.com/a")
    client.force_login(acme_agent)
    html = client.get(reverse("conversation", args=["acme", conv.pk])).content.decode()
    assert "<img src=x" not in html and "<script>alert(1)" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert '<a href="https://example.com/a" target="_blank" rel="noopener noreferrer nofollow">' in html
    assert 'href="javascript' not in html


def test_message_rendering_covers_every_kind(client, acme_agent, acme_connection):
    from django.utils import timezone

    conv = ConversationFactory(connection=acme_connection, is_group=True)
    MessageFactory(conversation=conv, type="image", body="look", media_filename="pic.jpg", media_size=2048,
                   sender_name="Bruna", quoted_body="the original", reactions={"a@s.whatsapp.net": "👍", "b@lid": "👍"})
    MessageFactory(conversation=conv, body="changed", edited_at=timezone.now())
    MessageFactory(conversation=conv, body="secret", deleted_at=timezone.now())
    MessageFactory(conversation=conv, direction="out", status="failed", error="number not on WhatsApp", body="hi")
    MessageFactory(conversation=conv, direction="out", status="read", body="seen")
    client.force_login(acme_agent)
    html = client.get(reverse("conversation", args=["acme", conv.pk])).content.decode()
    for fragment in ["Photo", "pic.jpg", "2.0\xa0KB", "Bruna", "the original", "👍 2", ">edited<", "This message was deleted",
                     "Not sent: number not on WhatsApp", 'class="tick tick-read"', 'class="tick tick-failed"']:
        assert fragment in html, fragment
    assert "secret" not in html


def test_contact_panel_shows_identities_and_other_conversations(client, acme_agent, acme_connection):
    from inbox.models import ContactIdentity

    contact = ContactFactory(tenant=acme_connection.tenant, display_name="Ana")
    ContactIdentity.objects.create(tenant=contact.tenant, contact=contact, jid="123456789@lid", kind="lid")
    conv = ConversationFactory(connection=acme_connection, contact=contact)
    second_number = ConnectionFactory(tenant=acme_connection.tenant, name="Second line")
    other = ConversationFactory(connection=second_number, contact=contact)
    client.force_login(acme_agent)
    html = client.get(reverse("conversation", args=["acme", conv.pk])).content.decode()
    assert "123456789@lid" in html and contact.phone_number in html
    assert reverse("conversation", args=["acme", other.pk]) in html and "Second line" in html


def test_assigning_to_someone_outside_the_tenant_is_refused(client, acme_agent, acme_connection, globex_owner):
    conv = ConversationFactory(connection=acme_connection)
    client.force_login(acme_agent)
    response = client.post(reverse("assign", args=["acme", conv.pk]), {"assignee": str(globex_owner.pk)},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    assert "not a member" in response.content.decode()
    conv.refresh_from_db()
    assert conv.assignee_id is None
    response = client.post(reverse("assign", args=["acme", conv.pk]), {"assignee": str(acme_agent.pk)},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    conv.refresh_from_db()
    assert conv.assignee_id == acme_agent.pk


def test_a_failed_reply_can_be_resent_and_only_a_failed_one(client, acme_agent, acme_connection, nudges,
                                                             django_capture_on_commit_callbacks):
    conv = ConversationFactory(connection=acme_connection)
    failed = MessageFactory(conversation=conv, direction="out", status="failed", external_id="local-abc",
                            error="send failed after 5 attempts: boom", send_attempts=5)
    delivered = MessageFactory(conversation=conv, direction="out", status="delivered")
    client.force_login(acme_agent)
    page = client.get(reverse("conversation", args=["acme", conv.pk])).content.decode()
    assert f'hx-post="m/{failed.pk}/resend/"' in page and f'hx-post="m/{delivered.pk}/resend/"' not in page

    url = reverse("resend_message", args=["acme", conv.pk, failed.pk])
    assert url == f"/t/acme/c/{conv.pk}/m/{failed.pk}/resend/"  # what the button's relative URL resolves to
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and 'data-status="queued"' in response.content.decode()
    failed.refresh_from_db()
    assert (failed.status, failed.send_attempts, failed.error) == ("queued", 0, "")
    assert [(n["action"], n["payload"]["message_id"]) for n in nudges() if n["connection_id"] == acme_connection.pk] == [
        ("send", failed.pk)]

    response = client.post(reverse("resend_message", args=["acme", conv.pk, delivered.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    delivered.refresh_from_db()
    assert delivered.status == "delivered"
    other = ConversationFactory(connection=acme_connection)
    assert client.post(reverse("resend_message", args=["acme", other.pk, failed.pk])).status_code == 404
