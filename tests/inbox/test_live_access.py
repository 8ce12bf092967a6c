"""Live sockets do not outlive the access they were opened with (real Channels layer over Redis, the
project's ASGI application, real sessions from real logins).

After a logout, a removal from the tenant or a role change, the socket closes with 4401 and receives no
further fragment; a change nobody announced is caught by the re-check before delivery.
"""

import asyncio

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.test import Client
from django.urls import reverse

from inbox import actions
from inbox.consumers import CLOSE_ACCESS_CHANGED
from inbox.models import Membership
from tests.factories import PASSWORD, ConversationFactory, UserFactory
from tests.inbox.test_live import receive_until, socket

pytestmark = pytest.mark.django_db(transaction=True)


def logged_in(username) -> tuple[Client, bytes]:
    """A real login through the login page: the session the browser would hold."""
    client = Client()
    assert client.post(reverse("login"), {"username": username, "password": PASSWORD}).status_code == 302
    return client, f"sessionid={client.cookies['sessionid'].value}".encode()


async def closed_with(comm, timeout=3.0) -> tuple[int | None, list[str]]:
    """Wait for the close; return its code and whatever was sent before it."""
    sent = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        try:
            out = await comm.receive_output(timeout=max(0.05, deadline - loop.time()))
        except TimeoutError:
            break
        if out["type"] == "websocket.close":
            return out.get("code"), sent
        sent.append(out.get("text", ""))
    return None, sent


def reply(conv, user, text):
    actions.do_queue_reply(conv, user, text)


@pytest.mark.smoke
def test_logout_closes_that_sessions_socket_and_nothing_more_arrives(acme_agent, acme_connection):
    conv = ConversationFactory(connection=acme_connection)
    browser, cookie = logged_in("acme-agent")
    _, other_cookie = logged_in("acme-agent")  # the same agent on another computer

    async def scenario():
        here = socket(f"/ws/t/acme/?conversation={conv.pk}", cookie)
        elsewhere = socket(f"/ws/t/acme/?conversation={conv.pk}", other_cookie)
        assert (await here.connect())[0] and (await elsewhere.connect())[0]
        await sync_to_async(reply)(conv, acme_agent, "before logout")
        await receive_until(here, "before logout")
        await receive_until(elsewhere, "before logout")

        assert (await sync_to_async(browser.post)(reverse("logout"))).status_code == 302
        code, _ = await closed_with(here)
        assert code == CLOSE_ACCESS_CHANGED
        await sync_to_async(reply)(conv, acme_agent, "secret after logout")
        # The other session was not logged out: its socket stays and keeps receiving. That it got the
        # reply is the marker that the reply was sent to the group: by then the closed socket had it too.
        assert "secret after logout" in await receive_until(elsewhere, "secret after logout")
        assert await here.receive_nothing(timeout=0.1)  # nothing, not even the body
        await elsewhere.disconnect()

    async_to_sync(scenario)()


def test_removal_from_the_tenant_closes_the_socket(acme_agent, acme_owner, acme_connection):
    conv = ConversationFactory(connection=acme_connection)
    _, cookie = logged_in("acme-agent")
    _, owner_cookie = logged_in("acme-admin")

    async def scenario():
        comm = socket(f"/ws/t/acme/?conversation={conv.pk}", cookie)
        owner = socket(f"/ws/t/acme/?conversation={conv.pk}", owner_cookie)  # the marker: a socket that stays
        assert (await comm.connect())[0] and (await owner.connect())[0]
        await sync_to_async(actions.do_remove_memberships)(Membership.objects.filter(user=acme_agent))
        code, sent = await closed_with(comm)
        assert code == CLOSE_ACCESS_CHANGED and sent == []
        await sync_to_async(reply)(conv, acme_agent, "after removal")
        await receive_until(owner, "after removal")
        assert await comm.receive_nothing(timeout=0.1)
        await owner.disconnect()

    async_to_sync(scenario)()


def test_a_role_change_made_in_django_admin_closes_the_socket(acme_owner, acme_connection):
    """An owner demoted to agent must leave the numbers page's group: the socket closes and the page
    reloads with what an agent may see. Made through the admin's change form, the real path."""
    membership = Membership.objects.get(user=acme_owner)
    _, cookie = logged_in("acme-admin")
    platform = Client()
    platform.force_login(UserFactory(username="platform", is_staff=True, is_superuser=True))

    async def scenario():
        comm = socket("/ws/t/acme/", cookie)
        assert (await comm.connect())[0]
        url = reverse("admin:inbox_membership_change", args=[membership.pk])
        response = await sync_to_async(platform.post)(url, {"user": acme_owner.pk, "tenant": membership.tenant_id,
                                                            "role": "agent"})
        assert response.status_code == 302
        code, _ = await closed_with(comm)
        assert code == CLOSE_ACCESS_CHANGED
        # Reconnecting works, now as an agent (no connections group).
        again = socket("/ws/t/acme/", cookie)
        assert (await again.connect())[0]
        await again.disconnect()

    async_to_sync(scenario)()
    assert Membership.objects.get(pk=membership.pk).role == "agent"


