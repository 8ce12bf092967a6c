"""Contacts in Chromium (issue 15): an agent edits the contact (a bad CPF is refused, then saved) and the
admin sees it live; the admin merges the LID contact into the phone one after the confirmation page; an
inbound message wakes the snoozed conversation on both screens."""

import threading

import pytest
from django.db import close_old_connections
from playwright.sync_api import expect

from inbox.models import Contact, Conversation, Message, Snooze
from tests.browser.conftest import login, screenshot, wait_online
from tests.sync.helpers import LID_ANA, PN_ANA, T0, feed, incoming

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def in_thread(fn):
    """Write from another thread (Playwright's loop owns this one), as another process would."""
    worker = threading.Thread(target=lambda: (fn(), close_old_connections()))
    worker.start()
    worker.join()


def test_edit_merge_and_an_inbound_message_waking_a_snooze(web, worker, new_page, acme, acme_agent, acme_owner,
                                                          acme_connection):
    feed(acme_connection, incoming("P1", "pelo telefone", ts=T0, push_name="Ana"))
    feed(acme_connection, incoming("L1", "pelo lid", ts=T0 + 20, chat=LID_ANA, push_name="Ana do LID"))
    close_old_connections()
    conv = Conversation.objects.unscoped().get(connection=acme_connection, chat_jid=PN_ANA)
    lid_conv = Conversation.objects.unscoped().get(connection=acme_connection, chat_jid=LID_ANA)
    agent, admin = new_page(), new_page()
    login(agent, web, "acme-agent")
    login(admin, web, "acme-admin")
    for page in (agent, admin):
        page.goto(f"{web}/t/acme/c/{conv.pk}/")
        wait_online(page)

    # Edit: a bad CPF is refused with the reason and what was typed; corrected, it is saved, live for the admin.
    agent.click("[data-testid=contact-edit-open]")
    agent.fill("[data-testid=contact-name-input]", "Ana Souza")
    agent.fill("[data-testid=contact-notes-input]", "Prefere falar de manhã")
    agent.locator("[data-testid=attr-key]").nth(0).fill("CPF")
    agent.locator("[data-testid=attr-value]").nth(0).fill("123.456.789-00")
    agent.click("[data-testid=contact-save]")
    expect(agent.locator("[data-testid=contact-errors]")).to_contain_text("is not a valid CPF")
    expect(agent.locator("[data-testid=contact-name-input]")).to_have_value("Ana Souza")
    agent.locator("[data-testid=attr-value]").nth(0).fill("529.982.247-25")
    agent.click("[data-testid=contact-save]")
    expect(agent.locator("[data-testid=contact-saved]")).to_be_visible()
    expect(agent.locator("[data-testid=contact-name]")).to_have_text("Ana Souza")
    expect(admin.locator("[data-testid=contact-name]")).to_have_text("Ana Souza", timeout=3000)
    expect(admin.locator("[data-testid=contact-attributes]")).to_contain_text("529.982.247-25")
    expect(admin.locator("[data-testid=contact-notes]")).to_have_text("Prefere falar de manhã")
    expect(admin.locator(f"#conv-header-{conv.pk} h1")).to_have_text("Ana Souza")
    expect(agent.locator("[data-testid=contact-merge]")).to_have_count(0)  # merging is for owners and admins
    screenshot(admin, "contact-edited-1280")

    # Merge: the admin finds the LID contact, reads what will move, confirms.
    admin.click("[data-testid=contact-merge] summary")
    admin.fill("[data-testid=merge-search]", "do LID")
    admin.press("[data-testid=merge-search]", "Enter")
    admin.click("[data-testid=merge-candidate]")
    expect(admin.locator("[data-testid=merge-preview]")).to_contain_text(LID_ANA)
    expect(admin.locator("[data-testid=merge-joined]")).to_contain_text("become one")
    close_old_connections()
    assert Contact.objects.for_tenant(acme).count() == 2  # nothing moved before the confirmation
    admin.click("[data-testid=merge-confirm]")
    admin.wait_for_url(f"{web}/t/acme/c/{conv.pk}/")
    wait_online(admin)
    expect(admin.locator(".msg", has_text="pelo lid")).to_be_visible()
    expect(agent.locator(".msg", has_text="pelo lid")).to_be_visible(timeout=3000)  # the agent's thread reloaded
    close_old_connections()
    assert list(Conversation.objects.for_tenant(acme).values_list("pk", flat=True)) == [conv.pk]
    assert not Conversation.objects.for_tenant(acme).filter(pk=lid_conv.pk).exists()
    assert Contact.objects.for_tenant(acme).count() == 1

    # Snooze, then Ana writes (under her LID): the conversation is open again on both screens, at once.
    agent.click(f"#conv-snooze-{conv.pk} summary")
    agent.click("button[name=preset][value=tomorrow]")
    expect(agent.locator(f"#conv-snooze-{conv.pk} .snooze-note")).to_be_visible()
    expect(admin.locator(f"#conv-snooze-{conv.pk} .snooze-note")).to_be_visible(timeout=3000)
    in_thread(lambda: feed(acme_connection, incoming("L2", "ainda estou esperando", ts=T0 + 600, chat=LID_ANA)))
    for page in (agent, admin):
        expect(page.locator(".msg", has_text="ainda estou esperando")).to_be_visible(timeout=3000)
        expect(page.locator(f"#conv-snooze-{conv.pk} .snooze-note")).to_have_count(0, timeout=3000)
        expect(page.locator(f"#conv-header-{conv.pk} button[name=status][value=open]")).to_have_attribute(
            "aria-pressed", "true")
    expect(admin.locator(f"#conv-{conv.pk}")).to_have_count(1, timeout=3000)  # back in the open list
    close_old_connections()
    assert Conversation.objects.unscoped().get(pk=conv.pk).status == "open" and not Snooze.objects.unscoped().exists()
    assert Message.objects.unscoped().filter(conversation=conv).count() == 3
    screenshot(agent, "contact-merged-woken-1280")
    assert agent.dialogs == [] and admin.dialogs == []
