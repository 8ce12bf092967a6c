"""Live-update publisher: the ONLY module that talks to the channel layer.

Callers (actions in inbox, sync and connections) call these inside their transaction; the send
happens on commit, so a rolled-back write never shows up in a browser. Payloads are re-rendered
from the latest database state at send time (``inbox.rendering``), so out-of-order commits cannot
show stale data.

Group names (ASCII letters, digits, hyphens and periods, < 100 chars), each led by the deployment's
scope (``config.scope.database_scope``: 12 hex digits naming this deployment's database). Redis pub/sub
ignores the db number and ids are per database, so two deployments (or the test suite beside
`make run`) on one Redis would otherwise share ``tenant-1.inbox``:
    <scope>.tenant-<id>.inbox        conversation list of a tenant (and the connection banners)
    <scope>.conversation-<id>        an open thread
    <scope>.tenant-<id>.connections  connection cards on the managers' connections page
    <scope>.user-<id>                every open socket of a user: told when their access changed
                                     (logout, membership removed or role changed), see inbox/consumers.py
    <scope>.ops                      platform staff's /ops/ pages

Languages: a fragment is rendered once per language some open socket reads (the default one always:
``inbox.live_languages``; ``inbox.rendering.render_localized``; the queries run once) and sent as one event
carrying every rendering; each socket delivers the one of its page's language (inbox.consumers).
``publish_on_commit``'s builds, which query and render together, run once per such language.

Payloads are HTML fragments for htmx's websocket extension: elements with ``hx-swap-oob`` replace
their twin by id; elements with ``data-upsert`` are placed by static/inbox/live.js (a message is
appended to its thread if new, a conversation row is moved to its place in the list if it matches
the page's filters).

List rows are coalesced per tenant by ``inbox.list_coalescer`` (at most a few list sends a second).

Background mode (``background=True``, what the sync engine's batches use, ADR-7): the list rows and the
connection banner are rendered and sent by Celery tasks (``inbox.tasks``), not by the ingesting process.
Thread fragments of the batch's live messages are still sent from the committing process (they are what
an open conversation waits for).

Off-thread mode (``publish_off_thread()``, what the runner's processes turn on, run_connections): every
on-commit publish of the process runs, in order, on the process's publisher thread instead of the
committing thread, so a Redis stall or a slow render never holds the runner's loop or a child's command
loop (docs/runner.md); at most ``OFF_THREAD_BACKLOG`` publishes wait, more are dropped and logged
(``live.publish_dropped``).

Nothing here raises into the caller: a Redis or rendering failure is logged (``live.publish_failed``)
and the database write stands; open pages catch up when their socket reconnects and refreshes.
"""

import asyncio
import atexit
import logging
import os
import queue
import threading
from collections import Counter, defaultdict
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import translation

from config.scope import database_scope
from inbox.list_coalescer import queue_list_update
from inbox.live_languages import languages_in_use
from inbox.rendering import (
    Localized,
    render_alerts,
    render_connection,
    render_conversation_header,
    render_heartbeats,
    render_localized,
    render_message,
    render_thread_stale,
    tenant_slug,
)

logger = logging.getLogger(__name__)

MAX_MESSAGES_RENDERED = 50  # per conversation per call; above this the open thread is told to reload
READ_BEFORE_COUNTING = 2000  # messages of one call read in one query before counting them per conversation
MAX_CONVERSATIONS_NOTIFIED = 1000
SEND_TIMEOUT = 5.0  # seconds; a stuck Redis must not hold a worker forever
OFF_THREAD_BACKLOG = 1000  # publishes waiting for the publisher thread (off-thread mode) before new ones are dropped

