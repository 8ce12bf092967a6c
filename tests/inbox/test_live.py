"""The websocket consumer and the publisher, on the real Channels layer over Redis.

Sockets are driven with Channels' WebsocketCommunicator through the project's own ASGI application
(origin check + session auth + routing), with a real session cookie from a real login.
"""

import asyncio
import time

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import transaction
from django.urls import reverse

from config.asgi import application
from inbox import actions, events, list_coalescer
from tests.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db(transaction=True)


def session_cookie(client, user) -> bytes:
    from django.test import Client

    fresh = Client()  # one client per user: logging another one in must not end this session
    fresh.force_login(user)
    return f"sessionid={fresh.cookies['sessionid'].value}".encode()


def socket(path, cookie=b""):
    headers = [(b"origin", b"http://testserver")]
    if cookie:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, path, headers=headers)


async def receive_until(comm, needle: str, timeout: float = 3.0) -> str:
    """Fragments until one contains ``needle`` (other tests' tenants may share the Redis layer)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise AssertionError(f"no fragment containing {needle!r}")
        try:
            text = await comm.receive_from(timeout=remaining)
        except TimeoutError:
            raise AssertionError(f"no fragment containing {needle!r}") from None
        if needle in text:
            return text


@pytest.mark.smoke
def test_anonymous_and_other_tenant_sockets_are_refused(client, acme_agent, globex_owner, acme_connection):
    conv = ConversationFactory(connection=acme_connection)
    globex_cookie = session_cookie(client, globex_owner)
    agent_cookie = session_cookie(client, acme_agent)

    async def scenario():
        anon = socket("/ws/t/acme/")
        connected, code = await anon.connect()
        assert not connected and code == 4403
        other = socket("/ws/t/acme/", globex_cookie)
        connected, code = await other.connect()
        assert not connected and code == 4403
        other_conv = socket(f"/ws/t/globex/?conversation={conv.pk}", globex_cookie)  # acme's thread via globex
        connected, code = await other_conv.connect()
        assert not connected and code == 4403
        member = socket(f"/ws/t/acme/?conversation={conv.pk}", agent_cookie)
        connected, _ = await member.connect()
        assert connected
        await member.disconnect()
        bad_origin = WebsocketCommunicator(application, "/ws/t/acme/", headers=[(b"origin", b"http://evil.example"),
                                                                                (b"cookie", agent_cookie)])
        connected, _ = await bad_origin.connect()
        assert not connected

    async_to_sync(scenario)()


def test_reply_reaches_the_thread_and_the_list_live(client, acme_agent, acme_owner, acme_connection):
    conv = ConversationFactory(connection=acme_connection)
    cookie = session_cookie(client, acme_owner)

    async def scenario():
        thread = socket(f"/ws/t/acme/?conversation={conv.pk}", cookie)
        assert (await thread.connect())[0]
        await sync_to_async(actions.check_queue_reply)(conv, acme_agent, "hi <b>there</b>")
        msg_html = await receive_until(thread, 'data-upsert="thread"')
        assert 'class="tick tick-queued"' in msg_html and "hi &lt;b&gt;there&lt;/b&gt;" in msg_html
        row_html = await receive_until(thread, f'id="conv-{conv.pk}"')
        assert 'data-upsert="list"' in row_html and "hi &lt;b&gt;there&lt;/b&gt;" in row_html
        await thread.disconnect()

    async_to_sync(scenario)()


def test_assignment_and_status_changes_reach_other_viewers(client, acme_agent, acme_owner, acme_connection):
    conv = ConversationFactory(connection=acme_connection)
    cookie = session_cookie(client, acme_owner)

    async def scenario():
        viewer = socket(f"/ws/t/acme/?conversation={conv.pk}", cookie)
        assert (await viewer.connect())[0]
        await sync_to_async(actions.do_assign_conversation)(conv, acme_agent)
        header = await receive_until(viewer, f'id="conv-header-{conv.pk}"')
        assert 'hx-swap-oob="true"' in header
        assert f'<option value="{acme_agent.pk}" selected>' in header
        await sync_to_async(actions.do_set_conversation_status)(conv, "resolved")
        header = await receive_until(viewer, 'aria-pressed="true">Resolved')
        assert f'id="conv-header-{conv.pk}"' in header
        await viewer.disconnect()

    async_to_sync(scenario)()


def test_rolled_back_writes_are_never_published(client, acme_owner, acme_connection):
    conv = ConversationFactory(connection=acme_connection)
    cookie = session_cookie(client, acme_owner)

    def write_and_roll_back():
        try:
            with transaction.atomic():
                actions.do_queue_reply(conv, acme_owner, "never sent")
                raise RuntimeError("boom")
        except RuntimeError:
            pass
        actions.do_queue_reply(conv, acme_owner, "the real one")

    async def scenario():
        viewer = socket(f"/ws/t/acme/?conversation={conv.pk}", cookie)
        assert (await viewer.connect())[0]
        await sync_to_async(write_and_roll_back)()
        text = await receive_until(viewer, "the real one")
        assert "never sent" not in text
        await viewer.disconnect()

    async_to_sync(scenario)()


@pytest.mark.processes
def test_big_batches_are_coalesced_and_bounded(client, acme_owner, acme_connection, make_conversations):
    """A history chunk touching many conversations: the list gets few sends, the thread a reload hint.
    The first commit flushes the list at once in its own process; the rest wait for one trailing flush
    task (inbox.list_coalescer), here run by a real Celery worker."""
    from tests import procs

    convs = make_conversations(30)
    busy = convs[0]
    msgs = [MessageFactory(conversation=busy) for _ in range(events.MAX_MESSAGES_RENDERED + 5)]
    cookie = session_cookie(client, acme_owner)

    def publish_many():
        for conv in convs:  # 30 separate commits, like 30 journal batches in a row
            with transaction.atomic():
                events.publish_messages_on_commit(conv.tenant_id, [conv.pk], [m.pk for m in msgs] if conv == busy else [])

    async def scenario():
        viewer = socket(f"/ws/t/acme/?conversation={busy.pk}", cookie)
        assert (await viewer.connect())[0]
        worker = await sync_to_async(procs.celery_worker)(concurrency=1)
        try:
            await sync_to_async(publish_many)()
            stale = await receive_until(viewer, f"live:stale-{busy.pk}")
            assert "msg-" not in stale  # not 55 rendered messages
            rows_seen, sends = set(), 0
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30.0
            while loop.time() < deadline and len(rows_seen) < len(convs):
                try:
                    text = await viewer.receive_from(timeout=max(0.05, deadline - loop.time()))
                except TimeoutError:
                    break
                ids = {c.pk for c in convs if f'id="conv-{c.pk}"' in text}
                if ids:
                    sends += 1
                    rows_seen |= ids
            assert rows_seen == {c.pk for c in convs}, worker.output()[-3000:]  # nothing missed
            assert sends <= 4  # leading + a few trailing flushes, not 30
        finally:
            await sync_to_async(worker.stop)()
        await viewer.disconnect()

    async_to_sync(scenario)()


def test_a_flush_of_more_conversations_than_a_list_shows_makes_lists_reload(client, acme_owner, acme_connection,
                                                                            make_conversations):
    """More than MAX_LIST_ROWS_PUSHED conversations at once (a history chunk): one small "reload" hint
    instead of hundreds of rendered rows; the list template reloads on it."""
    convs = make_conversations(list_coalescer.MAX_LIST_ROWS_PUSHED + 1)
    cookie = session_cookie(client, acme_owner)

    def publish():
        with transaction.atomic():
            events.publish_messages_on_commit(acme_connection.tenant_id, [c.pk for c in convs])

    async def scenario():
        viewer = socket("/ws/t/acme/", cookie)
        assert (await viewer.connect())[0]
        await sync_to_async(publish)()
        text = await receive_until(viewer, 'data-event="live:list-stale"')
        assert 'id="conv-' not in text and len(text) < 200
        await viewer.disconnect()

    async_to_sync(scenario)()
    client.force_login(acme_owner)
    page = client.get(reverse("conversation_list", args=["acme"]))
    assert b"live:list-stale from:body" in page.content


def test_connection_changes_update_banner_and_card(client, acme_owner, acme_agent, acme_connection):
    from connections.models import Connection, ConnectionEvent

    owner_cookie = session_cookie(client, acme_owner)
    agent_cookie = session_cookie(client, acme_agent)

    def change():
        with transaction.atomic():
            Connection.objects.unscoped().filter(pk=acme_connection.pk).update(status="disconnected",
                                                                               status_detail="phone offline")
            ConnectionEvent.objects.create(tenant=acme_connection.tenant, connection=acme_connection, kind="disconnected",
                                           detail="stream error 503")
            events.publish_connection_on_commit(acme_connection.tenant_id, acme_connection.pk)

    async def scenario():
        owner = socket("/ws/t/acme/", owner_cookie)
        agent = socket("/ws/t/acme/", agent_cookie)
        assert (await owner.connect())[0] and (await agent.connect())[0]
        await sync_to_async(change)()
        banner = await receive_until(agent, f'id="connection-banner-{acme_connection.pk}"')
        assert "phone offline" in banner and "outbox" in banner
        card = await receive_until(owner, f'id="conn-summary-{acme_connection.pk}"')
        assert "Disconnected" in card
        # The new state change comes along, for the history list under the card.
        assert f'id="conn-history-{acme_connection.pk}"' in card and "stream error 503" in card
        # Agents never get the managers' card.
        while not await agent.receive_nothing(timeout=0.5):
            assert "conn-summary-" not in await agent.receive_from()
        await owner.disconnect()
        await agent.disconnect()

    async_to_sync(scenario)()


def test_publishing_never_raises_when_redis_is_down(acme_owner, acme_connection, settings, caplog):
    from inbox.models import Message

    conv = ConversationFactory(connection=acme_connection)
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                                           "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]}}}
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # config.redis keeps one client per URL
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    try:
        message = actions.do_queue_reply(conv, acme_owner, "kept even without Redis")
    finally:
        channel_layers.backends.clear()
    assert Message.objects.unscoped().filter(pk=message.pk, status="queued").exists()
    assert any(r.msg == "live.publish_failed" for r in caplog.records)


@pytest.mark.processes
def test_sync_batches_leave_list_rows_to_a_celery_worker(client, acme_owner, acme_connection, make_conversations):
    """Background mode (what ingestion uses): the committing process renders nothing for the list or the
    sync-progress banner; a real Celery worker's tasks send the rows, coalesced, none missed, and the banner."""
    from tests import procs

    convs = make_conversations(30)
    cookie = session_cookie(client, acme_owner)

    def publish_many():
        for conv in convs:  # 30 journal batches in a row
            with transaction.atomic():
                events.publish_messages_on_commit(conv.tenant_id, [conv.pk], background=True)
        with transaction.atomic():  # a history batch moved the sync progress
            events.publish_connection_on_commit(acme_connection.tenant_id, acme_connection.pk, background=True)

    async def scenario():
        viewer = socket("/ws/t/acme/", cookie)
        assert (await viewer.connect())[0]
        await sync_to_async(publish_many)()
        # No worker yet: nothing may come from the publishing process itself.
        assert await viewer.receive_nothing(timeout=0.6)
        worker = await sync_to_async(procs.celery_worker)(concurrency=1)
        try:
            rows_seen, sends, banner = set(), 0, False
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30.0
            while loop.time() < deadline and (len(rows_seen) < len(convs) or not banner):
                try:
                    text = await viewer.receive_from(timeout=max(0.05, deadline - loop.time()))
                except TimeoutError:
                    break
                banner = banner or f'id="connection-banner-{acme_connection.pk}"' in text
                ids = {c.pk for c in convs if f'id="conv-{c.pk}"' in text}
                if ids:
                    assert 'data-upsert="list"' in text
                    sends += 1
                    rows_seen |= ids
            assert rows_seen == {c.pk for c in convs}, worker.output()[-3000:]  # nothing missed
            assert banner, worker.output()[-3000:]
            assert sends <= 3  # the leading task and at most a trailing one or two, not 30
        finally:
            await sync_to_async(worker.stop)()
        await viewer.disconnect()

    async_to_sync(scenario)()


