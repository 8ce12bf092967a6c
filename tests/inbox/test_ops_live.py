"""Staff's /ops/ page over Channels (real Channels layer over Redis, the project's ASGI application, real
sessions from real logins): staff sockets are told when the platform's figures may have moved; nobody else
may open one, and a socket whose user stops being staff closes."""

import pytest
from asgiref.sync import async_to_sync, sync_to_async

from connections import actions as connection_actions
from connections.models import Connection
from inbox import actions
from inbox.alerts import do_raise_alert
from inbox.consumers import CLOSE_ACCESS_CHANGED, CLOSE_FORBIDDEN
from tests.factories import UserFactory
from tests.inbox.test_live import receive_until, socket
from tests.inbox.test_live_access import closed_with, logged_in

pytestmark = pytest.mark.django_db(transaction=True)

OPS_TRIGGER = 'data-event="live:ops"'


def test_staff_sockets_hear_heartbeats_status_changes_and_platform_alerts(acme_connection):
    UserFactory(username="ops-staff", is_staff=True)
    _, cookie = logged_in("ops-staff")
    Connection.objects.unscoped().filter(pk=acme_connection.pk).update(runner_id="r-ops", status="connected")

    async def scenario():
        ops = socket("/ws/ops/", cookie)
        assert (await ops.connect())[0]
        await sync_to_async(connection_actions.renew_leases)("r-ops", [acme_connection.pk],
                                                            heartbeat_ids=[acme_connection.pk])
        assert OPS_TRIGGER in await receive_until(ops, OPS_TRIGGER)
        await sync_to_async(connection_actions.do_mark_connected)(acme_connection.pk, "r-ops")
        assert OPS_TRIGGER in await receive_until(ops, OPS_TRIGGER)
        # A platform alert (no tenant: a dead worker) reaches no tenant's page, but /ops/ hears of it.
        await sync_to_async(do_raise_alert)("test:ops-live", kind="other", message="no worker answered")
        assert OPS_TRIGGER in await receive_until(ops, OPS_TRIGGER)
        await ops.disconnect()

    async_to_sync(scenario)()


def test_only_staff_may_open_the_ops_socket_and_a_demoted_one_is_closed(acme_owner):
    staff = UserFactory(username="ops-staff", is_staff=True)
    _, staff_cookie = logged_in("ops-staff")
    _, owner_cookie = logged_in("acme-admin")

    async def scenario():
        for cookie in (b"", owner_cookie):  # anonymous, a tenant owner who is not staff
            refused = socket("/ws/ops/", cookie)
            connected, code = await refused.connect()
            assert not connected and code == CLOSE_FORBIDDEN
        ops = socket("/ws/ops/", staff_cookie)
        assert (await ops.connect())[0]

        def demote():
            staff.is_staff = False
            staff.save(update_fields=["is_staff"])
            actions.do_notify_access_changed([staff.pk])  # what the user admin does on save

        await sync_to_async(demote)()
        code, _ = await closed_with(ops)
        assert code == CLOSE_ACCESS_CHANGED

    async_to_sync(scenario)()
