"""Private notes inside the thread: never sent, visually distinct, live, tenant-isolated; @mentions notify."""

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from inbox import notes
from inbox.models import Message, Note, NoteMention
from tests.factories import ConversationFactory, MembershipFactory, MessageFactory, UserFactory
from tests.inbox.test_live import receive_until, session_cookie, socket


@pytest.fixture
def conv(acme_connection):
    return ConversationFactory(connection=acme_connection)


@pytest.mark.django_db
def test_a_note_is_shown_in_the_thread_in_time_order_and_never_queued(client, acme_agent, conv):
    now = timezone.now()
    MessageFactory(conversation=conv, sent_at=now - timedelta(minutes=10), body="first")
    MessageFactory(conversation=conv, sent_at=now + timedelta(minutes=10), body="last")
    client.force_login(acme_agent)
    resp = client.post(reverse("add_note", args=["acme", conv.pk]), {"body": "customer is a VIP, be nice"},
                       HTTP_HX_REQUEST="true")
    assert resp.status_code == 200 and 'data-upsert="thread"' in resp.content.decode()
    note = Note.objects.for_tenant(conv.tenant_id).get()
    assert note.author == acme_agent and note.body == "customer is a VIP, be nice"
    assert not Message.objects.for_tenant(conv.tenant_id).filter(body__contains="VIP").exists()  # never an outbox row
    page = client.get(reverse("conversation", args=["acme", conv.pk]))
    items = page.context["messages"]
    assert [getattr(i, "body", None) for i in items] == ["first", "customer is a VIP, be nice", "last"]
    html = page.content.decode()
    assert f'id="note-{note.pk}"' in html and "Private note" in html and 'class="msg note"' in html


@pytest.mark.django_db
def test_notes_follow_their_page_when_paging_back(client, acme_agent, conv, make_messages):
    msgs = make_messages(conv, 120)  # one a minute; the newest page holds the last 50
    old_note = notes.do_add_note(conv, acme_agent, "old one")
    Note.objects.for_tenant(conv.tenant_id).filter(pk=old_note.pk).update(created_at=msgs[30].sent_at + timedelta(seconds=1))
    new_note = notes.do_add_note(conv, acme_agent, "new one")
    client.force_login(acme_agent)
    page = client.get(reverse("conversation", args=["acme", conv.pk]))
    newest = [i.pk for i in page.context["messages"] if getattr(i, "is_note", False)]
    assert newest == [new_note.pk]
    older = client.get(reverse("thread_messages", args=["acme", conv.pk]), {"before": page.context["older_cursor"]})
    assert [i.pk for i in older.context["messages"] if getattr(i, "is_note", False)] == [old_note.pk]


@pytest.mark.django_db
def test_empty_and_oversized_notes_are_refused(client, acme_agent, conv):
    client.force_login(acme_agent)
    url = reverse("add_note", args=["acme", conv.pk])
    empty = client.post(url, {"body": "   "}, HTTP_HX_REQUEST="true")
    assert empty.status_code == 422 and "Write the note" in empty.content.decode()
    huge = client.post(url, {"body": "x" * (notes.MAX_NOTE_LENGTH + 1)}, HTTP_HX_REQUEST="true")
    assert huge.status_code == 422 and not Note.objects.for_tenant(conv.tenant_id).exists()


@pytest.mark.django_db
def test_mentions_notify_members_only_and_email_them(client, acme, acme_agent, acme_owner, globex_owner, conv,
                                                     settings):
    settings.SITE_URL = "https://inbox.example.com"
    ana = MembershipFactory(user=UserFactory(username="ana.silva", email="ana@example.com"), tenant=acme).user
    body = "@Ana.Silva and @acme-admin please look; @globex-admin is not ours, mail@example.com is no mention."
    assert notes.mentioned_names(body) == ["ana.silva", "acme-admin", "globex-admin"]
    with pytest.MonkeyPatch.context() as mp:  # no task: the e-mails are sent by the call below
        mp.setattr("inbox.tasks.send_mention_emails_task.delay", lambda note_id: None)
        note = notes.check_add_note(conv, acme_agent, body + " @acme-agent")  # self-mention: no notification
    mentioned = set(NoteMention.objects.for_tenant(acme).values_list("user__username", flat=True))
    assert mentioned == {"ana.silva", "acme-admin"}
    assert notes.send_mention_emails(note.pk) == 2
    assert sorted(m.to[0] for m in mail.outbox) == ["acme-admin@example.com", "ana@example.com"]
    assert f"https://inbox.example.com/t/acme/c/{conv.pk}/" in mail.outbox[0].body
    assert notes.send_mention_emails(note.pk) == 0  # once

    client.force_login(ana)
    badge = client.get(reverse("mentions_badge", args=["acme"])).content.decode()
    assert 'data-unread="1"' in badge
    page = client.get(reverse("mentions", args=["acme"]))
    assert "please look" in page.content.decode()
    mention = NoteMention.objects.for_tenant(acme).get(user=ana)
    opened = client.post(reverse("mentions_read", args=["acme"]), {"mention": mention.pk})
    assert opened.status_code == 302 and opened.url == reverse("conversation", args=["acme", conv.pk])
    assert 'data-unread="0"' in client.get(reverse("mentions_badge", args=["acme"])).content.decode()
    # Someone else's mention id: 404, as for one that does not exist.
    other = NoteMention.objects.for_tenant(acme).get(user=acme_owner)
    assert client.post(reverse("mentions_read", args=["acme"]), {"mention": other.pk}).status_code == 404


@pytest.mark.django_db
def test_notes_are_tenant_isolated(client, globex_owner, acme_agent, conv):
    notes.do_add_note(conv, acme_agent, "acme only")
    client.force_login(globex_owner)
    assert client.post(reverse("add_note", args=["globex", conv.pk]), {"body": "x"}).status_code == 404
    assert client.post(reverse("add_note", args=["acme", conv.pk]), {"body": "x"}).status_code == 404
    assert Note.objects.unscoped().count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_note_and_its_mention_reach_other_agents_live(client, acme_agent, acme_owner, acme_connection):
    conv = ConversationFactory(connection=acme_connection)
    cookie = session_cookie(client, acme_owner)

    async def scenario():
        viewer = socket(f"/ws/t/acme/?conversation={conv.pk}", cookie)
        assert (await viewer.connect())[0]
        await sync_to_async(notes.check_add_note)(conv, acme_agent, "ping @acme-admin <b>now</b>")
        html = await receive_until(viewer, 'id="note-')
        assert 'data-upsert="thread"' in html and "&lt;b&gt;now&lt;/b&gt;" in html and "Private note" in html
        badge = await receive_until(viewer, 'id="mentions-badge-acme"')
        assert 'hx-swap-oob="true"' in badge and 'data-unread="1"' in badge
        await viewer.disconnect()

    async_to_sync(scenario)()
