"""A conversation-list row's HTML (inbox.rows.rows_html, built in Python for the pages and the live pushes):
whatever a customer, an agent or an admin typed is escaped; the open conversation's row is the active one."""

import re

import pytest
from django.urls import reverse

from inbox import actions, labels
from inbox.models import Conversation
from inbox.rendering import render_conversation_rows
from inbox.selectors import conversations_for_rows
from tests.factories import MembershipFactory, UserFactory
from tests.sync.helpers import T0, feed, incoming

pytestmark = pytest.mark.django_db

HOSTILE = """<script>alert('x')</script> & "quoted" """


def rows_of(html: str) -> dict[str, str]:
    return {m.group(1): m.group(0) for m in re.finditer(r'<li id="conv-(\d+)".*?</li>', html, re.S)}


def test_every_typed_value_is_escaped_in_the_page_and_in_the_pushed_row(client, acme, acme_owner, acme_connection):
    acme_connection.name = f"Suporte {HOSTILE}"
    acme_connection.save(update_fields=["name"])
    feed(acme_connection, incoming("ROW1", f"preview {HOSTILE}", ts=T0, chat="5511988887777@s.whatsapp.net",
                                   push_name=f"Maria {HOSTILE}"))
    conv = Conversation.objects.for_tenant(acme).get()
    label = labels.do_create_label(acme, f"VIP {HOSTILE}"[:40], "red")
    labels.do_add_label(conv, label, acting_user=acme_owner)
    agent = UserFactory(username="o'brien<b>")
    MembershipFactory(user=agent, tenant=acme)
    actions.do_assign_conversation(conv, agent, acting_user=acme_owner)

    client.force_login(acme_owner)
    page = client.get(reverse("conversation_list", args=["acme"]) + "?status=all").content.decode()
    live = render_conversation_rows(conversations_for_rows(acme.pk, [conv.pk]), "acme", live=True)
    for html in (rows_of(page)[str(conv.pk)], live):
        assert "<script>" not in html and "<b>" not in html and "o'brien" not in html
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;quoted&quot;" in html
        assert 'class="conv-name">Maria &lt;script&gt;' in html
        assert 'class="conv-preview">preview &lt;script&gt;' in html
        assert 'class="meta-number muted">Suporte &lt;script&gt;' in html
        assert 'class="label-chip label-red">VIP &lt;script&gt;' in html
        assert "→ o&#x27;brien&lt;b&gt;" in html
        assert f'href="/t/acme/c/{conv.pk}/"' in html and f'data-labels=" {label.pk} "' in html
    assert 'data-upsert="list"' in live and 'data-upsert="list"' not in page


def test_the_open_conversations_row_alone_is_active(client, acme, acme_owner, acme_connection):
    feed(acme_connection, *(incoming(f"ACT{i}", "oi", ts=T0 + i, chat=f"55119{i:08d}@s.whatsapp.net") for i in range(3)))
    convs = list(Conversation.objects.for_tenant(acme).order_by("pk"))
    client.force_login(acme_owner)
    page = client.get(reverse("conversation", args=["acme", convs[1].pk])).content.decode()
    rows = rows_of(page)
    assert set(rows) == {str(c.pk) for c in convs}
    active = [pk for pk, html in rows.items() if "is-active" in html.split(">", 1)[0]]
    assert active == [str(convs[1].pk)]
    unread = [pk for pk, html in rows.items() if "is-unread" in html.split(">", 1)[0]]
    assert sorted(unread) == sorted(str(c.pk) for c in convs)  # each has one unread message
    listing = client.get(reverse("conversation_list", args=["acme"]) + "?status=all").content.decode()
    assert "is-active" not in listing
