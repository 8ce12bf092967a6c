"""Celery interface of the inbox: take an id, call one function, nothing else."""

from celery import shared_task


@shared_task(ignore_result=True, soft_time_limit=30, time_limit=60)
def flush_live_updates_task(tenant_id: int) -> int:
    """Send the tenant's pending conversation-list rows (queued by ``inbox.events`` in background mode,
    i.e. by sync batches), so the ingesting process never renders them. Returns how many were sent."""
    from inbox.events import flush_queued_list_updates

    return flush_queued_list_updates(tenant_id)


@shared_task(ignore_result=True, soft_time_limit=30, time_limit=60)
def publish_connection_task(tenant_id: int, connection_id: int) -> None:
    """Send a connection's banner and summary (history-sync progress, queued by sync batches)."""
    from inbox.events import publish_connection

    publish_connection(tenant_id, connection_id)
