"""The UI's language: the user's own choice, else the browser's, else English; pushed fragments in each
socket's language; e-mails in their reader's; dates in the language's formats (docs/i18n.md)."""

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import translation

from inbox import actions, notes
from inbox.models import UserProfile
from inbox.templatetags.inbox_tags import day_label_at
from tests.factories import ConversationFactory
from tests.inbox.test_live import receive_until, socket
from tests.inbox.test_live_access import logged_in


def page_text(response) -> str:
    return response.content.decode()


@pytest.mark.django_db
@pytest.mark.smoke
def test_english_by_default_portuguese_from_the_browser(client, acme_agent, acme_connection):
    client.force_login(acme_agent)
    english = page_text(client.get(reverse("inbox", args=["acme"])))
    assert '<html lang="en">' in english and "Conversations" in english and "New conversation" in english
    portuguese = page_text(client.get(reverse("inbox", args=["acme"]), HTTP_ACCEPT_LANGUAGE="pt-BR,pt;q=0.9"))
    assert '<html lang="pt-br">' in portuguese
    assert "Conversas" in portuguese and "Nova conversa" in portuguese and "New conversation" not in portuguese
    # Anonymous pages too: the login page.
    login = page_text(Client().get(reverse("login"), HTTP_ACCEPT_LANGUAGE="pt-BR"))
    assert "Entrar" in login and "Usuário" in login and "Log in" not in login


