"""The numbers page follows a history sync's media downloads live: each batch the runner's child fetches
tells the tenant's open numbers pages (over the real Channels layer on Redis) that their figures moved, and
the figures they fetch then count stored / downloading / failed per number. The child runs in this process
with the simulator's fake media server; no supervisor, so no heartbeat sends the same trigger."""

import hashlib
import os

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.urls import reverse

from connections.child import Child, Session
from connections.transport import samples
from connections.transport.simulator import upload_inbound_media
from inbox import events
from inbox.models import MediaFile
from sync import events_builder as b
from tests import procs
from tests.factories import ConnectionFactory, MembershipFactory, TenantFactory, UserFactory
from tests.inbox.test_live import receive_until, session_cookie, socket
from tests.sync.helpers import PN_ANA, T0, feed

pytestmark = [pytest.mark.django_db(transaction=True)]


def history_media(conn, count):
    """``count`` photos in a history sync: metadata at once, files pending on the fake media server."""
    messages = []
    for i in range(count):
        data = samples.jpeg(40 + i, 30)
        content = b.media_message("image", mimetype="image/jpeg", size=len(data), direct_path=upload_inbound_media(data),
                                  file_sha256=hashlib.sha256(data).digest(), media_key=b"k" * 32)
        messages.append(b.web_message(PN_ANA, f"HIST{i:03d}", content, T0 - 100 + i))
    feed(conn, b.history_sync_ev([b.history_conversation(PN_ANA, messages)], "INITIAL_BOOTSTRAP"))


def test_each_fetched_batch_refreshes_the_numbers_pages_media_counts(client, settings):
    settings.MEDIA_FETCH_BATCH = 3
    settings.MEDIA_FETCH_PER_SECOND = 1000.0
    tenant = TenantFactory()
    conn = ConnectionFactory(tenant=tenant, transport="simulator", jid="5511900000611:1@s.whatsapp.net")
    history_media(conn, 5)
    assert MediaFile.objects.for_tenant(tenant).filter(state="pending", history=True).count() == 5

    owner = UserFactory()
    MembershipFactory(user=owner, tenant=tenant, role="owner")
    cookie = session_cookie(client, owner)
    client.force_login(owner)

    read_fd, write_fd = os.pipe()
    child = Child(write_fd)
    session = child.sessions[conn.pk] = Session(child, {"id": conn.pk, "transport": "simulator", "jid": conn.jid})

    def figures():
        return client.get(reverse("connection_stats", args=[tenant.slug])).content.decode().replace("\xa0", " ")

    def next_batch():
        session.media_timer_pending = False  # the rate bound's timer would queue the next batch; run it now
        child.fetch_media(session)

    async def scenario():
        page = socket(f"/ws/t/{tenant.slug}/", cookie)  # the numbers page's socket
        assert (await page.connect())[0]
        await sync_to_async(next_batch)()  # one batch of MEDIA_FETCH_BATCH
        await receive_until(page, events.NUMBERS_STATS_MAY_HAVE_MOVED)
        html = await sync_to_async(figures)()
        assert "3 stored" in html and "2 downloading · 0 failed" in html
        await sync_to_async(next_batch)()
        await receive_until(page, events.NUMBERS_STATS_MAY_HAVE_MOVED)
        html = await sync_to_async(figures)()
        assert "5 stored" in html and "0 downloading · 0 failed" in html
        await sync_to_async(next_batch)()  # nothing left: nothing fetched, no refresh needed
        assert await page.receive_nothing(timeout=1.0)
        await page.disconnect()

    try:
        session.transport.connect()
        procs.wait_for(session.transport.is_alive, 10, message="simulated session connected")
        async_to_sync(scenario)()
    finally:
        session.transport.disconnect()
        child.journal.stop()
        os.close(read_fd)
