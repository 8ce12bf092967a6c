"""Celery interface of the inbox: take an id, call one function, nothing else."""

from celery import shared_task


@shared_task(ignore_result=True, soft_time_limit=30, time_limit=60)
def flush_live_updates_task(tenant_id: int) -> int:
    """Send the tenant's pending conversation-list rows (``inbox.list_coalescer``: the leading flush of
    background mode, i.e. of sync batches, so the ingesting process never renders them, and every trailing
    flush). Returns how many were sent."""
    from inbox.list_coalescer import flush_queued_list_updates

    return flush_queued_list_updates(tenant_id)


@shared_task(ignore_result=True, soft_time_limit=30, time_limit=60)
def publish_connection_task(tenant_id: int, connection_id: int) -> None:
    """Send a connection's banner and summary (history-sync progress, queued by sync batches)."""
    from inbox.events import publish_connection

    publish_connection(tenant_id, connection_id)


@shared_task(ignore_result=True, soft_time_limit=60, time_limit=90)
def send_alert_emails_task(alert_id: int) -> int:
    """E-mail a new alert to its tenant's owners/admins (inbox.alerts)."""
    from inbox.alerts import send_alert_emails

    return send_alert_emails(alert_id)


@shared_task(bind=True, ignore_result=True, soft_time_limit=30, time_limit=60, max_retries=6)
def send_alert_webhook_task(self, alert_id: int, event: str) -> int | None:
    """POST an alert to its tenant's webhook; a network error or a non-2xx answer is retried with
    exponential backoff (ALERT_WEBHOOK_RETRY_SECONDS doubling, six times), then logged and dropped."""
    import logging

    from inbox.alerts import post_alert_webhook

    try:
        return post_alert_webhook(alert_id, event)
    except Exception as exc:  # noqa: BLE001 - urllib raises URLError, HTTPError, TimeoutError, ...
        from django.conf import settings

        from config.backoff import backoff

        if self.request.retries >= self.max_retries:
            logging.getLogger(__name__).error("alert.webhook_failed", extra={
                "alert_id": alert_id, "event": event, "error": repr(exc)[:300]})
            return None
        countdown = backoff(self.request.retries + 1, base=settings.ALERT_WEBHOOK_RETRY_SECONDS, cap=3600.0)
        logging.getLogger(__name__).warning("alert.webhook_retry", extra={
            "alert_id": alert_id, "event": event, "attempt": self.request.retries + 1, "error": repr(exc)[:300]})
        raise self.retry(exc=exc, countdown=countdown)


@shared_task(ignore_result=True, soft_time_limit=60, time_limit=120)
def backup_tenants_task() -> list[int]:
    """Beat, daily: one backup task per tenant (inbox.snapshot.backups), so a large tenant does not hold
    up the others and each has its own time limit. A no-op when BACKUPS_ENABLED is false."""
    from django.conf import settings

    from inbox.models import Tenant

    if not settings.BACKUPS_ENABLED:
        return []
    ids = list(Tenant.objects.order_by("pk").values_list("pk", flat=True))
    for tenant_id in ids:
        backup_tenant_task.delay(tenant_id)
    return ids


@shared_task(ignore_result=True, acks_late=False, soft_time_limit=4 * 3600, time_limit=4 * 3600 + 300)
def backup_tenant_task(tenant_id: int) -> int | None:
    """Export one tenant into BACKUP_DIR; returns the BackupRun id. Not acked late: a worker that dies
    mid-backup leaves a failed-looking gap the watchdog reports, not a backup retried forever."""
    from inbox.models import Tenant
    from inbox.snapshot.backups import backup_tenant

    tenant = Tenant.objects.filter(pk=tenant_id).first()
    return backup_tenant(tenant).pk if tenant is not None else None


@shared_task(ignore_result=True, soft_time_limit=60, time_limit=90)
def send_mention_emails_task(note_id: int) -> int:
    """E-mail the members @mentioned in a private note (inbox.notes)."""
    from inbox.notes import send_mention_emails

    return send_mention_emails(note_id)


@shared_task(ignore_result=True, soft_time_limit=30, time_limit=60)
def wake_snoozed_conversation_task(snooze_id: int) -> bool:
    """Enqueued with the snooze's time as ETA (inbox.snooze): open the conversation again if still due."""
    from inbox.snooze import wake_snooze

    return wake_snooze(snooze_id)


@shared_task(ignore_result=True, soft_time_limit=50, time_limit=60)
def wake_due_snoozes_task() -> int:
    """Beat, every minute: wake the snoozes whose ETA task was lost (inbox.snooze)."""
    from inbox.snooze import wake_due_snoozes

    return wake_due_snoozes()


@shared_task(ignore_result=True, soft_time_limit=1700, time_limit=1800)
def sweep_orphan_media_task() -> dict:
    """Beat, daily: remove stored media files no row names, past their grace period (inbox.media)."""
    from inbox.media import sweep_orphan_files

    return sweep_orphan_files().__dict__


@shared_task(ignore_result=True, soft_time_limit=300, time_limit=360)
def purge_task(job_id: int) -> bool:
    """A confirmed purge (inbox.deletion), in batches for PURGE_TIME_BUDGET_SECONDS; queues itself again
    until the job is finished. Returns whether it finished in this run."""
    from inbox.deletion import do_run_purge

    finished = do_run_purge(job_id)
    if not finished:
        purge_task.delay(job_id)
    return finished


@shared_task(ignore_result=True, soft_time_limit=300, time_limit=360)
def media_retention_task() -> dict:
    """Beat, hourly: remove media files older than their tenant's media retention (inbox.retention); comes
    back at once when its time budget ran out."""
    from inbox.retention import remove_expired_media

    summary = remove_expired_media(time_budget=240.0)
    if summary["more"]:
        media_retention_task.apply_async(countdown=1)
    return summary
