"""Canned responses: a team's saved replies, searched from the reply box with variables filled in."""

import pytest
from django.urls import reverse

from inbox import canned
from inbox.models import CannedResponse
from tests.factories import ContactFactory, ConversationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def conv(acme_connection):
    contact = ContactFactory(tenant=acme_connection.tenant, display_name="Maria Souza", phone_number="+5511987654321")
    return ConversationFactory(connection=acme_connection, contact=contact)


def test_members_add_canned_responses_and_the_slash_menu_fills_the_variables(client, acme, acme_agent, conv):
    client.force_login(acme_agent)
    create = reverse("canned_create", args=["acme"])
    assert client.post(create, {"shortcut": "/greeting", "body": "Olá {{contact_first_name}}! Sou {{ agent_name }} da "
                                                                 "{{team_name}}. {{unknown}}"}).status_code == 302
    assert client.post(create, {"shortcut": "goodbye", "body": "Tchau, {{contact_name}} ({{contact_phone}})"}).status_code == 302
    taken = client.post(create, {"shortcut": "GREETING", "body": "x"})
    assert taken.status_code == 422 and "is taken" in taken.content.decode()
    assert client.post(create, {"shortcut": "has space", "body": "x"}).status_code == 422
    assert client.post(create, {"shortcut": "empty", "body": "  "}).status_code == 422

    url = reverse("canned_search", args=["acme", conv.pk])
    html = client.get(url, {"q": "gree"}).content.decode()
    assert "/greeting" in html and "/goodbye" not in html
    assert 'data-text="Olá Maria! Sou acme-agent da Acme. {{unknown}}"' in html
    html = client.get(url, {"q": ""}).content.decode()
    assert html.index("/goodbye") < html.index("/greeting")
    assert "Tchau, Maria Souza (+5511987654321)" in html
    assert "No canned response matches" in client.get(url, {"q": "zzz"}).content.decode()


def test_variables_are_escaped_in_the_menu(client, acme, acme_agent, acme_connection):
    contact = ContactFactory(tenant=acme, display_name='<img src=x onerror="alert(1)">')
    conv = ConversationFactory(connection=acme_connection, contact=contact)
    canned.do_create_canned(acme, "hi", "Hi {{contact_name}}")
    client.force_login(acme_agent)
    html = client.get(reverse("canned_search", args=["acme", conv.pk]), {"q": "hi"}).content.decode()
    assert "<img" not in html and "&lt;img" in html


def test_canned_responses_are_tenant_isolated(client, acme, globex, globex_owner, conv):
    ours = canned.do_create_canned(acme, "secret", "acme only")
    canned.do_create_canned(globex, "secret", "globex's own")  # the same shortcut in another team
    client.force_login(globex_owner)
    assert client.get(reverse("canned_search", args=["globex", conv.pk])).status_code == 404  # acme's conversation
    assert client.post(reverse("canned_delete", args=["globex", ours.pk])).status_code == 404
    assert "acme only" not in client.get(reverse("canned", args=["globex"])).content.decode()
    assert CannedResponse.objects.for_tenant(acme).filter(pk=ours.pk).exists()


def test_the_thread_says_where_to_search(client, acme_agent, conv):
    client.force_login(acme_agent)
    html = client.get(reverse("conversation", args=["acme", conv.pk])).content.decode()
    assert f'id="canned-config" data-url="{reverse("canned_search", args=["acme", conv.pk])}"' in html