# Channel-layer event types (the consumer's handler names: ``live.fragment`` -> ``live_fragment``).
FRAGMENT_EVENT = "live.fragment"
ACCESS_CHANGED_EVENT = "access.changed"
# Sent to the numbers pages with every heartbeat, status change and alert change: an open page fetches its
# numbers' figures again (inbox.views.connection_stats; the page throttles it to once per 5 s).
NUMBERS_STATS_MAY_HAVE_MOVED = '<div data-upsert="trigger" data-event="live:numbers-stats"></div>'
# The same for staff's /ops/ pages (every tenant's numbers, runners, backlogs): they fetch the page's body again.
OPS_MAY_HAVE_MOVED = '<div data-upsert="trigger" data-event="live:ops"></div>'

PUBLISH_FAILED = "live.publish_failed"  # log event: a publish failed; the write stands


def inbox_group(tenant_id: int) -> str:
    return f"{database_scope()}.tenant-{tenant_id}.inbox"


def conversation_group(conversation_id: int) -> str:
    return f"{database_scope()}.conversation-{conversation_id}"


def connections_group(tenant_id: int) -> str:
    return f"{database_scope()}.tenant-{tenant_id}.connections"


def user_group(user_id: int) -> str:
    return f"{database_scope()}.user-{user_id}"


def ops_group() -> str:
    """Platform staff's /ops/ pages (inbox.consumers.OpsConsumer)."""
    return f"{database_scope()}.ops"


# --- public API: call inside the writing transaction -------------------------------------------------


def publish_messages_on_commit(tenant_id: int, conversation_ids, message_ids=(), *, background: bool = False) -> None:
    """New or changed messages (and the conversations whose list row they move).

    ``background``: the list rows are flushed by a Celery task instead of this process (sync batches)."""
    conversation_ids, message_ids = sorted(set(conversation_ids)), sorted(set(message_ids))
    _on_commit("messages", _publish_messages, tenant_id, conversation_ids, message_ids, background)


def publish_conversations_on_commit(tenant_id: int, conversation_ids) -> None:
    """Conversation row changes: assignment, status, unread count, position in the list."""
    _on_commit("conversations", _publish_conversations, tenant_id, sorted(set(conversation_ids)))


def publish_connection_on_commit(tenant_id: int, connection_id: int, *, background: bool = False) -> None:
    """Connection status or history-sync progress changed.

    ``background``: a Celery task renders and sends it (sync batches: the banner's templates are not the
    ingesting process's work, ADR-7)."""
    _on_commit("connection", _enqueue_connection if background else publish_connection, tenant_id, connection_id)


def publish_heartbeats_on_commit(beats: dict[int, list[int]], at) -> None:
    """Live numbers' heartbeats (tenant id -> connection ids, all at ``at``): on commit, each tenant's
    numbers pages get the new time, and their heartbeat ages start again from it (static/inbox/live.js).
    Never waits: the runner's supervisor calls this on every heartbeat."""
    if beats:
        _on_commit("heartbeat", _send_heartbeats, beats, at)


def publish_numbers_stats_on_commit(tenant_ids) -> None:
    """Figures of these tenants' numbers moved without a heartbeat (a batch of media downloaded): on commit,
    their open numbers pages fetch them again (each page throttles that to once per 5 s). Never waits."""
    tenant_ids = sorted({int(t) for t in tenant_ids})
    if tenant_ids:
        _on_commit("numbers_stats", _send_numbers_stats, tenant_ids)


def publish_on_commit(kind: str, build) -> None:
    """For the agent tools (inbox.notes, inbox.labels, inbox.snooze): on commit, ``build()`` re-reads and
    renders and returns ``[(group, html)]``, which are sent in order. ``kind`` names it in failure logs.
    ``build()`` runs once per language (it renders and queries together)."""
    _on_commit(kind, lambda: send_fragments(_built_in_every_language(build)))


def publish_access_changed_on_commit(user_ids) -> None:
    """These users' access changed (logged out, a membership removed, a role changed, the account
    changed): on commit, each of their open sockets re-checks its session and membership and closes
    if either no longer allows it (inbox.consumers). Call inside the writing transaction."""
    user_ids = sorted({int(u) for u in user_ids if u})
    if user_ids:
        _on_commit("access", _send_access_changed, user_ids)


