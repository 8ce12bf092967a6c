"""Retention of the API's logs: webhook deliveries and idempotency keys do not grow for ever.

- A delivered webhook event is kept ``WEBHOOK_DELIVERED_RETENTION_DAYS`` (7): long enough to read the log
  and redeliver after a receiver lost data.
- One given up (``failed``) is kept ``WEBHOOK_FAILED_RETENTION_DAYS`` (30): it is what a person needs to
  see and redeliver after fixing a receiver, and there are few of them.
- A pending one is never deleted, however old: it is an event not sent yet.
- An idempotency key is kept ``IDEMPOTENCY_KEY_RETENTION_DAYS`` (7); the same key after that is a new send.

Deletes go in batches of ``API_RETENTION_BATCH`` ids (oldest first, each batch its own short
transaction), so the beat task never holds long locks nor a long transaction; the task stops after a
time budget and the next run goes on.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from api.models import IdempotencyKey, WebhookDelivery

logger = logging.getLogger(__name__)


def _purge(queryset, batch: int, deadline: float) -> int:
    deleted = 0
    while time.monotonic() < deadline:
        ids = list(queryset.order_by("created_at").values_list("pk", flat=True)[:batch])
        if not ids:
            break
        with transaction.atomic():
            # The filter again: a row that changed since (a delivery redelivered, a key reused) is checked anew.
            n, _ = queryset.filter(pk__in=ids).delete()
        deleted += n
        if len(ids) < batch:
            break
    return deleted


def purge_expired(*, now=None, batch: int | None = None, budget_seconds: float = 240.0) -> dict:
    """Delete what is past retention, in bounded batches; returns counts by kind."""
    now = now or timezone.now()
    batch = batch or settings.API_RETENTION_BATCH
    deadline = time.monotonic() + budget_seconds
    # unscoped: retention is every tenant's, by age and status only.
    deliveries = WebhookDelivery.objects.unscoped()
    counts = {
        "webhook_delivered": _purge(deliveries.filter(
            status=WebhookDelivery.Status.SUCCEEDED,
            created_at__lt=now - timedelta(days=settings.WEBHOOK_DELIVERED_RETENTION_DAYS)), batch, deadline),
        "webhook_failed": _purge(deliveries.filter(
            status=WebhookDelivery.Status.FAILED,
            created_at__lt=now - timedelta(days=settings.WEBHOOK_FAILED_RETENTION_DAYS)), batch, deadline),
        "idempotency_keys": _purge(IdempotencyKey.objects.unscoped().filter(
            created_at__lt=now - timedelta(days=settings.IDEMPOTENCY_KEY_RETENTION_DAYS)), batch, deadline),
    }
    if any(counts.values()):
        logger.info("api.retention", extra=counts)
    return counts
