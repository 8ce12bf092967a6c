"""Brazilian Portuguese in Chromium (docs/i18n.md): a pt-BR user sees no English string on the inbox
list, the conversation page (thread, reply box, notes, labels, snooze, contact panel), the numbers page and
the preferences page, live fragments included; the browser's language decides for a user who chose none;
the switch on the preferences page works; dates and numbers are formatted the Brazilian way."""

import re
import threading
from datetime import timedelta

import pytest
from django.db import close_old_connections
from django.utils import timezone
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from connections.models import Connection
from inbox import actions, labels, notes
from inbox.models import MediaFile, UserProfile
from tests.browser.conftest import login, screenshot, wait_online
from tests.factories import ContactFactory, ConversationFactory, MessageFactory
from tests.i18n import english_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

def english_on(page) -> list[str]:
    """The English phrases found in the page's visible text, its placeholders, tooltips and aria-labels
    (each with the text around it)."""
    texts = [page.locator("body").inner_text()]
    for attribute in ("placeholder", "aria-label", "title"):
        for element in page.locator(f"[{attribute}]:visible").all():
            try:
                texts.append(element.get_attribute(attribute, timeout=1000) or "")
            except PlaywrightTimeoutError:
                continue  # swapped out by a live update meanwhile; its successor was read or will be

    return english_in("\n".join(texts))


def in_thread(fn):
    """Write from another thread (Playwright's loop owns this one), as another process would."""
    worker = threading.Thread(target=lambda: (fn(), close_old_connections()))
    worker.start()
    worker.join()


@pytest.fixture
def workday(acme, acme_owner, acme_agent, acme_connection):
    """A conversation with messages yesterday and a week ago, a note, a label, a stored photo and a number
    with a recent heartbeat."""
    now = timezone.now()
    Connection.objects.unscoped().filter(pk=acme_connection.pk).update(
        status=Connection.Status.CONNECTED, last_heartbeat_at=now - timedelta(seconds=40), phone_number="+5511999990000")
    contact = ContactFactory(tenant=acme, display_name="Rita Lopes", phone_number="+5511987654321")
    conv = ConversationFactory(connection=acme_connection, contact=contact)  # its list row: the messages
    MessageFactory(conversation=conv, body="bom dia", sender_jid=conv.chat_jid, sent_at=now - timedelta(days=8))
    photo = MessageFactory(conversation=conv, body="", type="image", sender_jid=conv.chat_jid,
                           sent_at=now - timedelta(days=1, minutes=1))
    MediaFile.objects.create(tenant=acme, message=photo, connection=acme_connection, kind="image",
                             state=MediaFile.State.FETCHED, sha256="a" * 64, size=1_572_864, mimetype="image/png")
    MessageFactory(conversation=conv, body="preciso de ajuda", sender_jid=conv.chat_jid, sent_at=now - timedelta(days=1))
    labels.do_create_label(acme, "VIP", "purple")
    notes.check_add_note(conv, acme_owner, "@acme-agent cliente importante")
    return conv


