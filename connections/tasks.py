"""Celery beat tasks of the connections app (scheduled by migration 0002 into django-celery-beat)."""

import logging

from celery import shared_task

from connections import actions

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def supervise_connections_task():
    """Connected rows whose heartbeat went stale, and rows whose runner is gone: recorded, marked
    disconnected and nudged for a runner to take over."""
    lost = actions.do_mark_lost_runners()
    stale = actions.do_mark_stale_connections()
    if stale:
        logger.warning("connections.stale_heartbeats", extra={"connection_ids": stale})
    return {"stale": stale, "runner_lost": lost}


@shared_task(ignore_result=True)
def retry_failed_connections_task():
    """The slow retry of connections that gave up (30 failed attempts, or a ban that expired)."""
    due = actions.do_retry_failed_connections()
    if due:
        logger.info("connections.slow_retry", extra={"connection_ids": due})
    return due