def publish_alerts(tenant_id: int | None) -> None:
    """Send the tenant's open alerts to its numbers pages now, and tell /ops/ (called on commit by
    inbox.alerts; ``None``: a platform alert, for /ops/ only)."""
    _dispatch("alerts", _send_alerts, tenant_id)


def publish_connection(tenant_id: int, connection_id: int) -> None:
    """Send the connection's banner and summary now (on commit, or from ``inbox.tasks.publish_connection_task``)."""
    fragments = render_connection(tenant_id, connection_id)
    if fragments is not None:
        banner, numbers = fragments
        send_fragments([(inbox_group(tenant_id), banner),
                        (connections_group(tenant_id), numbers + NUMBERS_STATS_MAY_HAVE_MOVED),
                        (ops_group(), OPS_MAY_HAVE_MOVED)])


def publish_off_thread() -> None:
    """From now on this process publishes on its publisher thread, never on the committing thread (the
    runner's supervisor and session hosts, whose loops must never wait on Redis). For the whole process."""
    _off_thread["on"] = True


# --- what each publish renders and sends -------------------------------------------------------------


def _built_in_every_language(build) -> list[tuple[str, Localized]]:
    """``build()``'s sends, each in every language read (``languages_in_use``). If the builds disagree on
    their groups (a row changed between them), the default language's are sent alone."""
    built = {}
    for code in languages_in_use():
        with translation.override(code):
            built[code] = build()
    default = built[settings.LANGUAGE_CODE] if settings.LANGUAGE_CODE in built else next(iter(built.values()))
    if any([g for g, _h in sends] != [g for g, _h in default] for sends in built.values()):
        return default
    return [(group, Localized({code: sends[i][1] for code, sends in built.items()}))
            for i, (group, _html) in enumerate(default)]


def _publish_messages(tenant_id, conversation_ids, message_ids, background=False):
    from inbox.models import Message
    from inbox.selectors import messages_for_bubbles

    sends = []
    if message_ids:
        # A thread that gets more than MAX_MESSAGES_RENDERED at once is told to reload itself instead. Up to
        # READ_BEFORE_COUNTING messages (any live sweep's batch: ~500 at 2,000 msg/s) are read once and
        # counted here; above it (a history chunk of thousands) counted first, so they are not all read
        # only to be thrown away.
        by_conversation = defaultdict(list)
        if len(message_ids) <= READ_BEFORE_COUNTING:
            for m in messages_for_bubbles(tenant_id, message_ids):
                by_conversation[m.conversation_id].append(m)
            stale = [cid for cid, rows in by_conversation.items() if len(rows) > MAX_MESSAGES_RENDERED]
            for cid in stale:
                del by_conversation[cid]
        else:
            counts = Counter(Message.objects.for_tenant(tenant_id).filter(pk__any=message_ids)
                             .values_list("conversation_id", flat=True))
            small = [cid for cid, n in counts.items() if n <= MAX_MESSAGES_RENDERED]
            stale = [cid for cid, n in counts.items() if n > MAX_MESSAGES_RENDERED]
            if small:
                for m in messages_for_bubbles(tenant_id, message_ids, small):
                    by_conversation[m.conversation_id].append(m)
        for cid, rows in by_conversation.items():
            sends.append((conversation_group(cid), render_localized(partial(_bubbles, rows))))
        for cid in stale[:MAX_CONVERSATIONS_NOTIFIED]:
            sends.append((conversation_group(cid), render_thread_stale(cid)))
    send_fragments(sends)
    queue_list_update(tenant_id, conversation_ids, background)


def _bubbles(rows) -> str:
    """Pushed bubbles, in the active language and zone (read once for all of them)."""
    from inbox.templatetags.inbox_tags import Clock

    clock = Clock.now()
    return "".join(render_message(m, live=True, clock=clock) for m in rows)


