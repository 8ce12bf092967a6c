"""Live-update publisher: the ONLY module that talks to the channel layer.

Callers (actions in inbox, sync and connections) call these inside their transaction; the send
happens on commit, so a rolled-back write never shows up in a browser. Payloads are re-rendered
from the latest database state at send time, so out-of-order commits cannot show stale data.

Group names (ASCII letters, digits, hyphens and periods, < 100 chars), each led by the deployment's
scope (``config.scope.database_scope``: 12 hex digits naming this deployment's database). Redis pub/sub
ignores the db number and ids are per database, so two deployments (or the test suite beside
`make run`) on one Redis would otherwise share ``tenant-1.inbox``:
    <scope>.tenant-<id>.inbox        conversation list of a tenant (and the connection banners)
    <scope>.conversation-<id>        an open thread
    <scope>.tenant-<id>.connections  connection cards on the managers' connections page
    <scope>.user-<id>                every open socket of a user: told when their access changed
                                     (logout, membership removed or role changed), see inbox/consumers.py

Payloads are HTML fragments for htmx's websocket extension: elements with ``hx-swap-oob`` replace
their twin by id; elements with ``data-upsert`` are placed by static/inbox/live.js (a message is
appended to its thread if new, a conversation row is moved to its place in the list if it matches
the page's filters).

Coalescing: list rows are not sent per call. Conversation ids are added to a Redis set per tenant;
the first caller after a quiet period flushes at once (leading edge) and arms a trailing flush
``LIST_FLUSH_INTERVAL`` later in its own process, so a tenant gets at most a few list updates per
second however many messages a history sync commits. If the process holding the trailing flush
dies, the ids wait in the set (with a TTL) for the next update of that tenant or the page's
refresh-on-reconnect.

Background mode (``background=True``, what the sync engine's batches use): the ingesting process only
adds the ids to the set; the list rows are rendered and sent by ``inbox.tasks.flush_live_updates_task``
in a Celery worker, enqueued at once by the caller that takes the tenant's gate (at most one per
``LIST_FLUSH_INTERVAL``) and, while the gate is held, once more ``LIST_FLUSH_INTERVAL`` later by the
caller that takes the tenant's trailing key (at most one outstanding). Rendering thousands of list rows
and timer threads never compete with ingestion for the GIL. Thread fragments of the batch's live
messages are still sent from the committing process (they are what an open conversation waits for).

Nothing here raises into the caller: a Redis or rendering failure is logged (``live.publish_failed``)
and the database write stands; open pages catch up when their socket reconnects and refreshes.
"""

import logging
import threading
from collections import defaultdict

from django.db import transaction
from django.template.loader import render_to_string

from config.redis import redis_client
from config.scope import database_scope

logger = logging.getLogger(__name__)

LIST_FLUSH_INTERVAL = 0.25  # seconds: at most ~4 list flushes per second per tenant (plus a leading one)
PENDING_TTL = 120  # seconds an un-flushed id may wait in Redis
MAX_MESSAGES_RENDERED = 50  # per conversation per call; above this the open thread is told to reload
MAX_CONVERSATIONS_NOTIFIED = 1000
MAX_LIST_ROWS_PUSHED = 100  # conversations per list flush; above this the open lists are told to reload

FRAGMENT_EVENT = "live.fragment"


def inbox_group(tenant_id: int) -> str:
    return f"{database_scope()}.tenant-{tenant_id}.inbox"


def conversation_group(conversation_id: int) -> str:
    return f"{database_scope()}.conversation-{conversation_id}"


def connections_group(tenant_id: int) -> str:
    return f"{database_scope()}.tenant-{tenant_id}.connections"


def user_group(user_id: int) -> str:
    return f"{database_scope()}.user-{user_id}"


ACCESS_CHANGED_EVENT = "access.changed"


# --- public API: call inside the writing transaction -------------------------------------------------


def publish_messages_on_commit(tenant_id: int, conversation_ids, message_ids=(), *, background: bool = False) -> None:
    """New or changed messages (and the conversations whose list row they move).

    ``background``: the list rows are flushed by a Celery task instead of this process (sync batches)."""
    conversation_ids, message_ids = sorted(set(conversation_ids)), sorted(set(message_ids))
    transaction.on_commit(lambda: _guarded("messages", _publish_messages, tenant_id, conversation_ids, message_ids,
                                           background))


