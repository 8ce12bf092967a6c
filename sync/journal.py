"""Journal first: every raw WhatsApp event becomes a committed RawEvent row before any processing.

``journal_events`` (one connection) / ``journal_many`` (several, one transaction) are what the runner,
the spool replay and ``import_events`` call with the (event name, serialized protobuf) pairs a
transport hands over. Journaling the same bytes twice is a no-op (unique (connection, digest)).

Processing is scheduled with ``schedule_processing``, which never raises and never waits long: the
journal must not depend on Redis or Celery. An enqueue that fails is logged and left to the safety
net (beat's ``journal_safety_net_task`` picks up rows pending for more than a few seconds). A flood is
processed in batches, not one task per event: a connection has at most one task queued and not yet
started (a Redis flag the task clears when it starts), and that task takes every due row. The live
sweep (PostgreSQL) runs once per shard at a time (``LIVE_SWEEP_SHARDS`` sweeps side by side, each over the
numbers of its shard): what is committed while a shard's sweep runs is taken by the sweep that follows it
(``SWEEP_WAKE``).
"""

import hashlib
import logging
from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.redis import redis_client
from config.scope import database_scope
from connections.models import Connection
from sync import statements
from sync.models import RawEvent

logger = logging.getLogger(__name__)
ENQUEUE_FAILED = "sync.journal.enqueue_failed"  # log event: processing not enqueued; the safety net will
# How long a "task queued" flag lives if its task never starts (lost with a worker, or a process killed
# between setting the flag and publishing): after that the next event enqueues again; the safety net
# covers the quiet case. A worker behind by more than this gets one extra task per key, which is cheap.
QUEUED_FLAG_SECONDS = 10

Event = tuple[str, bytes, datetime | None]


def event_digest(event_name: str, payload: bytes) -> str:
    h = hashlib.sha256(event_name.encode("utf-8"))
    h.update(b"\0")
    h.update(payload)
    return h.hexdigest()


def journal_events(connection_id: int, events: Iterable[Event], *, schedule: bool = True) -> int:
    """Commit (event_name, payload, received_at) rows for a connection; returns how many were new.

    ``schedule`` enqueues ``process_journal_task`` for the connection after commit.
    """
    return journal_many({connection_id: list(events)}, schedule=schedule)


def journal_many(events_by_connection: dict[int, list[Event]], *, schedule: bool = True,
                 tenants: dict[int, int] | None = None) -> int:
    """``journal_events`` for several connections in one transaction (one commit for all).

    ``tenants``: a cache of connection id -> tenant id (a connection never changes tenant); the ones
    missing are looked up and added to it."""
    events_by_connection = {cid: events for cid, events in events_by_connection.items() if events}
    if not events_by_connection:
        return 0
    tenants = {} if tenants is None else tenants
    unknown = [cid for cid in events_by_connection if cid not in tenants]
    if unknown:
        tenants.update(Connection.objects.unscoped().filter(pk__in=unknown).values_list("pk", "tenant_id"))
    missing = set(events_by_connection) - set(tenants)
    if missing:
        raise Connection.DoesNotExist(f"no connection {sorted(missing)}")
    now = timezone.now()
    pending = RawEvent.State.PENDING
    rows = [  # the values of _COLUMNS, without a model instance per row
        (tenants[cid], cid, name, payload, event_digest(name, payload), pending, received_at or now, 0, "", now)
        for cid, events in events_by_connection.items()
        for name, payload, received_at in events
    ]
    with transaction.atomic():
        new = _insert_ignoring_duplicates(rows)
        if schedule:
            ids = sorted(events_by_connection)
            transaction.on_commit(lambda: schedule_new_events(ids))
    return new


_COLUMNS = ("tenant_id", "connection_id", "event_name", "payload", "digest", "state", "received_at", "attempts",
            "error", "created_at")


def _insert_ignoring_duplicates(rows: list[tuple], chunk: int = 200) -> int:
    """INSERT ... ON CONFLICT (connection, digest) DO NOTHING RETURNING id: the count of rows that
    were really new, exact even when several processes journal the same events at once."""
    return statements.insert_journal_rows(RawEvent, _COLUMNS, rows, chunk)


def _queued_key(connection_id) -> str:
    return f"sync:queued:{database_scope()}:{connection_id}"


def schedule_processing(connection_id: int) -> bool:
    """Enqueue ``process_journal_task`` unless one is queued and not started yet; True if enqueued.

    Never raises: with Redis or the broker down the rows stay pending and the safety net enqueues them
    later (and the next event after Redis is back enqueues at once).
    """
    return bool(schedule_processing_many([connection_id]))


def schedule_processing_many(connection_ids) -> list[int]:
    """``schedule_processing`` for several connections with one Redis round trip for the flags; returns
    the ids a task was enqueued for. Never raises."""
    from sync.tasks import process_journal_task

    ids = list(connection_ids)
    if not ids:
        return []
    try:
        pipe = redis_client().pipeline(transaction=False)
        for cid in ids:
            pipe.set(_queued_key(cid), 1, nx=True, ex=QUEUED_FLAG_SECONDS)
        free = [cid for cid, took in zip(ids, pipe.execute(), strict=True) if took]
    except Exception as exc:  # noqa: BLE001 - Redis trouble: the safety net takes over
        logger.warning(ENQUEUE_FAILED, extra={"connection_ids": ids, "error": repr(exc)[:300]})
        return []
    enqueued = []
    for cid in free:
        try:
            process_journal_task.delay(cid)
            enqueued.append(cid)
        except Exception as exc:  # noqa: BLE001 - broker trouble: the safety net takes over
            logger.warning(ENQUEUE_FAILED, extra={"connection_id": cid, "error": repr(exc)[:300]})
            try:
                redis_client().delete(_queued_key(cid))
            except Exception:  # noqa: BLE001, S110 - the flag expires by itself
                pass
    return enqueued