def test_a_tenant_removed_in_the_admin_inline_closes_its_members_sockets(acme_agent, acme_connection):
    membership = Membership.objects.get(user=acme_agent)
    _, cookie = logged_in("acme-agent")
    platform = Client()
    platform.force_login(UserFactory(username="platform", is_staff=True, is_superuser=True))
    tenant = acme_connection.tenant
    form = {"name": tenant.name, "slug": tenant.slug,
            "memberships-TOTAL_FORMS": "1", "memberships-INITIAL_FORMS": "1", "memberships-MIN_NUM_FORMS": "0",
            "memberships-MAX_NUM_FORMS": "1000", "memberships-0-id": membership.pk, "memberships-0-tenant": tenant.pk,
            "memberships-0-user": acme_agent.pk, "memberships-0-role": "agent", "memberships-0-DELETE": "on"}

    async def scenario():
        comm = socket("/ws/t/acme/", cookie)
        assert (await comm.connect())[0]
        response = await sync_to_async(platform.post)(reverse("admin:inbox_tenant_change", args=[tenant.pk]), form)
        assert response.status_code == 302, response.content[:2000]
        code, _ = await closed_with(comm)
        assert code == CLOSE_ACCESS_CHANGED

    async_to_sync(scenario)()
    assert not Membership.objects.filter(pk=membership.pk).exists()


def test_an_unannounced_change_is_caught_before_the_next_delivery(acme_agent, acme_connection, settings):
    """A membership deleted behind the actions' back (a shell, SQL): no announcement reaches the socket,
    but it re-checks before delivering (here at every fragment) and delivers nothing."""
    settings.LIVE_ACCESS_RECHECK_SECONDS = 0
    conv = ConversationFactory(connection=acme_connection)
    _, cookie = logged_in("acme-agent")

    async def scenario():
        comm = socket(f"/ws/t/acme/?conversation={conv.pk}", cookie)
        assert (await comm.connect())[0]
        await sync_to_async(reply)(conv, acme_agent, "still a member")
        await receive_until(comm, "still a member")
        await sync_to_async(lambda: Membership.objects.filter(user=acme_agent).delete())()
        await sync_to_async(reply)(conv, acme_agent, "secret after the silent removal")
        code, sent = await closed_with(comm)
        assert code == CLOSE_ACCESS_CHANGED
        assert not any("secret after the silent removal" in text for text in sent)

    async_to_sync(scenario)()


def test_a_deactivated_account_is_caught_by_the_recheck_too(acme_agent, acme_connection, settings):
    settings.LIVE_ACCESS_RECHECK_SECONDS = 0
    conv = ConversationFactory(connection=acme_connection)
    _, cookie = logged_in("acme-agent")

    async def scenario():
        comm = socket(f"/ws/t/acme/?conversation={conv.pk}", cookie)
        assert (await comm.connect())[0]
        await sync_to_async(lambda: type(acme_agent).objects.filter(pk=acme_agent.pk).update(is_active=False))()
        await sync_to_async(reply)(conv, acme_agent, "not for a deactivated account")
        code, sent = await closed_with(comm)
        assert code == CLOSE_ACCESS_CHANGED and sent == []

    async_to_sync(scenario)()


def test_the_one_query_recheck_agrees_with_djangos_own_checks(acme, acme_agent, globex, settings):
    """``session_still_member`` answers in one query while nothing changed, and says no, as Django's own
    checks do, after each change that must close a socket."""
    from datetime import timedelta

    from django.contrib.sessions.models import Session
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from inbox.access import session_still_member

    def verdict(key, user=acme_agent, tenant=acme, role="agent"):
        with CaptureQueriesContext(connection) as queries:
            allowed = session_still_member(key, user.pk, tenant.pk, role)
        return allowed, len(queries)

    def fresh_session():
        return logged_in("acme-agent")[0].session.session_key

    key = fresh_session()
    assert verdict(key) == (True, 1)
    assert verdict(key, role="owner")[0] is False  # the role the socket was opened with changed
    assert verdict(key, tenant=globex)[0] is False  # not a member there
    assert verdict(key, user=UserFactory())[0] is False  # the session names another user
    assert verdict("no-such-session")[0] is False

    Session.objects.filter(session_key=key).update(expire_date=timezone.now() - timedelta(seconds=1))
    assert verdict(key)[0] is False  # expired

    key = fresh_session()
    Membership.objects.filter(user=acme_agent).update(role="admin")
    assert verdict(key)[0] is False
    assert verdict(key, role="admin") == (True, 1)
    Membership.objects.filter(user=acme_agent).update(role="agent")

    acme.archived_at = timezone.now()
    acme.save(update_fields=["archived_at"])
    assert verdict(key)[0] is False
    acme.archived_at = None
    acme.save(update_fields=["archived_at"])
    assert verdict(key) == (True, 1)

    acme_agent.is_active = False
    acme_agent.save(update_fields=["is_active"])
    assert verdict(key)[0] is False
    acme_agent.is_active = True
    acme_agent.save(update_fields=["is_active"])

    acme_agent.set_password("another-password-123")  # the session's auth hash no longer matches
    acme_agent.save(update_fields=["password"])
    assert verdict(key)[0] is False
    assert not Session.objects.filter(session_key=key).exists()  # Django's own check flushed it
    acme_agent.set_password(PASSWORD)
    acme_agent.save(update_fields=["password"])

    # A hash that only a fallback key verifies: Django's code decides (it keeps the login and rotates the
    # session key), not the one query.
    key = logged_in("acme-agent")[0].session.session_key
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-key-" + "x" * 40
    allowed, queries = verdict(key)
    assert allowed is True and queries > 1
