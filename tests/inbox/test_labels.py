"""Labels: per tenant, colored, added to and removed from conversations, a filter of the list, live."""

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.urls import reverse

from inbox import labels
from inbox.models import ConversationLabel, Label
from tests.factories import ConversationFactory
from tests.inbox.test_live import receive_until, session_cookie, socket


@pytest.mark.django_db
def test_managers_create_labels_and_agents_put_them_on_conversations(client, acme, acme_owner, acme_agent,
                                                                     make_conversations):
    vip_conv, other = make_conversations(2)
    client.force_login(acme_agent)
    assert client.post(reverse("label_create", args=["acme"]), {"name": "VIP", "color": "red"}).status_code == 403
    client.force_login(acme_owner)
    assert client.post(reverse("label_create", args=["acme"]), {"name": " VIP ", "color": "red"}).status_code == 302
    dup = client.post(reverse("label_create", args=["acme"]), {"name": "vip", "color": "blue"})
    assert dup.status_code == 422 and "already a label named vip" in dup.content.decode()
    bad = client.post(reverse("label_create", args=["acme"]), {"name": "x", "color": "#fff; evil"})
    assert bad.status_code == 422
    vip = Label.objects.for_tenant(acme).get()
    assert (vip.name, vip.color) == ("VIP", "red")

    client.force_login(acme_agent)
    resp = client.post(reverse("conversation_label_add", args=["acme", vip_conv.pk]), {"label": vip.pk},
                       HTTP_HX_REQUEST="true")
    html = resp.content.decode()
    assert resp.status_code == 200 and 'class="inline-form label-chip label-red"' in html and "VIP" in html
    # Twice is once.
    client.post(reverse("conversation_label_add", args=["acme", vip_conv.pk]), {"label": vip.pk})
    assert ConversationLabel.objects.for_tenant(acme).count() == 1

    url = reverse("conversation_list", args=["acme"])
    filtered = client.get(url, {"label": vip.pk}).content.decode()
    assert f'id="conv-{vip_conv.pk}"' in filtered and f'id="conv-{other.pk}"' not in filtered
    assert f'data-labels=" {vip.pk} "' in filtered and f'data-label="{vip.pk}"' in filtered
    page = client.get(reverse("inbox", args=["acme"])).content.decode()
    assert 'id="id_label"' in page and "label-chip label-red" in page

    client.post(reverse("conversation_label_remove", args=["acme", vip_conv.pk, vip.pk]))
    assert f'id="conv-{vip_conv.pk}"' not in client.get(url, {"label": vip.pk}).content.decode()


@pytest.mark.django_db
def test_labels_are_tenant_isolated(client, acme, globex, globex_owner, acme_connection):
    conv = ConversationFactory(connection=acme_connection)
    acme_label = labels.do_create_label(acme, "Billing", "blue")
    globex_label = labels.do_create_label(globex, "Billing", "green")  # the same name in another tenant is fine
    client.force_login(globex_owner)
    assert client.post(reverse("conversation_label_add", args=["globex", conv.pk]),
                       {"label": globex_label.pk}).status_code == 404  # acme's conversation
    assert client.post(reverse("label_delete", args=["globex", acme_label.pk])).status_code == 404
    assert client.get(reverse("conversation_list", args=["globex"]), {"label": acme_label.pk}).status_code == 200
    assert client.get(reverse("labels", args=["acme"])).status_code == 404


@pytest.mark.django_db
def test_a_label_of_another_tenant_cannot_be_put_on_a_conversation(client, acme, globex, acme_agent, acme_connection):
    conv = ConversationFactory(connection=acme_connection)
    theirs = labels.do_create_label(globex, "Theirs", "pink")
    client.force_login(acme_agent)
    assert client.post(reverse("conversation_label_add", args=["acme", conv.pk]), {"label": theirs.pk}).status_code == 404
    assert not ConversationLabel.objects.unscoped().exists()


@pytest.mark.django_db
def test_the_list_pays_one_query_for_labels_whatever_the_page_size(client, acme, acme_agent, make_conversations):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    vip = labels.do_create_label(acme, "VIP", "red")
    client.force_login(acme_agent)
    convs = make_conversations(3)
    for c in convs:
        labels.do_add_label(c, vip)
    url = reverse("conversation_list", args=["acme"])
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    for c in make_conversations(30):
        labels.do_add_label(c, vip)
    with CaptureQueriesContext(connection) as many:
        html = client.get(url).content.decode()
    assert len(many) == len(few) and html.count("label-chip label-red") == 33


@pytest.mark.django_db(transaction=True)
def test_labels_reach_other_agents_live(client, acme, acme_agent, acme_owner, acme_connection):
    conv = ConversationFactory(connection=acme_connection)
    vip = labels.do_create_label(acme, "VIP", "purple")
    cookie = session_cookie(client, acme_owner)

    async def scenario():
        viewer = socket(f"/ws/t/acme/?conversation={conv.pk}", cookie)
        assert (await viewer.connect())[0]
        await sync_to_async(labels.do_add_label)(conv, vip, acting_user=acme_agent)
        # The list row (published first, on the inbox group), then the thread's label bar.
        row = await receive_until(viewer, f'id="conv-{conv.pk}"')
        assert f'data-labels=" {vip.pk} "' in row and 'data-upsert="list"' in row
        bar = await receive_until(viewer, f'id="conv-labels-{conv.pk}"')
        assert 'hx-swap-oob="true"' in bar and "label-purple" in bar
        await viewer.disconnect()

    async_to_sync(scenario)()
