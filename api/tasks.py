"""Celery interface of the API app: take an id, call one function."""

from celery import shared_task


@shared_task(ignore_result=True, soft_time_limit=90, time_limit=120)
def deliver_webhooks_task(endpoint_id: int, partition: int | None = None) -> int:
    """Send one partition's due webhook deliveries of an endpoint in order (api.webhooks.deliver_pending);
    ``partition`` None (tasks queued before partitions existed, redeliveries of a whole endpoint): each in turn."""
    from api.webhooks import clear_queued_flag, deliver_pending

    clear_queued_flag(endpoint_id, partition)
    return deliver_pending(endpoint_id, partition)


@shared_task(ignore_result=True, soft_time_limit=30, time_limit=60)
def webhook_safety_net_task() -> int:
    """Beat: enqueue every enabled endpoint's partition with a due pending delivery (a task lost with a
    broker blip)."""
    from api.webhooks import endpoints_with_due_deliveries, enqueue_deliveries

    targets = endpoints_with_due_deliveries()
    enqueue_deliveries(targets)
    return len(targets)


@shared_task(ignore_result=True, soft_time_limit=300, time_limit=360)
def api_retention_task() -> dict:
    """Beat, hourly: delete webhook deliveries and idempotency keys past their retention (api.retention)."""
    from api.retention import purge_expired

    return purge_expired()