def test_background_publishing_never_raises_when_redis_is_down(acme_connection, settings, caplog):
    conv = ConversationFactory(connection=acme_connection)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # config.redis keeps one client per URL
    with transaction.atomic():
        events.publish_messages_on_commit(conv.tenant_id, [conv.pk], background=True)
    assert any(r.msg == "live.publish_failed" for r in caplog.records)


# --- deployments sharing one Redis ------------------------------------------------------------------


@pytest.mark.smoke
def test_group_names_are_valid_and_scoped_to_the_deployment(settings):
    from channels.layers import BaseChannelLayer

    from config.scope import database_scope

    layer = BaseChannelLayer()  # the name rules every layer applies
    big = 10**15
    names = [events.inbox_group(big), events.conversation_group(big), events.connections_group(big)]
    for name in names:
        assert layer.require_valid_group_name(name)
        assert len(name) < 100 and name.startswith(database_scope() + ".")
    assert events.inbox_group(1) != events.inbox_group(2) != events.connections_group(1)


def _publish_from_another_deployment(ours: str, tenant_id: int) -> None:
    """Another deployment's worker, on the same Redis with the same channel-layer prefix: a process whose
    DATABASE_URL names another database publishes to tenant ``tenant_id``'s inbox with the product's
    publisher; then (the control: its sends do reach our Redis) to the group name our deployment uses."""
    import subprocess
    import sys

    from tests import procs

    env = procs.process_env()
    env["DATABASE_URL"] = env["DATABASE_URL"].rsplit("/", 1)[0] + f"/{ours}_other_deployment"  # only the name is used
    code = (f"from config.scope import database_scope; from inbox import events; "
            f"events.send_fragments([(events.inbox_group({tenant_id}), '<p>from-the-other-deployment</p>')]); "
            f"events.send_fragments([(database_scope({ours!r}) + '.tenant-{tenant_id}.inbox', '<p>control</p>')])")
    done = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=procs.ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_two_deployments_on_one_redis_do_not_receive_each_others_groups(client, acme_owner, acme_connection):
    """Same Redis, same channel-layer prefix, same tenant id: the other deployment's fragment never
    arrives, the control sent after it (to this deployment's group name) does."""
    from django.db import connection

    cookie = session_cookie(client, acme_owner)

    async def scenario():
        viewer = socket("/ws/t/acme/", cookie)
        assert (await viewer.connect())[0]
        await sync_to_async(_publish_from_another_deployment)(connection.settings_dict["NAME"], acme_connection.tenant_id)
        assert await viewer.receive_from(timeout=3) == "<p>control</p>"
        assert await viewer.receive_nothing(timeout=0.3)
        await viewer.disconnect()

    async_to_sync(scenario)()


