"""Celery interface of the sync engine: fetch by id, call the processor, nothing else."""

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from sync.models import PendingOperation, RawEvent, SearchBacklog

logger = logging.getLogger(__name__)


def safety_net_age() -> timedelta:
    """Rows pending longer than this are enqueued again by the safety net (their task was lost, or the
    enqueue failed while Redis was down)."""
    return timedelta(seconds=settings.JOURNAL_SAFETY_NET_SECONDS)


# Well inside CELERY_TASK_SOFT_TIME_LIMIT: a long backlog is worked through by successive tasks.
TASK_TIME_BUDGET = 120.0
# The live sweep comes back as a new task this often while a flood goes on, so the tasks queued behind it
# (the coalesced list flushes, every 250 ms per tenant) get a worker process: while the other one processes
# a history sync (process_journal_task, up to TASK_TIME_BUDGET), a 30-second sweep held the live tenants'
# list rows back for as long (bench/flood.py --history, docs/measurements.md). A task costs a few ms.
SWEEP_TIME_BUDGET = 2.0


@shared_task(acks_late=True)
def process_journal_task(connection_id: int) -> dict:
    """Process a connection's due journal rows; a no-op if another worker holds its journal lock
    (that worker re-checks for new rows before releasing it)."""
    from connections.models import Connection
    from sync.journal import processing_started, schedule_processing
    from sync.processor import process_pending
    from sync.search_index import has_backlog, index_search_backlog

    processing_started(connection_id)
    try:
        summary = process_pending(connection_id, time_budget=TASK_TIME_BUDGET)
    except Connection.DoesNotExist:
        logger.warning("sync.journal.no_connection", extra={"connection_id": connection_id})
        return {"connection_id": connection_id, "missing": True}
    if summary.processed or summary.failed:
        logger.info("sync.journal.processed", extra=summary.as_dict())
    if summary.more:
        schedule_processing(connection_id)
        return summary.as_dict()
    if not summary.busy and has_backlog(connection_id):
        # The journal is drained: give the history batches their search entries (ADR-10). It gives way
        # to journal rows that come due meanwhile, and comes back for the rest.
        indexed = index_search_backlog(connection_id, time_budget=TASK_TIME_BUDGET)
        if indexed.more:
            schedule_processing(connection_id)
        return {**summary.as_dict(), "search": indexed.as_dict()}
    return summary.as_dict()


@shared_task(acks_late=True)
def sweep_live_task(shard: int = 0) -> dict:
    """Process the small live events of one shard's numbers together (sync.sweep); come back if the flood
    goes on."""
    from sync.journal import schedule_new_events, sweep_finished, sweep_started
    from sync.sweep import sweep_live

    sweep_started(shard)
    try:
        summary = sweep_live(time_budget=SWEEP_TIME_BUDGET, shard=shard, shards=settings.LIVE_SWEEP_SHARDS)
    finally:
        if sweep_finished(shard):  # events committed while it ran: it may have looked before them
            schedule_new_events([], shards=[shard])
    if summary.processed or summary.handed_over:
        logger.info("sync.sweep.done", extra={"shard": shard, **summary.as_dict()})
    if summary.more:
        schedule_new_events([], shards=[shard])
    return summary.as_dict()


@shared_task
def journal_safety_net_task() -> dict:
    """Beat, every 30 s: enqueue processing for connections with rows pending > JOURNAL_SAFETY_NET_SECONDS, failed
    rows whose retry is due, operations waiting for a message or a search backlog; close idle sync runs."""
    from sync.journal import schedule_processing_many
    from sync.processor import finish_idle_runs

    now = timezone.now()
    age = safety_net_age()
    due = set(
        RawEvent.objects.unscoped()
        .filter(Q(state=RawEvent.State.PENDING, received_at__lt=now - age)
                | Q(state=RawEvent.State.PENDING, created_at__lt=now - age)
                | Q(state=RawEvent.State.FAILED, next_attempt_at__lte=now))
        .values_list("connection_id", flat=True).distinct()
    )
    due.update(PendingOperation.objects.unscoped().filter(created_at__lt=now - age)
               .values_list("connection_id", flat=True).distinct())
    # History batches still waiting for their search entries (the task that would have indexed them was lost).
    due.update(SearchBacklog.objects.unscoped().filter(created_at__lt=now - age)
               .values_list("connection_id", flat=True).distinct())
    schedule_processing_many(sorted(due))
    closed = finish_idle_runs()
    if due or closed:
        logger.info("sync.safety_net", extra={"connections": sorted(due), "runs_closed": closed})
    return {"connections": sorted(due), "runs_closed": closed}


@shared_task(acks_late=True, soft_time_limit=30 * 60, time_limit=31 * 60)
def replay_journal_task(connection_id: int) -> dict | None:
    """Replay a number's whole journal (its filters changed): idempotent, so a retry is harmless."""
    from connections.models import Connection
    from sync.actions import do_replay

    conn = Connection.objects.unscoped().filter(pk=connection_id).first()
    return do_replay(conn) if conn is not None else None


@shared_task(acks_late=True)
def prune_journal_task() -> dict:
    """Beat, hourly: delete processed journal rows older than JOURNAL_RETENTION_DAYS (sync.retention);
    failed and quarantined rows are kept. Comes back at once if its time budget ran out."""
    from sync.retention import prune_processed_events

    summary = prune_processed_events(time_budget=TASK_TIME_BUDGET)
    if summary.more:
        prune_journal_task.apply_async(countdown=1)
    return summary.as_dict()