@pytest.mark.django_db
def test_the_users_choice_wins_over_the_browser_and_is_saved_on_preferences(client, acme_agent, acme_connection):
    client.force_login(acme_agent)
    url = reverse("preferences", args=["acme"])
    response = client.post(url, {"language": "pt-br", "user_time_zone": ""}, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 302
    assert UserProfile.objects.get(user=acme_agent).language == "pt-br"
    page = page_text(client.get(url, HTTP_ACCEPT_LANGUAGE="en-US,en"))
    assert "Preferências" in page and "Idioma" in page and 'value="pt-br" lang="pt-br" selected' in page
    # Pages outside a tenant (the tenant picker) follow it as well.
    picker = page_text(client.get(reverse("tenant_picker") + "?pick=1", HTTP_ACCEPT_LANGUAGE="en"))
    assert "Escolha uma equipe" in picker
    # Back to "the browser's": the header decides again.
    client.post(url, {"language": "", "user_time_zone": ""})
    assert "Preferences" in page_text(client.get(url, HTTP_ACCEPT_LANGUAGE="en"))
    assert "Preferências" in page_text(client.get(url, HTTP_ACCEPT_LANGUAGE="pt-BR"))


@pytest.mark.django_db
def test_an_unknown_language_is_refused_and_nothing_is_saved(client, acme_agent, acme_connection):
    client.force_login(acme_agent)
    response = client.post(reverse("preferences", args=["acme"]), {"language": "xx", "user_time_zone": "UTC"})
    assert response.status_code == 422 and "Unknown language: xx." in page_text(response)
    assert not UserProfile.objects.filter(user=acme_agent).exists()


@pytest.mark.django_db
def test_the_language_costs_no_query_on_tenant_pages(client, acme_agent, acme_connection):
    """The profile comes with the membership (inbox.access): choosing a language adds no query."""
    client.force_login(acme_agent)
    url = reverse("conversation_list", args=["acme"])
    client.get(url)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as before:
        client.get(url)
    UserProfile.objects.create(user=acme_agent, language="pt-br")
    with CaptureQueriesContext(connection) as after:
        response = client.get(url)
    assert len(after) == len(before)
    assert "Nenhuma conversa aqui ainda." in page_text(response)


@pytest.mark.django_db
def test_errors_from_actions_and_forms_are_translated(client, acme_agent, acme_connection):
    conv = ConversationFactory(connection=acme_connection)
    UserProfile.objects.create(user=acme_agent, language="pt-br")
    client.force_login(acme_agent)
    response = client.post(reverse("reply", args=["acme", conv.pk]), {"body": "   "})
    assert "Digite uma mensagem antes de enviar." in page_text(response)
    response = client.post(reverse("new_conversation", args=["acme"]),
                           {"connection": acme_connection.pk, "phone": "abc"})
    assert "não é um número de telefone" in page_text(response)
    response = client.get(reverse("inbox", args=["acme"]) + "?status=nope")
    assert response.status_code == 400 and "Esse link tem um valor que não conseguimos usar" in page_text(response)


@pytest.mark.django_db
def test_mention_emails_are_in_each_readers_language(acme_owner, acme_agent, acme_connection):
    conv = ConversationFactory(connection=acme_connection)
    acme_agent.email, acme_owner.email = "agent@example.com", "owner@example.com"
    acme_agent.save()
    acme_owner.save()
    UserProfile.objects.create(user=acme_agent, language="pt-br")
    note = notes.check_add_note(conv, acme_owner, "@acme-agent please look")
    notes.send_mention_emails(note.pk)
    [email] = mail.outbox
    assert email.to == ["agent@example.com"]
    assert email.subject.startswith("[Inbox] acme-admin mencionou você:") and "Abrir:" in email.body


def test_dates_follow_the_language():
    zone = ZoneInfo("America/Sao_Paulo")
    now = datetime(2026, 1, 12, 15, 0, tzinfo=zone)
    day = datetime(2026, 1, 9, 10, 0, tzinfo=zone)
    yesterday = datetime(2026, 1, 11, 10, 0, tzinfo=zone)
    with translation.override("en"):
        assert day_label_at(day, now) == "Friday, 09 January 2026"
        assert day_label_at(yesterday, now) == "Yesterday"
    with translation.override("pt-br"):
        assert day_label_at(day, now).lower() == "sexta-feira, 09 de janeiro de 2026"
        assert day_label_at(yesterday, now) == "Ontem"


@pytest.mark.django_db(transaction=True)
def test_each_socket_gets_pushed_fragments_in_its_pages_language(acme_agent, acme_owner, acme_connection):
    """One publish, rendered in every language: the Portuguese page's socket gets Portuguese, the English
    one English (the header's "Assign to me" after a status change)."""
    conv = ConversationFactory(connection=acme_connection)
    _, cookie = logged_in("acme-agent")

    async def scenario():
        english = socket(f"/ws/t/acme/?lang=en&conversation={conv.pk}", cookie)
        portuguese = socket(f"/ws/t/acme/?lang=pt-br&conversation={conv.pk}", cookie)
        unknown = socket(f"/ws/t/acme/?lang=xx&conversation={conv.pk}", cookie)
        for comm in (english, portuguese, unknown):
            assert (await comm.connect())[0]
        await sync_to_async(actions.do_set_conversation_status)(conv, "resolved", acting_user=acme_owner)
        assert "Assign to me" in await receive_until(english, "Assign to me")
        pushed = await receive_until(portuguese, "Atribuir a mim")
        assert "Assign to me" not in pushed and "Sem responsável" in pushed
        assert "Assign to me" in await receive_until(unknown, "Assign to me")  # an unknown language: the default
        for comm in (english, portuguese, unknown):
            await comm.disconnect()

    async_to_sync(scenario)()


@pytest.mark.django_db(transaction=True)
def test_fragments_are_rendered_only_in_the_languages_open_sockets_read(acme_agent, acme_owner, acme_connection):
    """English sockets alone: one rendering per fragment (nothing in ``translations``). A Portuguese socket
    opens: Portuguese is rendered too. Its language no longer marked (the key expired in a Redis blip): that
    socket gets a refresh trigger instead of English, the English one its fragment."""
    from channels.layers import get_channel_layer

    from config.redis import redis_client
    from inbox import events, live_languages
    from inbox.consumers import REFRESH_TRIGGER

    conv = ConversationFactory(connection=acme_connection)
    _, cookie = logged_in("acme-agent")

    def forget_portuguese():  # what the key's expiry looks like to publishers
        redis_client().delete(live_languages._key("pt-br"))
        live_languages._cache["codes"] = None

    async def scenario():
        layer = get_channel_layer()
        spy = await layer.new_channel()
        await layer.group_add(events.conversation_group(conv.pk), spy)
        await sync_to_async(forget_portuguese)()
        english = socket(f"/ws/t/acme/?lang=en&conversation={conv.pk}", cookie)
        assert (await english.connect())[0]
        await sync_to_async(actions.do_set_conversation_status)(conv, "resolved", acting_user=acme_owner)
        event = await asyncio.wait_for(layer.receive(spy), 3)
        assert "Assign to me" in event["html"] and event["translations"] == {}
        assert "Assign to me" in await receive_until(english, "Assign to me")

        portuguese = socket(f"/ws/t/acme/?lang=pt-br&conversation={conv.pk}", cookie)
        assert (await portuguese.connect())[0]
        await sync_to_async(actions.do_set_conversation_status)(conv, "open", acting_user=acme_owner)
        event = await asyncio.wait_for(layer.receive(spy), 3)
        assert set(event["translations"]) == {"pt-br"} and "Atribuir a mim" in event["translations"]["pt-br"]
        assert "Atribuir a mim" in await receive_until(portuguese, "Atribuir a mim")
        assert "Assign to me" in await receive_until(english, "Assign to me")

        await sync_to_async(forget_portuguese)()
        await sync_to_async(actions.do_set_conversation_status)(conv, "resolved", acting_user=acme_owner)
        assert await receive_until(portuguese, "live:refresh") == REFRESH_TRIGGER
        assert "Assign to me" in await receive_until(english, "Assign to me")
        for comm in (english, portuguese):
            await comm.disconnect()
        await layer.group_discard(events.conversation_group(conv.pk), spy)

    async_to_sync(scenario)()


def visible_text(html: str) -> str:
    """A page's text as a reader meets it: the body without tags, scripts or hidden parts, plus the
    placeholders, tooltips, aria-labels and confirmation questions."""
    import re
    from html import unescape

    body = html.split("<body", 1)[-1]
    body = re.sub(r"(?s)<script.*?</script>|<[^>]*\shidden[\s>][^>]*>.*?</div>", " ", body)
    attributes = re.findall(r'(?:placeholder|title|aria-label|data-confirm)="([^"]*)"', body)
    return unescape(re.sub(r"<[^>]+>", " ", body) + "\n" + "\n".join(attributes))


@pytest.mark.django_db
def test_the_other_pages_have_no_english_for_a_brazilian_owner(client, acme_owner, acme_connection, settings):
    """What the browser test does not open: members, API (tokens, webhooks, an endpoint), labels, canned
    responses, mentions, new conversation, the tenant picker, a search note and a bad request."""
    from api.webhooks import check_create_endpoint
    from inbox import labels
    from tests.i18n import english_in

    settings.OUTBOUND_ALLOW_PRIVATE_ADDRESSES = True  # the endpoint's URL is this machine
    UserProfile.objects.create(user=acme_owner, language="pt-br")
    conv = ConversationFactory(connection=acme_connection)
    labels.do_create_label(acme_owner.memberships.get().tenant, "VIP", "purple")
    endpoint = check_create_endpoint(acme_owner.memberships.get().tenant, url="http://127.0.0.1:9/hook",
                                     events=["message.received"])
    client.force_login(acme_owner)
    pages = [reverse("members", args=["acme"]), reverse("api_page", args=["acme"]),
             reverse("api_endpoint", args=["acme", endpoint.pk]), reverse("labels", args=["acme"]),
             reverse("canned", args=["acme"]), reverse("mentions", args=["acme"]),
             reverse("new_conversation", args=["acme"]), reverse("tenant_picker") + "?pick=1",
             reverse("inbox", args=["acme"]) + "?q=ab", reverse("inbox", args=["acme"]) + "?status=nope",
             reverse("connection_history", args=["acme", acme_connection.pk]),
             reverse("conversation", args=["acme", conv.pk])]
    for url in pages:
        response = client.get(url)
        assert response.status_code in (200, 400), url
        assert english_in(visible_text(response.content.decode())) == [], url