def test_heartbeats_reach_the_numbers_page_live_and_only_its_managers(client, acme_agent, acme_owner, acme_connection):
    """Each heartbeat the runner writes restarts the number's age on the owners' and admins' pages
    (static/inbox/live.js ticks it) and has them fetch the numbers' figures again; an agent's socket
    gets nothing."""
    from connections import actions as connection_actions
    from connections.models import Connection

    Connection.objects.unscoped().filter(pk=acme_connection.pk).update(runner_id="r-live", status="connected")
    owner_cookie = session_cookie(client, acme_owner)
    agent_cookie = session_cookie(client, acme_agent)

    async def scenario():
        owner = socket("/ws/t/acme/", owner_cookie)
        agent = socket("/ws/t/acme/", agent_cookie)
        assert (await owner.connect())[0] and (await agent.connect())[0]
        held, _ = await sync_to_async(connection_actions.renew_leases)(
            "r-live", [acme_connection.pk], heartbeat_ids=[acme_connection.pk])
        assert held == {acme_connection.pk}
        beat = await receive_until(owner, f'id="conn-hb-{acme_connection.pk}"')
        written = await sync_to_async(lambda: Connection.objects.unscoped().get(pk=acme_connection.pk).last_heartbeat_at)()
        assert f'datetime="{written.isoformat()}"' in beat and "data-age" in beat and 'hx-swap-oob="true"' in beat
        # ... and tells the page its figures (journal backlog, reconnects, runs) may have moved.
        assert 'data-upsert="trigger" data-event="live:numbers-stats"' in beat
        while not await agent.receive_nothing(timeout=0.5):
            assert "conn-hb-" not in await agent.receive_from()
        await owner.disconnect()
        await agent.disconnect()

    async_to_sync(scenario)()


