"""Self-service numbers in a real browser against a real runner (simulator transport): an owner adds a
number, pairs it by QR (the code rotates on screen), sees it connect, then sees its journal backlog and a pause made
elsewhere change its figures, status and history without reloading the page."""

import re

import pytest
from django.db import close_old_connections
from playwright.sync_api import expect

from connections import actions as connection_actions
from connections.models import Connection
from connections.nudge import nudge
from sync.models import RawEvent
from tests import procs
from tests.browser.conftest import login, screenshot, wait_online
from tests.connections.helpers import runner_env, start_runner


def pending_in_journal(connection_id) -> int:
    close_old_connections()
    return RawEvent.objects.unscoped().filter(connection_id=connection_id, state=RawEvent.State.PENDING).count()


pytestmark = [pytest.mark.browser, pytest.mark.processes, pytest.mark.django_db(transaction=True)]


def test_add_pair_by_qr_and_see_status_live(web, new_page, acme_owner, acme_agent):
    runner = start_runner("browser", runner_env(SIMULATOR_QR_SECONDS=4))
    try:
        page = new_page()
        login(page, web, "acme-admin")
        page.goto(f"{web}/t/acme/connections/")
        wait_online(page)

        page.fill("#id_name", "")
        page.click("text=Add number")  # the browser refuses an empty required name: nothing is sent
        assert page.url.endswith("/t/acme/connections/")
        page.fill("#id_name", "Browser line")
        page.select_option("#id_transport", "simulator")
        page.click("text=Add number")
        page.wait_for_load_state("networkidle")
        close_old_connections()
        conn = Connection.objects.unscoped().get(name="Browser line")
        card = page.locator(f"#connection-{conn.pk}")
        expect(card.locator("[data-testid=conn-status]")).to_have_text("New")

        card.locator("text=Pair with a QR code").click()
        page.wait_for_load_state("networkidle")
        wait_online(page)
        qr = page.locator(f"#connection-{conn.pk} [data-testid=qr] svg")
        expect(qr).to_be_visible(timeout=10000)
        first = qr.inner_html()
        screenshot(page, "numbers-qr")
        # The runner rotates the code halfway through; the page shows the new one without a reload.
        page.evaluate("() => { window.__sameDocument = 1 }")
        for _ in range(40):  # polled here: the CSP refuses wait_for_function's evaluated predicate
            if not qr.count() or qr.inner_html() != first:
                break
            page.wait_for_timeout(100)
        assert not qr.count() or qr.inner_html() != first, "the QR code never changed on screen"

        # The simulated phone scans it: paired, then connected, live.
        expect(card.locator("[data-testid=conn-status]")).to_have_text("Connected", timeout=15000)
        expect(card.locator("[data-testid=conn-runner]")).to_have_text("browser")
        expect(card.locator("[data-testid=conn-history]")).to_contain_text("Paired")
        # Its heartbeat age ticks, and the runner's next heartbeats arrive without a reload.
        heartbeat = card.locator("[data-testid=conn-heartbeat]")
        expect(heartbeat).to_have_text(re.compile(r"^(just now|\d+ s ago)$"), timeout=5000)
        beat = heartbeat.get_attribute("datetime")
        expect(heartbeat).not_to_have_attribute("datetime", beat, timeout=10000)

        # Its figures move without a reload: a customer writes while no worker runs, so the event waits in
        # the journal; the next heartbeat tells the page, which fetches the figures again.
        journal = card.locator("[data-testid=journal]")
        before = pending_in_journal(conn.pk)
        assert nudge(conn.pk, "simulate", kind="text", text="still in the journal", count=2) == 1
        now = procs.wait_for(lambda: (n := pending_in_journal(conn.pk)) >= before + 2 and n, 10, 0.1, "journaled")
        expect(journal).to_contain_text(f"{now} pending", timeout=10000)

        # A pause made elsewhere (another admin, Django admin) reaches this page without a reload.
        close_old_connections()
        connection_actions.do_set_desired_state(Connection.objects.unscoped().get(pk=conn.pk), Connection.DesiredState.STOPPED)
        expect(card.locator("[data-testid=conn-status]")).to_have_text("Disconnected", timeout=10000)
        expect(card.locator("[data-testid=conn-history]")).to_contain_text("Stopped")
        expect(card.locator("button[value=resume]")).to_be_visible()
        assert page.evaluate("() => window.__sameDocument") == 1  # no reload happened

        # An agent may not open the numbers page.
        agent = new_page()
        login(agent, web, "acme-agent")
        assert agent.goto(f"{web}/t/acme/connections/").status == 403
    except BaseException:
        print(runner.output()[-5000:])
        raise
    finally:
        runner.stop()


def test_ops_page_follows_the_platform_live(web, new_page, acme_connection):
    """Staff's /ops/ page over its socket: a number's status changed by its runner shows without a reload
    (well before the page's 30 s fallback refresh)."""
    from tests.factories import UserFactory

    UserFactory(username="ops-staff", is_staff=True)
    Connection.objects.unscoped().filter(pk=acme_connection.pk).update(runner_id="r-ops", status="connecting")
    page = new_page()
    login(page, web, "ops-staff")
    page.goto(f"{web}/ops/")
    wait_online(page)
    row = page.locator("[data-testid=ops-number]", has_text=acme_connection.name)
    expect(row).to_contain_text("Connecting")
    page.evaluate("() => { window.__sameDocument = 1 }")
    connection_actions.do_mark_connected(acme_connection.pk, "r-ops")
    expect(row).to_contain_text("Connected", timeout=10000)
    expect(row).not_to_contain_text("Connecting")
    assert page.evaluate("() => window.__sameDocument") == 1
