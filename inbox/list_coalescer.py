"""Conversation-list coalescing: list rows are not sent per write, at most a few times a second per tenant.

One mechanism, in Redis, whoever publishes (docs/live-updates.md, "Coalescing"):

* every caller adds its conversation ids to the tenant's pending set (``PENDING_TTL``), then tries the
  tenant's gate key (``LIST_FLUSH_INTERVAL``, set if absent);
* the caller that takes the gate flushes at once: in its own process, or, in background mode (history
  batches, ADR-7: the ingesting process renders no list rows), through ``inbox.tasks.flush_live_updates_task``
  unless one is outstanding already (it holds the trailing key);
* a caller that finds the gate held tries the tenant's trailing key (``TRAILING_KEY_TTL``): the one that
  takes it enqueues the flush task ``LIST_FLUSH_INTERVAL`` later (at most one task outstanding per tenant);
* the task clears the trailing key and re-arms the gate before it reads the set, so callers of the next
  interval wait for one trailing task instead of starting a leading flush, and no id is left behind.

If the task is lost with its worker, or no worker runs, the ids wait in the set (with its TTL) for the
next update of that tenant or a page's refresh-on-reconnect.
"""

from config.redis import redis_client
from config.scope import database_scope

LIST_FLUSH_INTERVAL = 0.25  # seconds: at most ~4 list flushes per second per tenant (plus a leading one)
PENDING_TTL = 120  # seconds an un-flushed id may wait in Redis
TRAILING_KEY_TTL = 10_000  # ms; a trailing task lost with its worker blocks trailing flushes at most this long
MAX_LIST_ROWS_PUSHED = 100  # conversations per list flush; above this the open lists are told to reload


def _key(kind: str, tenant_id) -> str:
    """Redis key of a tenant's coalescing state, named after the database: tenant ids are per database,
    and two deployments (or a test run beside `make run`) may share one Redis."""
    return f"live:{database_scope()}:{kind}:{tenant_id}"


def queue_list_update(tenant_id, conversation_ids, background: bool = False) -> None:
    """Add the conversations to the tenant's pending set and flush it now, in a moment, or not at all
    (one is already coming). ``background``: the leading flush runs in a Celery worker, not here."""
    from inbox.tasks import flush_live_updates_task

    if not conversation_ids:
        return
    r = redis_client()
    key = _key("pending", tenant_id)
    pipe = r.pipeline()
    pipe.sadd(key, *conversation_ids)
    pipe.expire(key, PENDING_TTL)
    pipe.set(_key("gate", tenant_id), "1", nx=True, px=int(LIST_FLUSH_INTERVAL * 1000))
    _, _, leading = pipe.execute()
    if leading and not background:
        flush_list_updates(tenant_id)
    elif r.set(_key("trailing", tenant_id), "1", nx=True, px=TRAILING_KEY_TTL):
        # At most one flush task outstanding per tenant, leading or trailing (the trailing key marks it): while
        # the workers were busy, each gate period used to add a leading task, all waiting for a free worker.
        flush_live_updates_task.apply_async((tenant_id,), countdown=0 if leading else LIST_FLUSH_INTERVAL)


def flush_queued_list_updates(tenant_id) -> int:
    """The flush task's body: clear the trailing key, re-arm the gate (so callers in the next
    ``LIST_FLUSH_INTERVAL`` wait for one trailing task instead of starting a leading one: ~4 flushes a
    second per tenant at most), then send every pending list row of the tenant."""
    pipe = redis_client().pipeline()
    pipe.delete(_key("trailing", tenant_id))
    pipe.set(_key("gate", tenant_id), "1", px=int(LIST_FLUSH_INTERVAL * 1000))
    pipe.execute()
    return flush_list_updates(tenant_id)


def flush_list_updates(tenant_id) -> int:
    """Send the list rows of every pending conversation of the tenant (one query, one send)."""
    from inbox import events
    from inbox.rendering import render_conversation_rows, render_list_stale, render_localized, tenant_slug
    from inbox.selectors import conversations_for_rows

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
        events.send_fragments([(events.inbox_group(tenant_id), render_list_stale())])
        return len(ids)
    conversations = conversations_for_rows(tenant_id, ids)
    conversations.sort(key=lambda c: (c.last_message_at, c.pk))
    slug = tenant_slug(tenant_id)
    html = render_localized(lambda: render_conversation_rows(conversations, slug, live=True))
    events.send_fragments([(events.inbox_group(tenant_id), html)])
    return len(conversations)
