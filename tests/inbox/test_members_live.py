"""Removing a member from the members page closes their open sockets (the real Channels layer, as in
test_live_access.py, but through the page an owner uses)."""

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.urls import reverse

from inbox.consumers import CLOSE_ACCESS_CHANGED
from inbox.models import Membership
from tests.factories import ConversationFactory
from tests.inbox.test_live import socket
from tests.inbox.test_live_access import closed_with, logged_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_removing_a_member_on_the_members_page_closes_their_socket(acme_agent, acme_owner, acme_connection):
    conv = ConversationFactory(connection=acme_connection)
    _, cookie = logged_in("acme-agent")
    owner, _ = logged_in("acme-admin")
    member = Membership.objects.get(user=acme_agent)

    async def scenario():
        comm = socket(f"/ws/t/acme/?conversation={conv.pk}", cookie)
        assert (await comm.connect())[0]
        response = await sync_to_async(owner.post)(reverse("member_remove", args=["acme", member.pk]))
        assert response.status_code == 302
        code, _ = await closed_with(comm)
        assert code == CLOSE_ACCESS_CHANGED

    async_to_sync(scenario)()
    assert not Membership.objects.filter(pk=member.pk).exists()