def publish_conversations_on_commit(tenant_id: int, conversation_ids) -> None:
    """Conversation row changes: assignment, status, unread count, position in the list."""
    conversation_ids = sorted(set(conversation_ids))
    transaction.on_commit(lambda: _guarded("conversations", _publish_conversations, tenant_id, conversation_ids))


def publish_connection_on_commit(tenant_id: int, connection_id: int, *, background: bool = False) -> None:
    """Connection status or history-sync progress changed.

    ``background``: a Celery task renders and sends it (sync batches: the banner's templates are not the
    ingesting process's work, ADR-7)."""
    fn = _enqueue_connection if background else publish_connection
    transaction.on_commit(lambda: _guarded("connection", fn, tenant_id, connection_id))


def publish_heartbeats_on_commit(beats: dict[int, list[int]], at) -> None:
    """Live numbers' heartbeats (tenant id -> connection ids, all at ``at``): on commit, each tenant's
    numbers pages get the new time, and their heartbeat ages start again from it (static/inbox/live.js).
    Never waits: the runner's supervisor calls this on every heartbeat."""
    if beats:
        transaction.on_commit(lambda: _guarded("heartbeat", _send_heartbeats, beats, at))


def _send_heartbeats(beats: dict[int, list[int]], at) -> None:
    sends = [(connections_group(tenant_id), "".join(
        render_to_string("inbox/partials/heartbeat.html", {"conn_id": cid, "at": at, "oob": True}) for cid in ids))
        for tenant_id, ids in beats.items()]
    _send_many(sends, wait=False)


def publish_alerts(tenant_id: int) -> None:
    """Send the tenant's open alerts to its numbers pages now (called on commit by inbox.alerts)."""
    from inbox.selectors import open_alerts

    html = render_to_string("inbox/partials/alerts.html", {"alerts": open_alerts(tenant_id), "oob": True,
                                                           "slug": _tenant_slug(tenant_id)})
    _send_many([(connections_group(tenant_id), html)])


def publish_access_changed_on_commit(user_ids) -> None:
    """These users' access changed (logged out, a membership removed, a role changed, the account
    changed): on commit, each of their open sockets re-checks its session and membership and closes
    if either no longer allows it (inbox.consumers). Call inside the writing transaction."""
    user_ids = sorted({int(u) for u in user_ids if u})
    if user_ids:
        transaction.on_commit(lambda: _guarded("access", _send_access_changed, user_ids))


def _send_access_changed(user_ids) -> None:
    _send_many([(user_group(u), None) for u in user_ids], event_type=ACCESS_CHANGED_EVENT)


def _enqueue_connection(tenant_id: int, connection_id: int) -> None:
    from inbox.tasks import publish_connection_task

    publish_connection_task.delay(tenant_id, connection_id)


# --- rendering (also used by the views, so a page and a live update show the same markup) ------------


def render_message(message, *, live: bool = False) -> str:
    """Needs ``message.conversation`` loaded (select_related) for the group sender names."""
    return render_to_string("inbox/partials/message.html",
                            {"m": message, "live": live, "is_group": message.conversation.is_group})


def render_conversation_row(conversation, slug: str, *, live: bool = False) -> str:
    return render_to_string("inbox/partials/conversation_row.html", {"c": conversation, "slug": slug, "live": live})


def render_conversation_header(conversation, slug: str, members) -> str:
    return render_to_string("inbox/partials/conversation_header.html",
                            {"conversation": conversation, "slug": slug, "members": members, "oob": True})


def _tenant_slug(tenant_id: int) -> str:
    from inbox.models import Tenant

    return Tenant.objects.values_list("slug", flat=True).get(pk=tenant_id)


# --- internals ---------------------------------------------------------------------------------------


def _guarded(kind, fn, *args):
    try:
        fn(*args)
    except Exception:  # never into the caller: the write committed; browsers catch up on reconnect
        logger.exception("live.publish_failed", extra={"kind": kind, "detail": repr(args)[:300]})


def _send(group: str, html: str) -> None:
    _send_many([(group, html)])


SEND_TIMEOUT = 5.0  # seconds; a stuck Redis must not hold a worker forever
_sender = {"pid": None, "loop": None}
_sender_lock = threading.Lock()