# --- the runner's processes: off-thread publishing ------------------------------------------------------


@pytest.fixture
def off_thread():
    """This process publishes as the runner's processes do (run_connections turns it on), for one test."""
    events.publish_off_thread()
    yield
    events._off_thread["on"] = False
    jobs = events._off_thread["jobs"]
    if jobs is not None:
        jobs.join()  # nothing of this test left running against the next one's database


def test_off_thread_publishes_reach_the_thread_and_the_list(client, acme_owner, acme_connection, off_thread):
    conv = ConversationFactory(connection=acme_connection)
    cookie = session_cookie(client, acme_owner)

    async def scenario():
        thread = socket(f"/ws/t/acme/?conversation={conv.pk}", cookie)
        assert (await thread.connect())[0]
        await sync_to_async(actions.do_queue_reply)(conv, acme_owner, "sent by the publisher thread")
        await receive_until(thread, 'data-upsert="thread"')
        row_html = await receive_until(thread, f'id="conv-{conv.pk}"')
        assert "sent by the publisher thread" in row_html
        await thread.disconnect()

    async_to_sync(scenario)()


def test_a_redis_stall_never_holds_an_off_thread_caller(acme_connection, settings, caplog, off_thread):
    """A Redis that accepts connections and never answers (frozen, partitioned): what a child's command loop
    calls after a send (the outbox action) returns at once; the publisher thread waits out its timeouts and
    logs the failure."""
    import socket as sockets
    import time

    from channels.layers import channel_layers
    from django.utils import timezone

    from connections import outbox
    from inbox.models import Message

    conv = ConversationFactory(connection=acme_connection)
    message = MessageFactory(conversation=conv, direction=Message.Direction.OUTBOUND, status=Message.Status.SENDING)
    stalled = sockets.socket()
    stalled.bind(("127.0.0.1", 0))
    stalled.listen(16)  # connections complete in the kernel's backlog; nothing is ever read or answered
    url = f"redis://127.0.0.1:{stalled.getsockname()[1]}/0"
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                                           "CONFIG": {"hosts": [url]}}}
    settings.REDIS_URL = url
    channel_layers.backends.clear()
    try:
        started = time.monotonic()
        assert outbox.do_mark_sent(message, "3EB0STALLED", timezone.now())
        assert time.monotonic() - started < 1.0
        assert Message.objects.unscoped().filter(pk=message.pk, status="sent").exists()
        events._off_thread["jobs"].join()  # the publisher thread gives up after its timeouts
        assert any(r.msg == "live.publish_failed" for r in caplog.records)
    finally:
        channel_layers.backends.clear()
        stalled.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("read_before_counting", [events.READ_BEFORE_COUNTING, 10])
