"""The browser side of the security settings: the CSP is enforced and watched, confirmations work without
inline code."""

import pytest
from django.db import close_old_connections
from playwright.sync_api import expect

from connections.models import Connection
from tests.browser.conftest import login, wait_online, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_inline_script_is_blocked_and_reported(web, new_page, csp_violations, acme_agent, acme_connection):
    """The watch every browser test runs under does see a violation (so its silence means something)."""
    page = new_page()
    login(page, web, "acme-agent")
    page.goto(f"{web}/t/acme/")
    wait_online(page)  # htmx and its websocket extension run under the policy
    page.evaluate("""() => { const s = document.createElement('script'); s.textContent = 'window.__ran = 1';
                             document.body.appendChild(s); }""")
    wait_until(page, lambda: any(v.startswith("script-src") for v in csp_violations), "the violation reported")
    assert page.evaluate("() => window.__ran === undefined")
    csp_violations.clear()  # seen: the fixture's own check must not fail this test


def test_unlinking_a_number_asks_first_without_inline_handlers(web, new_page, acme_owner, acme_connection):
    Connection.objects.unscoped().filter(pk=acme_connection.pk).update(jid="5511900000001:1@s.whatsapp.net",
                                                            status=Connection.Status.CONNECTED)
    page = new_page()
    login(page, web, "acme-admin")
    page.goto(f"{web}/t/acme/connections/")
    wait_online(page)
    page.click(f"#conn-summary-{acme_connection.pk} button[value=logout]")  # the fixture dismisses the dialog
    page.wait_for_timeout(500)
    assert page.dialogs == ["Unlink this number from WhatsApp? You will need to pair it again."]
    close_old_connections()
    acme_connection.refresh_from_db()
    assert acme_connection.desired_state != Connection.DesiredState.LOGGED_OUT  # dismissed: nothing sent

    page.remove_listener("dialog", page.dialog_handler)
    page.once("dialog", lambda d: d.accept())
    page.click(f"#conn-summary-{acme_connection.pk} button[value=logout]")
    page.wait_for_load_state("networkidle")
    close_old_connections()
    acme_connection.refresh_from_db()
    assert acme_connection.desired_state == Connection.DesiredState.LOGGED_OUT


def test_logging_out_in_one_tab_takes_the_other_tab_to_the_login_page(web, new_page, acme_agent, acme_connection):
    """The open inbox's socket is closed by the logout (4401) and the page reloads: no stale inbox stays
    on screen receiving messages."""
    import re

    inbox_tab = new_page()
    login(inbox_tab, web, "acme-agent")
    inbox_tab.goto(f"{web}/t/acme/")
    wait_online(inbox_tab)
    other_tab = inbox_tab.context.new_page()  # same browser, same session
    other_tab.goto(f"{web}/tenants/?pick=1")
    other_tab.click("text=Log out")
    expect(other_tab).to_have_url(re.compile(r"/login/$"))
    expect(inbox_tab).to_have_url(re.compile(r"/login/\?next=/t/acme/$"), timeout=5000)
