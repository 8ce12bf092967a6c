"""Alerts reach the open numbers page live (real Channels layer over Redis): raised, then resolved."""

import pytest
from asgiref.sync import async_to_sync, sync_to_async

from inbox import alerts
from tests.inbox.test_live import receive_until, session_cookie, socket

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_raised_and_a_resolved_alert_reach_the_numbers_page(client, acme, acme_owner, acme_connection):
    cookie = session_cookie(client, acme_owner)
    cause = alerts.connection_down_cause(acme_connection.pk)

    async def scenario():
        page = socket("/ws/t/acme/", cookie)
        assert (await page.connect())[0]
        await sync_to_async(alerts.do_raise_alert)(cause, kind="number_down", message="Acme support: down 6 min",
                                                   tenant_id=acme.pk, connection_id=acme_connection.pk)
        raised = await receive_until(page, 'id="tenant-alerts"')
        assert "down 6 min" in raised and "Acknowledge" in raised
        await sync_to_async(alerts.do_resolve_alert)(cause)
        resolved = await receive_until(page, 'id="tenant-alerts"')
        assert "down 6 min" not in resolved
        await page.disconnect()

    async_to_sync(scenario)()
