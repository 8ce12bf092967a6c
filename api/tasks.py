"""Celery interface of the API app: take an id, call one function."""

from celery import shared_task


@shared_task(ignore_result=True, soft_time_limit=90, time_limit=120)
def deliver_webhooks_task(endpoint_id: int) -> int:
    """Send an endpoint's due webhook deliveries in order (api.webhooks.deliver_pending)."""
    from api.webhooks import deliver_pending

    return deliver_pending(endpoint_id)


@shared_task(ignore_result=True, soft_time_limit=30, time_limit=60)
def webhook_safety_net_task() -> int:
    """Beat: enqueue every enabled endpoint with a due pending delivery (a task lost with a broker blip)."""
    from api.webhooks import endpoints_with_due_deliveries, enqueue_deliveries

    ids = endpoints_with_due_deliveries()
    enqueue_deliveries(ids)
    return len(ids)