def _sender_loop():
    """One event loop per process, in a daemon thread, for every group send from sync code.

    ``async_to_sync`` would start a fresh loop per call, and the pub/sub channel layer keeps its Redis
    connection per loop: every publish paid a new connection (~2.4 ms vs ~0.1 ms measured). Keyed by
    pid so a forked Celery worker child starts its own loop instead of inheriting a dead thread's.
    """
    import asyncio
    import os

    with _sender_lock:
        if _sender["pid"] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="live-publisher", daemon=True).start()
            _sender.update(pid=os.getpid(), loop=loop, lock=None)
        return _sender["loop"]


def _send_many(sends: list[tuple[str, str | None]], event_type: str = FRAGMENT_EVENT, *, wait: bool = True) -> None:
    """Several group sends, in order, on the process's publisher loop; returns when they are sent, or
    at once with ``wait=False`` (the runner's loop must never wait on Redis; a failure is logged).
    Fragments (``live.fragment``) carry their HTML; other event types carry nothing."""
    import asyncio

    from channels.layers import get_channel_layer

    if event_type == FRAGMENT_EVENT:
        sends = [(g, h) for g, h in sends if h.strip()]
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
            for group, html in sends:
                message = {"type": event_type, "html": html} if event_type == FRAGMENT_EVENT else {"type": event_type}
                await layer.group_send(group, message)

    future = asyncio.run_coroutine_threadsafe(run(), _sender_loop())
    if not wait:
        future.add_done_callback(_log_failed_send)
        return
    try:
        future.result(timeout=SEND_TIMEOUT)
    except BaseException:
        future.cancel()
        raise


def _log_failed_send(future) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.error("live.publish_failed", extra={"kind": "background send", "error": repr(future.exception())[:300]})


def _publish_messages(tenant_id, conversation_ids, message_ids, background=False):
    from collections import Counter

    from inbox.models import Message

    sends = []
    if message_ids:
        # Count first so a 10k-message history chunk is not rendered only to be thrown away: a thread
        # that gets more than MAX_MESSAGES_RENDERED at once is told to reload itself instead.
        counts = Counter(Message.objects.for_tenant(tenant_id).filter(pk__in=message_ids)
                         .values_list("conversation_id", flat=True))
        small = [cid for cid, n in counts.items() if n <= MAX_MESSAGES_RENDERED]
        stale = [cid for cid, n in counts.items() if n > MAX_MESSAGES_RENDERED]
        by_conversation = defaultdict(list)
        if small:
            rows = (
                Message.objects.for_tenant(tenant_id)
                .filter(pk__in=message_ids, conversation_id__in=small)
                .select_related("sender_user", "conversation", "media")
                .defer("media__ref")
                .order_by("sent_at", "id")
            )
            for m in rows:
                by_conversation[m.conversation_id].append(m)
        for cid, rows in by_conversation.items():
            sends.append((conversation_group(cid), "".join(render_message(m, live=True) for m in rows)))
        for cid in stale[:MAX_CONVERSATIONS_NOTIFIED]:
            sends.append((conversation_group(cid),
                          render_to_string("inbox/partials/thread_stale.html", {"conversation_id": cid})))
    _send_many(sends)
    _queue_list_update(tenant_id, conversation_ids, background)


def _publish_conversations(tenant_id, conversation_ids):
    from inbox.selectors import conversations_by_ids, tenant_members

    conversations = conversations_by_ids(tenant_id, conversation_ids[:MAX_CONVERSATIONS_NOTIFIED])
    if conversations:
        members = tenant_members(tenant_id)
        slug = _tenant_slug(tenant_id)
        _send_many([(conversation_group(c.pk), render_conversation_header(c, slug, members)) for c in conversations])
    _queue_list_update(tenant_id, conversation_ids)


def _key(kind: str, tenant_id) -> str:
    """Redis key of a tenant's coalescing state, named after the database: tenant ids are per database,
    and two deployments (or a test run beside `make run`) may share one Redis."""
    return f"live:{database_scope()}:{kind}:{tenant_id}"


def _queue_list_update(tenant_id, conversation_ids, background=False):
    if not conversation_ids:
        return
    r = redis_client()
    key = _key("pending", tenant_id)
    pipe = r.pipeline()
    pipe.sadd(key, *conversation_ids)
    pipe.expire(key, PENDING_TTL)
    pipe.set(_key("gate", tenant_id), "1", nx=True, px=int(LIST_FLUSH_INTERVAL * 1000))
    _, _, leading = pipe.execute()
    if background:
        _enqueue_flush(r, tenant_id, leading)
    elif leading:
        flush_list_updates(tenant_id)
        _arm_trailing_flush(tenant_id)