def test_a_batch_is_read_once_or_a_big_one_counted_first(monkeypatch, make_conversations, read_before_counting):
    """Both ways of publishing a batch (read in one query and counted here, or counted first when it is
    bigger than READ_BEFORE_COUNTING) send the same thing through the real channel layer: a thread that got
    more than MAX_MESSAGES_RENDERED a reload hint and none of them, the other its messages, in order."""
    from channels.layers import get_channel_layer

    monkeypatch.setattr(events, "READ_BEFORE_COUNTING", read_before_counting)
    busy, quiet = make_conversations(2)
    many = [MessageFactory(conversation=busy) for _ in range(events.MAX_MESSAGES_RENDERED + 1)]
    few = [MessageFactory(conversation=quiet) for _ in range(3)]
    layer = get_channel_layer()

    async def scenario():
        channels = {}
        for conv in (busy, quiet):
            channels[conv.pk] = await layer.new_channel()
            await layer.group_add(events.conversation_group(conv.pk), channels[conv.pk])
        await sync_to_async(events._publish_messages)(busy.tenant_id, [busy.pk, quiet.pk],
                                                      [m.pk for m in [*many, *few]])
        return [(await asyncio.wait_for(layer.receive(channels[c.pk]), 10))["html"] for c in (busy, quiet)]

    stale, thread = async_to_sync(scenario)()
    assert f"live:stale-{busy.pk}" in stale and "msg-" not in stale
    positions = [thread.index(f'id="msg-{m.pk}"') for m in few]
    assert positions == sorted(positions)