def _publish_conversations(tenant_id, conversation_ids):
    from inbox.selectors import conversations_by_ids, tenant_members

    conversations = conversations_by_ids(tenant_id, conversation_ids[:MAX_CONVERSATIONS_NOTIFIED])
    if conversations:
        members = tenant_members(tenant_id)
        slug = tenant_slug(tenant_id)
        send_fragments([(conversation_group(c.pk),
                         render_localized(lambda c=c: render_conversation_header(c, slug, members)))
                        for c in conversations])
    queue_list_update(tenant_id, conversation_ids)


def _enqueue_connection(tenant_id: int, connection_id: int) -> None:
    from inbox.tasks import publish_connection_task

    publish_connection_task.delay(tenant_id, connection_id)


def _send_heartbeats(beats: dict[int, list[int]], at) -> None:
    send_fragments([*((connections_group(tenant_id),
                       render_localized(lambda ids=ids: render_heartbeats(ids, at)) + NUMBERS_STATS_MAY_HAVE_MOVED)
                      for tenant_id, ids in beats.items()), (ops_group(), OPS_MAY_HAVE_MOVED)], wait=False)


def _send_numbers_stats(tenant_ids: list[int]) -> None:
    send_fragments([(connections_group(t), NUMBERS_STATS_MAY_HAVE_MOVED) for t in tenant_ids], wait=False)


def _send_alerts(tenant_id: int | None) -> None:
    sends = [(ops_group(), OPS_MAY_HAVE_MOVED)]
    if tenant_id is not None:
        sends.append((connections_group(tenant_id), render_alerts(tenant_id) + NUMBERS_STATS_MAY_HAVE_MOVED))
    send_fragments(sends)


def _send_access_changed(user_ids) -> None:
    _send_many([(user_group(u), None) for u in user_ids], event_type=ACCESS_CHANGED_EVENT)


# --- dispatch: on commit, guarded, on this thread or the publisher thread ----------------------------


def _on_commit(kind, fn, *args) -> None:
    transaction.on_commit(lambda: _dispatch(kind, fn, *args))


def _dispatch(kind, fn, *args) -> None:
    if not _off_thread["on"]:
        _guarded(kind, fn, *args)
        return
    try:
        _publish_jobs().put_nowait((kind, fn, args))
    except queue.Full:
        logger.error("live.publish_dropped", extra={"kind": kind, "detail": repr(args)[:300]})


def _guarded(kind, fn, *args):
    try:
        fn(*args)
    except Exception:  # never into the caller: the write committed; browsers catch up on reconnect
        logger.exception(PUBLISH_FAILED, extra={"kind": kind, "detail": repr(args)[:300]})


_off_thread = {"on": False, "pid": None, "jobs": None}
_off_thread_lock = threading.Lock()


def _publish_jobs() -> queue.Queue:
    """The process's queue of off-thread publishes and its thread (re-created after a fork)."""
    with _off_thread_lock:
        if _off_thread["pid"] != os.getpid():
            jobs = queue.Queue(maxsize=OFF_THREAD_BACKLOG)
            threading.Thread(target=_run_publish_jobs, args=(jobs,), name="live-publish-jobs", daemon=True).start()
            _off_thread.update(pid=os.getpid(), jobs=jobs)
        return _off_thread["jobs"]


def _run_publish_jobs(jobs: queue.Queue) -> None:
    from django.db import connection

    from config.db import drop_broken_connections

    while True:
        kind, fn, args = jobs.get()
        try:
            drop_broken_connections()
            _guarded(kind, fn, *args)
        finally:
            jobs.task_done()
            if jobs.empty():
                connection.close()  # this thread's own connection: not held open between bursts


@atexit.register
def _drain_publish_jobs() -> None:
    """A process that exits normally (the supervisor after SIGTERM) still sends what it committed last,
    waiting at most ``SEND_TIMEOUT``."""
    jobs = _off_thread["jobs"] if _off_thread["pid"] == os.getpid() else None
    if jobs is None:
        return
    done = threading.Event()
    threading.Thread(target=lambda: (jobs.join(), done.set()), daemon=True).start()
    done.wait(SEND_TIMEOUT)


# --- sending: one event loop per process ---------------------------------------------------------------


_sender = {"pid": None, "loop": None}
_sender_lock = threading.Lock()


