"""Media retention per tenant: files of messages older than ``Tenant.media_retention_days`` are removed.

A tenant's setting (days; empty keeps everything) is set by platform admins (Django admin, Tenants). Beat
runs ``media_retention_task`` hourly; for each tenant with a setting, media rows whose message was sent
before the cutoff become ``removed`` (state "Removed by retention"): their storage and thumbnail names are
cleared (the checksum, size and type stay, so the thread says what was there), and after each batch's
commit the files no other row of the tenant names are deleted from storage (content-addressed: the same
bytes sent again recently keep their file). Rows still waiting to download are marked too, so old history
is never fetched just to be removed. The message rows stay, with their captions and file names.

Batches: ``MEDIA_RETENTION_BATCH`` rows a transaction (rows locked ``SKIP LOCKED``, so a download storing
one meanwhile is not waited on), within a time budget; the task queues itself again for the rest. Log
line: ``media.retention.removed`` (tenant, rows, cutoff).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from inbox.media import delete_unreferenced_files_on_commit, publish_media_messages_on_commit
from inbox.models import MediaFile, Tenant

logger = logging.getLogger(__name__)
State = MediaFile.State
RETAINED_STATES = (State.FETCHED, State.PENDING, State.FAILED, State.EXPIRED)


def remove_expired_media(*, now=None, batch: int | None = None, time_budget: float | None = None) -> dict:
    """Apply every tenant's media retention; returns {"removed": {slug: rows}, "more": bool}."""
    now = now or timezone.now()
    batch = batch or settings.MEDIA_RETENTION_BATCH
    started = time.monotonic()
    summary = {"removed": {}, "more": False}
    for tenant in Tenant.objects.filter(media_retention_days__isnull=False).order_by("pk"):
        cutoff = now - timedelta(days=tenant.media_retention_days)
        while True:
            if time_budget is not None and time.monotonic() - started > time_budget:
                summary["more"] = True
                return summary
            removed = _remove_batch(tenant, cutoff, batch)
            if removed:
                summary["removed"][tenant.slug] = summary["removed"].get(tenant.slug, 0) + removed
            if removed < batch:
                break
        if tenant.slug in summary["removed"]:
            logger.info("media.retention.removed", extra={"tenant": tenant.slug, "rows": summary["removed"][tenant.slug],
                                                          "cutoff": cutoff.isoformat(), "days": tenant.media_retention_days})
    return summary


def _remove_batch(tenant: Tenant, cutoff, batch: int) -> int:
    with transaction.atomic():
        rows = list(MediaFile.objects.for_tenant(tenant).filter(state__in=RETAINED_STATES, message__sent_at__lt=cutoff)
                    .order_by("pk").select_for_update(skip_locked=True, of=("self",))
                    .values_list("pk", "message_id", "storage_name", "thumbnail_name")[:batch])
        if not rows:
            return 0
        MediaFile.objects.for_tenant(tenant).filter(pk__in=[r[0] for r in rows]).update(
            state=State.REMOVED, storage_name="", thumbnail_name="", next_attempt_at=None, updated_at=timezone.now(),
            error=f"removed by the workspace's media retention ({tenant.media_retention_days} days)")
        delete_unreferenced_files_on_commit([(tenant.pk, name, thumb) for _, _, name, thumb in rows if name])
        publish_media_messages_on_commit(tenant.pk, [r[1] for r in rows])
    return len(rows)