def test_a_brazilian_user_sees_no_english(web, new_page, workday, acme_agent, acme_owner):
    UserProfile.objects.create(user=acme_owner, language="pt-br")
    page = new_page(locale="en-US")  # an English browser: the user's choice wins
    login(page, web, "acme-admin")
    page.goto(f"{web}/t/acme/")
    wait_online(page)
    expect(page.locator("html")).to_have_attribute("lang", "pt-br")
    expect(page.locator(".conv-row .pill")).to_have_text("Aberta")
    assert english_on(page) == []
    screenshot(page, "i18n-inbox-pt-br")

    page.goto(f"{web}/t/acme/c/{workday.pk}/")
    wait_online(page)
    expect(page.locator("#reply-body")).to_have_attribute("placeholder", re.compile("^Digite uma resposta"))
    expect(page.locator(".note-head")).to_contain_text("Nota privada")
    seps = page.locator("#thread-messages > .day-sep").all_inner_texts()
    # A week ago, yesterday (the messages), today (the note): the day separators in Portuguese.
    assert seps[1:] == ["Ontem", "Hoje"] and re.fullmatch(r"\w[\w-]*, \d\d de \w+ de \d{4}", seps[0]), seps
    assert english_on(page) == []
    # A live change by another agent arrives in Portuguese too (the header, pushed over the socket).
    in_thread(lambda: actions.do_set_conversation_status(workday, "resolved", acting_user=acme_agent))
    expect(page.locator(f"#conv-header-{workday.pk} button.is-selected")).to_have_text("Resolvida")
    in_thread(lambda: actions.do_queue_reply(workday, acme_agent, "já estou vendo"))
    expect(page.locator(".msg", has_text="já estou vendo")).to_be_visible()
    expect(page.locator("#thread-messages > .day-sep").last).to_have_text("Hoje")
    assert english_on(page) == []
    page.keyboard.press("?")
    expect(page.locator("#shortcuts-help")).to_be_visible()
    expect(page.locator("#shortcuts-title")).to_have_text("Atalhos de teclado")
    assert english_on(page) == []
    page.keyboard.press("Escape")
    screenshot(page, "i18n-conversation-pt-br")

    page.goto(f"{web}/t/acme/connections/")
    wait_online(page)
    # Numbers: a decimal comma; ages from the JS catalog.
    expect(page.locator("[data-testid=media-storage]")).to_have_text("Mídia armazenada neste espaço de trabalho: 1,5 MB")
    expect(page.locator("[data-testid=conn-heartbeat]")).to_have_text(re.compile(r"^há \d+ s$"))
    page.locator(".conn-manage summary").first.click()
    assert english_on(page) == []
    screenshot(page, "i18n-numbers-pt-br")

    page.goto(f"{web}/t/acme/preferences/")
    expect(page.locator("h1")).to_have_text("Preferências")
    assert english_on(page) == []


def test_the_browsers_language_decides_for_a_user_who_chose_none(web, new_page, workday):
    page = new_page(locale="pt-BR")
    page.goto(f"{web}/login/")
    expect(page.locator("h1")).to_have_text("Entrar")
    login(page, web, "acme-agent")
    page.goto(f"{web}/t/acme/c/{workday.pk}/")
    wait_online(page)
    expect(page.locator("html")).to_have_attribute("lang", "pt-br")
    assert english_on(page) == []
    english = new_page()
    login(english, web, "acme-agent")
    english.goto(f"{web}/t/acme/c/{workday.pk}/")
    expect(english.locator("html")).to_have_attribute("lang", "en")
    expect(english.locator("#thread-messages > .day-sep")).to_have_text([re.compile(r"^\w+, \d\d \w+ \d{4}$"),
                                                                       "Yesterday", "Today"])
    expect(english.locator("[data-testid=assignee] option").first).to_have_text("Unassigned")


def test_the_language_switch_on_preferences(web, new_page, workday, acme_agent):
    page = new_page(locale="en-US")
    login(page, web, "acme-agent")
    page.goto(f"{web}/t/acme/preferences/")
    expect(page.locator("h1")).to_have_text("Preferences")
    page.select_option("#user-language", "pt-br")
    page.click("form.stack button[type=submit]")
    expect(page.locator("h1")).to_have_text("Preferências")
    expect(page.locator("p.notice")).to_have_text("Salvo.")
    assert UserProfile.objects.get(user=acme_agent).language == "pt-br"
    page.goto(f"{web}/t/acme/")
    expect(page.locator(".topnav")).to_contain_text("Conversas")
    assert english_on(page) == []
    page.goto(f"{web}/t/acme/preferences/")
    page.select_option("#user-language", "")  # "O do navegador": English again in this browser
    page.click("form.stack button[type=submit]")
    expect(page.locator("h1")).to_have_text("Preferences")