def test_one_publish_of_many_groups_reaches_each_group_in_order():
    """``send_fragments`` pipelines a call's PUBLISHes (one round trip per Redis shard): every group still gets
    exactly its fragments, in the order they were given, and a group named twice gets both."""
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    groups = [events.conversation_group(900_000 + i) for i in range(3)]
    sends = [(groups[0], "<p>a1</p>"), (groups[1], "<p>b1</p>"), (groups[0], "<p>a2</p>"),
             (groups[2], "<p>c1</p>"), (groups[1], "<p>b2</p>"), (groups[0], "<p>a3</p>")]

    async def subscribe():
        channels = [await layer.new_channel() for _ in groups]
        for group, channel in zip(groups, channels, strict=True):
            await layer.group_add(group, channel)
        return channels

    async def scenario():
        channels = await subscribe()
        await sync_to_async(events.send_fragments)(sends)
        received = []
        for channel, group in zip(channels, groups, strict=True):
            want = sum(1 for g, _ in sends if g == group)
            got = [(await asyncio.wait_for(layer.receive(channel), 3.0))["html"] for _ in range(want)]
            with pytest.raises(asyncio.TimeoutError):  # nothing more for this group
                await asyncio.wait_for(layer.receive(channel), 0.2)
            received.append(got)
        for group, channel in zip(groups, channels, strict=True):
            await layer.group_discard(group, channel)
        return received

    assert async_to_sync(scenario)() == [["<p>a1</p>", "<p>a2</p>", "<p>a3</p>"], ["<p>b1</p>", "<p>b2</p>"],
                                         ["<p>c1</p>"]]


def test_background_flushes_keep_one_task_per_tenant_outstanding_while_no_worker_takes_them(acme_connection, settings):
    """History batches that keep committing while every worker is busy: one flush task waits for the tenant,
    not one per gate period (they used to run in a pile once a worker came free)."""
    from config.redis import redis_client

    conv = ConversationFactory(connection=acme_connection)
    queue, broker = settings.CELERY_TASK_DEFAULT_QUEUE, redis_client(settings.CELERY_BROKER_URL)
    broker.delete(queue)
    try:
        for _ in range(4):  # four gate periods, no worker
            list_coalescer.queue_list_update(conv.tenant_id, [conv.pk], background=True)
            time.sleep(list_coalescer.LIST_FLUSH_INTERVAL + 0.05)
        assert broker.llen(queue) == 1
        list_coalescer.flush_queued_list_updates(conv.tenant_id)  # what the task does once a worker takes it
        list_coalescer.queue_list_update(conv.tenant_id, [conv.pk], background=True)
        assert broker.llen(queue) == 2  # ... after which the next batch enqueues again
    finally:
        broker.delete(queue)
