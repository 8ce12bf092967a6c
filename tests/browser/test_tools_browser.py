"""The agent's tools in Chromium (issue 15): time zones of pushed messages, private notes and mentions,
labels, snooze and the reply box's canned responses, each seen live by a second agent where it applies."""

import threading
import zoneinfo

import pytest
from django.db import close_old_connections
from django.utils import timezone
from playwright.sync_api import expect

from inbox import canned, labels
from inbox.models import Conversation, Note, Snooze, Tenant
from tests.browser.conftest import login, screenshot, wait_online
from tests.factories import ContactFactory, ConversationFactory, MessageFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

KIRITIMATI = "Pacific/Kiritimati"  # UTC+14 all year: its day is rarely the UTC day, and it has no DST


def in_thread(fn):
    """Write from another thread (Playwright's loop owns this one), as another process would."""
    worker = threading.Thread(target=lambda: (fn(), close_old_connections()))
    worker.start()
    worker.join()


def test_a_pushed_message_shows_in_the_tenants_zone(web, new_page, acme, acme_agent, acme_connection):
    from inbox.actions import do_queue_reply

    Tenant.objects.filter(pk=acme.pk).update(time_zone=KIRITIMATI)
    conv = ConversationFactory(connection=acme_connection)
    MessageFactory(conversation=conv, body="earlier", sent_at=timezone.now() - timezone.timedelta(minutes=5))
    page = new_page()
    login(page, web, "acme-agent")
    page.goto(f"{web}/t/acme/c/{conv.pk}/")
    wait_online(page)
    expect(page.locator("body")).to_have_attribute("data-tz", KIRITIMATI)
    in_thread(lambda: do_queue_reply(conv, acme_agent, "pushed from a worker"))
    bubble = page.locator(".msg", has_text="pushed from a worker")
    expect(bubble).to_be_visible(timeout=3000)
    sent_at = Conversation.objects.unscoped().get(pk=conv.pk).messages.get(body="pushed from a worker").sent_at
    local = timezone.localtime(sent_at, zoneinfo.ZoneInfo(KIRITIMATI))
    expect(bubble).to_have_attribute("data-day", local.date().isoformat())  # rendered in UTC, shown in the zone
    expect(bubble.locator("time")).to_have_text(local.strftime("%H:%M"))
    expect(page.locator("#thread-messages > .day-sep")).to_have_text(["Today"])  # both messages: one local day


def test_notes_mentions_labels_and_snooze_reach_the_other_agent_live(web, worker, new_page, acme, acme_agent,
                                                                    acme_owner, acme_connection):
    contact = ContactFactory(tenant=acme, display_name="Rita Lopes")
    conv = ConversationFactory(connection=acme_connection, contact=contact)
    MessageFactory(conversation=conv, body="preciso de ajuda", sender_jid=conv.chat_jid)
    labels.do_create_label(acme, "VIP", "purple")
    agent, admin = new_page(), new_page()
    login(agent, web, "acme-agent")
    login(admin, web, "acme-admin")
    agent.goto(f"{web}/t/acme/c/{conv.pk}/")
    admin.goto(f"{web}/t/acme/c/{conv.pk}/")
    wait_online(agent)
    wait_online(admin)

    # A private note with a mention: distinct in both threads, the admin's mention badge counts it.
    agent.fill("#note-body", "cliente VIP, @acme-admin pode olhar?")
    agent.press("#note-body", "Enter")
    expect(agent.locator(".note .msg-body")).to_have_text("cliente VIP, @acme-admin pode olhar?")
    expect(admin.locator(".note .msg-body")).to_have_text("cliente VIP, @acme-admin pode olhar?", timeout=3000)
    expect(admin.locator("#mentions-badge-acme")).to_have_attribute("data-unread", "1", timeout=3000)
    close_old_connections()
    assert Note.objects.unscoped().count() == 1 and not conv.messages.filter(body__contains="VIP").exists()

    # A label: on the admin's thread bar and list row at once. (List rows that change within 250 ms of the
    # last push come from a Celery task: the worker fixture runs one, as every deployment does.)
    agent.select_option(f"#add-label-{conv.pk}", label="VIP")
    expect(agent.locator(f"#conv-labels-{conv.pk} .label-name")).to_have_text("VIP")
    expect(admin.locator(f"#conv-labels-{conv.pk} .label-name")).to_have_text("VIP", timeout=3000)
    expect(admin.locator(f"#conv-{conv.pk} .label-chip")).to_have_text("VIP", timeout=3000)
    screenshot(admin, "tools-note-label-1280")

    # Snooze for an hour: it leaves the admin's open list; reopening brings it back.
    agent.click(f"#conv-snooze-{conv.pk} summary")
    agent.click("button[name=preset][value=in_1h]")
    expect(agent.locator(f"#conv-snooze-{conv.pk} .snooze-note")).to_be_visible()
    expect(admin.locator(f"#conv-{conv.pk}")).to_have_count(0, timeout=3000)
    expect(admin.locator(f"#conv-snooze-{conv.pk} .snooze-note")).to_be_visible(timeout=3000)
    close_old_connections()
    assert Snooze.objects.unscoped().filter(conversation=conv).exists()
    admin.locator(f"#conv-snooze-{conv.pk} button", has_text="Reopen now").click()
    expect(agent.locator(f"#conv-{conv.pk}")).to_have_count(1, timeout=3000)
    assert agent.dialogs == [] and admin.dialogs == []