TRAILING_KEY_TTL = 10_000  # ms; a trailing task lost with its worker blocks trailing flushes at most this long


def _enqueue_flush(r, tenant_id, leading):
    """Background mode: a flush task now for the gate's holder; else one ``LIST_FLUSH_INTERVAL`` later,
    unless one is already waiting (the trailing key). The ids are in the set before either key is
    tried, and the task clears the trailing key before it reads the set, so no id is left behind."""
    from inbox.tasks import flush_live_updates_task

    if leading:
        flush_live_updates_task.delay(tenant_id)
    elif r.set(_key("trailing", tenant_id), "1", nx=True, px=TRAILING_KEY_TTL):
        flush_live_updates_task.apply_async((tenant_id,), countdown=LIST_FLUSH_INTERVAL)


def flush_queued_list_updates(tenant_id) -> int:
    """The flush task's body: clear the trailing key, re-arm the gate (so callers in the next
    ``LIST_FLUSH_INTERVAL`` wait for one trailing task instead of starting a leading one: ~4 flushes a
    second per tenant at most, as in-process), then send every pending list row of the tenant."""
    pipe = redis_client().pipeline()
    pipe.delete(_key("trailing", tenant_id))
    pipe.set(_key("gate", tenant_id), "1", px=int(LIST_FLUSH_INTERVAL * 1000))
    pipe.execute()
    return flush_list_updates(tenant_id)


def _arm_trailing_flush(tenant_id):
    # Not a daemon: a short-lived process (a management command) still delivers its last update.
    timer = threading.Timer(LIST_FLUSH_INTERVAL, _trailing_flush_in_thread, args=(tenant_id,))
    timer.daemon = False
    timer.start()


def _trailing_flush_in_thread(tenant_id):
    from django.db import connection

    try:
        _guarded("trailing", _trailing_flush, tenant_id)
    finally:
        connection.close()  # this thread's own connection; never leave it open


def _trailing_flush(tenant_id):
    r = redis_client()
    if not r.scard(_key("pending", tenant_id)):
        return
    r.set(_key("gate", tenant_id), "1", px=int(LIST_FLUSH_INTERVAL * 1000))
    flush_list_updates(tenant_id)
    _arm_trailing_flush(tenant_id)


def flush_list_updates(tenant_id) -> int:
    """Send the list rows of every pending conversation of the tenant (one query, one send)."""
    from inbox.selectors import conversations_by_ids

    r = redis_client()
    key = _key("pending", tenant_id)
    pipe = r.pipeline()
    pipe.smembers(key)
    pipe.delete(key)
    members, _ = pipe.execute()
    ids = sorted(int(x) for x in members)
    if not ids:
        return 0
    if len(ids) > MAX_LIST_ROWS_PUSHED:
        # A history chunk moved hundreds of conversations: rendering them all for every open inbox
        # costs per row (docs/measurements.md) and more than a page is never on screen. The lists reload themselves.
        _send(inbox_group(tenant_id), render_to_string("inbox/partials/list_stale.html"))
        return len(ids)
    conversations = conversations_by_ids(tenant_id, ids)
    conversations.sort(key=lambda c: (c.last_message_at, c.pk))
    slug = _tenant_slug(tenant_id)
    html = "".join(render_conversation_row(c, slug, live=True) for c in conversations)
    _send(inbox_group(tenant_id), html)
    return len(conversations)


def publish_connection(tenant_id, connection_id):
    """Send the connection's banner and summary now (on commit, or from ``inbox.tasks.publish_connection_task``)."""
    from connections.models import Connection
    from inbox.selectors import active_sync_runs

    connection = Connection.objects.for_tenant(tenant_id).filter(pk=connection_id).first()
    if connection is None:
        return
    from inbox.selectors import connection_history

    runs = active_sync_runs(tenant_id, [connection_id])
    events = connection_history(tenant_id, [connection_id]).get(connection_id, [])
    ctx = {"conn": connection, "run": runs.get(connection_id), "oob": True, "slug": _tenant_slug(tenant_id),
           "events": events}
    # The numbers page's summary and its latest state changes (one message: both swap out of band).
    numbers_html = (render_to_string("inbox/partials/connection_summary.html", ctx)
                    + render_to_string("inbox/partials/connection_events.html", ctx))
    _send_many(
        [
            (inbox_group(tenant_id), render_to_string("inbox/partials/connection_banner.html", ctx)),
            (connections_group(tenant_id), numbers_html),
        ]
    )
