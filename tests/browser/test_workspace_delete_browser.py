"""The owner deletes the workspace in Chromium: from the members page, refused until the slug is typed,
then archived (the picker says so, the workspace's pages are gone); its rows stay."""

import pytest
from django.db import close_old_connections
from playwright.sync_api import expect

from inbox.models import Message, Tenant
from tests.browser.conftest import login, screenshot
from tests.factories import ConversationFactory, MessageFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_owner_deletes_the_workspace_after_typing_its_slug(web, new_page, acme, acme_owner, acme_connection):
    MessageFactory(conversation=ConversationFactory(connection=acme_connection), body="kept")
    page = new_page()
    login(page, web, "acme-admin")
    page.goto(f"{web}/t/acme/members/")
    page.click("text=Delete the workspace")
    expect(page.locator("h1")).to_have_text("Delete the workspace Acme")
    expect(page.locator("[data-testid=workspace-counts]")).to_contain_text("1 messages")

    page.fill("#confirm-workspace", "Acme")  # the name, not the slug: refused, nothing deleted
    page.click("button:has-text('Delete the workspace')")
    expect(page.locator(".form-error")).to_contain_text("type its slug exactly: acme")
    close_old_connections()
    assert Tenant.objects.get(pk=acme.pk).archived_at is None

    page.fill("#confirm-workspace", "acme")
    page.click("button:has-text('Delete the workspace')")
    page.wait_for_load_state("networkidle")
    expect(page.locator("p.notice[role=status]")).to_contain_text("The workspace Acme was deleted. Its data is kept")
    screenshot(page, "workspace-deleted")
    close_old_connections()
    assert Tenant.objects.get(pk=acme.pk).archived_at is not None
    assert Message.objects.for_tenant(acme).count() == 1
    response = page.goto(f"{web}/t/acme/")
    assert response.status == 404