def _sender_loop():
    """One event loop per process, in a daemon thread, for every group send from sync code.

    ``async_to_sync`` would start a fresh loop per call, and the pub/sub channel layer keeps its Redis
    connection per loop: every publish paid a new connection (docs/live-updates.md, "Sending from sync
    code"). Keyed by pid so a forked Celery worker child starts its own loop instead of inheriting a dead
    thread's.
    """
    with _sender_lock:
        if _sender["pid"] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="live-publisher", daemon=True).start()
            _sender.update(pid=os.getpid(), loop=loop, lock=None)
        return _sender["loop"]


def send_fragments(sends: list[tuple[str, str | Localized]], *, wait: bool = True) -> None:
    """HTML fragments to groups, in order (empty fragments are left out). A fragment is one HTML string
    (the same in every language) or a ``Localized`` one. See ``_send_many``."""
    _send_many([(g, h) for g, h in sends if h.strip()], wait=wait)


def _send_many(sends: list[tuple[str, str | None]], event_type: str = FRAGMENT_EVENT, *, wait: bool = True) -> None:
    """Several group sends, in order, on the process's publisher loop; returns when they are sent, or
    at once with ``wait=False`` (a failure is then logged). Fragments (``live.fragment``) carry their
    HTML (``_message``); other event types carry nothing."""
    from channels.layers import get_channel_layer

    if not sends:
        return
    layer = get_channel_layer()

    async def run():
        # One send at a time on this loop: a send that nobody waits for (wait=False) must not interleave
        # with the next one on the layer's connection, or a fragment can be lost.
        lock = _sender.get("lock")
        if lock is None:
            lock = _sender["lock"] = asyncio.Lock()
        async with lock:
            await _group_send_all(layer, [(group, _message(event_type, html)) for group, html in sends])

    future = asyncio.run_coroutine_threadsafe(run(), _sender_loop())
    if not wait:
        future.add_done_callback(_log_failed_send)
        return
    try:
        future.result(timeout=SEND_TIMEOUT)
    except BaseException:
        future.cancel()
        raise


async def _group_send_all(layer, sends: list[tuple[str, dict]]) -> None:
    """``layer.group_send`` of each (group, event), in order. On the Redis pub/sub layer every PUBLISH of the
    call goes in one pipeline per Redis shard (one round trip instead of one per group: a live sweep sends a
    fragment to each of ~100 open threads per batch), through the shard's own connection and lock, as its
    ``group_send`` would (channels_redis 4.3's ``RedisSingleShardConnection.publish``)."""
    from channels_redis.pubsub import RedisPubSubChannelLayer

    if not isinstance(layer, RedisPubSubChannelLayer):
        for group, event in sends:
            await layer.group_send(group, event)
        return
    loop_layer = layer._get_layer()
    by_shard: dict = defaultdict(list)
    for group, event in sends:
        channel = loop_layer._get_group_channel_name(group)
        by_shard[loop_layer._get_shard(channel)].append((channel, layer.serialize(event)))
    for shard, published in by_shard.items():
        async with shard._lock:
            shard._ensure_redis()
            pipe = shard._redis.pipeline(transaction=False)
            for channel, data in published:
                pipe.publish(channel, data)
            await pipe.execute()


def _message(event_type: str, html) -> dict:
    """A channel-layer event. A localized fragment carries the default language's HTML in ``html`` and
    the other languages rendered (the ones open sockets read, ``inbox.live_languages``) in
    ``translations``; each HTML once (the event crosses Redis and every socket server's decoder)."""
    if event_type != FRAGMENT_EVENT:
        return {"type": event_type}
    if isinstance(html, Localized):
        default = settings.LANGUAGE_CODE
        return {"type": event_type, "html": html.get(default) or next(iter(html.values())),
                "translations": {code: text for code, text in html.items() if code != default}}
    return {"type": event_type, "html": html}


def _log_failed_send(future) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.error(PUBLISH_FAILED, extra={"kind": "background send", "error": repr(future.exception())[:300]})