def test_slash_in_the_reply_box_inserts_a_canned_response(web, new_page, acme, acme_agent, acme_connection):
    contact = ContactFactory(tenant=acme, display_name="Joana Prado")
    conv = ConversationFactory(connection=acme_connection, contact=contact)
    canned.do_create_canned(acme, "greeting", "Olá {{contact_first_name}}, tudo bem?")
    canned.do_create_canned(acme, "goodbye", "Até logo!")
    page = new_page()
    login(page, web, "acme-agent")
    page.goto(f"{web}/t/acme/c/{conv.pk}/")
    wait_online(page)
    box = page.locator("#reply-body")
    box.click()
    box.type("Bom dia! /gre")
    expect(page.locator("#canned-menu [role=option]")).to_have_count(1)
    box.press("Enter")  # picks from the menu: does not send
    expect(box).to_have_value("Bom dia! Olá Joana, tudo bem?")
    expect(page.locator("#canned-menu")).to_have_count(0)
    box.type(" /")
    expect(page.locator("#canned-menu [role=option]")).to_have_count(2)
    box.press("Escape")
    expect(page.locator("#canned-menu")).to_have_count(0)
    close_old_connections()
    assert not conv.messages.exists()


def test_keyboard_shortcuts_help_and_unread_count_in_the_title(web, new_page, acme, acme_agent, acme_connection):
    first = ConversationFactory(connection=acme_connection, unread_count=2,
                                last_message_at=timezone.now())
    second = ConversationFactory(connection=acme_connection, unread_count=0,
                                 last_message_at=timezone.now() - timezone.timedelta(minutes=1))
    page = new_page()
    login(page, web, "acme-agent")
    page.goto(f"{web}/t/acme/")
    wait_online(page)
    assert page.title().startswith("(1) ")
    page.keyboard.press("?")
    expect(page.locator("#shortcuts-help")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#shortcuts-help")).to_be_hidden()
    page.keyboard.press("j")  # the first conversation of the list
    page.wait_for_url(f"{web}/t/acme/c/{first.pk}/")
    wait_online(page)
    page.keyboard.press("j")
    page.wait_for_url(f"{web}/t/acme/c/{second.pk}/")
    wait_online(page)
    page.keyboard.press("a")  # assign to me
    expect(page.locator(f"#assignee-{second.pk}")).to_have_value(str(acme_agent.pk))
    page.keyboard.press("r")
    expect(page.locator("#reply-body")).to_be_focused()
    page.keyboard.press("Escape")
    page.keyboard.press("e")  # resolve
    expect(page.locator("button[name=status][value=resolved]")).to_have_attribute("aria-pressed", "true")
    close_old_connections()
    assert Conversation.objects.unscoped().get(pk=second.pk).status == "resolved"