SWEEP_KEY = "sweep"
# One live sweep at a time. While a sweep runs, a commit does not queue another one: it leaves a mark
# that the sweep takes as it ends, and comes back for. (A second sweep queued as the first started found
# the first holding the connections' locks and ended having only read the backlog: in a 2,000 msg/s flood
# a task and a database connection every ~0.4 s; docs/measurements.md.) Each step is one script, so a
# commit either sees the sweep running and leaves its mark before the sweep ends and looks for it, or
# finds it ended and queues the next.
SWEEP_WAKE = """
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('SET', KEYS[3], 1, 'EX', ARGV[1]) return 0 end
if redis.call('SET', KEYS[1], 1, 'NX', 'EX', ARGV[1]) then return 1 end
return 0
"""
SWEEP_START = """
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], 1, 'EX', ARGV[1])
"""
SWEEP_END = """
redis.call('DEL', KEYS[2])
return redis.call('GETDEL', KEYS[3])
"""


def sweep_shard(connection_id: int) -> int:
    """The live sweep that takes a connection's events: LIVE_SWEEP_SHARDS sweeps run side by side, each over
    its own connections (a connection's events stay in one sweep, in order)."""
    return connection_id % settings.LIVE_SWEEP_SHARDS


def _sweep_keys(shard: int) -> list[str]:
    """queued (a task is queued, not started), running, missed (committed while it ran)."""
    base = f"{_queued_key(SWEEP_KEY)}:{shard}"
    return [base, f"{base}:running", f"{base}:missed"]


_scripts: dict = {}


def _sweep_script(source: str):
    """The script object for ``source`` on the shared client (made once: each call hashed the source again)."""
    client = redis_client()
    script = _scripts.get((id(client), source))
    if script is None:
        script = _scripts[(id(client), source)] = client.register_script(source)
    return script


def schedule_new_events(connection_ids, shards=None) -> None:
    """Newly journaled events: on PostgreSQL the live sweep of each connection's shard takes them (one task
    for all its numbers' small events; it hands history chunks and the like to per-connection tasks),
    elsewhere a task per connection. ``shards``: wake these sweeps (a sweep coming back for more). Never
    raises."""
    if not statements.has_live_sweep():
        schedule_processing_many(connection_ids)
        return
    from sync.tasks import sweep_live_task

    wanted = sorted(set(shards or ()) | {sweep_shard(cid) for cid in connection_ids})
    woken: list[int] = []
    try:  # every shard's wake in one round trip (a commit's numbers span the shards)
        pipe = redis_client().pipeline(transaction=False)
        for shard in wanted:
            _sweep_script(SWEEP_WAKE)(keys=_sweep_keys(shard), args=[QUEUED_FLAG_SECONDS], client=pipe)
        woken = [shard for shard, queue_it in zip(wanted, pipe.execute(), strict=True) if queue_it]
        for shard in woken:
            sweep_live_task.delay(shard)
    except Exception as exc:  # noqa: BLE001 - Redis/broker trouble: the safety net takes over
        logger.warning(ENQUEUE_FAILED, extra={"connection_ids": list(connection_ids), "shards": wanted,
                                              "error": repr(exc)[:300]})
        try:  # a flag set for a task that was not queued would hold the next commits' wake for its lifetime
            redis_client().delete(*[_sweep_keys(shard)[0] for shard in woken or wanted])
        except Exception:  # noqa: BLE001, S110 - the flags expire by themselves
            pass


def sweep_started(shard: int) -> None:
    """A shard's sweep task starts: the next commits leave their mark instead of queueing another sweep (for
    QUEUED_FLAG_SECONDS at most: a sweep killed meanwhile is followed by the next commit's)."""
    try:
        _sweep_script(SWEEP_START)(keys=_sweep_keys(shard), args=[QUEUED_FLAG_SECONDS])
    except Exception as exc:  # noqa: BLE001 - the flags expire by themselves
        logger.warning("sync.journal.flag_clear_failed",
                       extra={"connection_id": SWEEP_KEY, "shard": shard, "error": repr(exc)[:300]})


def sweep_finished(shard: int) -> bool:
    """A shard's sweep task ends; True if events were committed while it ran (it may not have seen them)."""
    try:
        return bool(_sweep_script(SWEEP_END)(keys=_sweep_keys(shard)))
    except Exception as exc:  # noqa: BLE001 - the flags expire; the safety net covers what waits
        logger.warning("sync.journal.flag_clear_failed",
                       extra={"connection_id": SWEEP_KEY, "shard": shard, "error": repr(exc)[:300]})
        return False


def processing_started(connection_id) -> None:
    """Called by the task as it starts: rows journaled from now on may enqueue another task."""
    try:
        redis_client().delete(_queued_key(connection_id))
    except Exception as exc:  # noqa: BLE001 - the flag expires by itself
        logger.warning("sync.journal.flag_clear_failed", extra={"connection_id": connection_id, "error": repr(exc)[:300]})
