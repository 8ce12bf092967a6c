"""Alerts that reach people: raise, update, resolve, and deliver (e-mail, webhook).

``do_raise_alert(cause, ...)``: one open alert per cause (the ``alert_one_open_per_cause`` partial
unique constraint): raising an open cause again updates its message and counts it, nothing is sent
twice; a new alert is e-mailed to the tenant's owners/admins (staff for a platform alert, tenant None)
and POSTed to the tenant's webhook URL. ``do_resolve_alert(cause)`` closes it (and tells the webhook);
raising the cause after that opens a new alert. Both validate nothing and publish nothing but on commit.

Delivery never blocks the caller: tenant alerts are handed to Celery on commit (inbox/tasks.py, the
webhook with retries). Platform alerts are about Celery itself being down, so the watchdog that raises
them e-mails staff from its own process (``deliver_now=True``) and still queues the webhook.

Causes are strings an operator can read: ``connection:<id>:down``, ``connection:<id>:journal``,
``platform:workers``. Helpers below build the common ones.
"""

import json
import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from inbox import integrations
from inbox.models import Alert, AlertEmailOptOut, Membership, Tenant
from inbox.outbound import post_json

logger = logging.getLogger(__name__)


def connection_down_cause(connection_id: int) -> str:
    return f"connection:{connection_id}:down"


def journal_cause(connection_id: int) -> str:
    return f"connection:{connection_id}:journal"


def platform_cause(part: str) -> str:
    return f"platform:{part}"


def do_raise_alert(cause: str, *, kind: str, message: str, tenant_id: int | None = None,
                   connection_id: int | None = None, deliver_now: bool = False) -> tuple[Alert, bool]:
    """Open the alert of ``cause`` or update the open one. Returns (alert, created). Safe to call from
    two processes at once: the loser of the insert race updates the winner's row."""
    message = message[:2000]
    for _ in range(2):
        alert = _update_open(cause, kind, message)
        if alert is not None:
            return alert, False
        try:
            with transaction.atomic():
                alert = Alert.objects.create(cause=cause, kind=kind, message=message, tenant_id=tenant_id,
                                             connection_id=connection_id, last_raised_at=timezone.now())
            integrations.record_events(tenant_id, [integrations.alert_event(alert.pk)])
        except IntegrityError:
            continue  # another process opened it meanwhile: update that one
        transaction.on_commit(_raised_hook(alert.pk, deliver_now), robust=True)  # a delivery error never breaks the caller
        return alert, True
    raise RuntimeError(f"could not raise or update the alert of cause {cause!r}")


def _update_open(cause: str, kind: str, message: str) -> Alert | None:
    updated = Alert.objects.unscoped().filter(cause=cause, resolved_at__isnull=True).update(
        message=message, kind=kind, last_raised_at=timezone.now(), times_raised=F("times_raised") + 1)
    return Alert.objects.unscoped().filter(cause=cause, resolved_at__isnull=True).first() if updated else None


def _raised_hook(alert_id: int, deliver_now: bool):
    return lambda: _on_raised(alert_id, deliver_now)


def do_resolve_alert(cause: str) -> Alert | None:
    """The cause cleared: close its open alert (if any) and tell the webhook on commit."""
    with transaction.atomic():
        alert = Alert.objects.unscoped().select_for_update().filter(cause=cause, resolved_at__isnull=True).first()
        if alert is None:
            return None
        alert.resolved_at = timezone.now()
        alert.save(update_fields=["resolved_at"])
        transaction.on_commit(lambda: _on_resolved(alert), robust=True)
    return alert


def open_causes(prefix: str) -> set[str]:
    return set(Alert.objects.unscoped().filter(cause__startswith=prefix, resolved_at__isnull=True)
               .values_list("cause", flat=True))


def do_set_alert_emails(user, enabled: bool) -> None:
    if enabled:
        AlertEmailOptOut.objects.filter(user=user).delete()
    else:
        AlertEmailOptOut.objects.get_or_create(user=user)
    logger.info("inbox.alert_emails_set", extra={"user_id": user.pk, "enabled": enabled})


def do_set_alert_webhook(tenant, url: str, user=None) -> None:
    Tenant.objects.filter(pk=tenant.pk).update(alert_webhook_url=url)
    tenant.alert_webhook_url = url
    logger.info("inbox.alert_webhook_set", extra={"tenant_id": tenant.pk, "user_id": getattr(user, "pk", None),
                                                  "enabled": bool(url)})


# --- delivery -------------------------------------------------------------------------------------


def _on_raised(alert_id: int, deliver_now: bool) -> None:
    alert = Alert.objects.unscoped().select_related("connection").get(pk=alert_id)
    logger.warning("alert.raised", extra={"alert_id": alert.pk, "cause": alert.cause, "kind": alert.kind,
                                          "tenant_id": alert.tenant_id, "connection_id": alert.connection_id,
                                          "alert_message": alert.message[:300]})
    from inbox.tasks import send_alert_emails_task, send_alert_webhook_task

    _push_live(alert.tenant_id)
    if deliver_now:
        send_alert_emails(alert_id)
    else:
        _enqueue(send_alert_emails_task, alert_id)
    if alert.tenant_id and webhook_url(alert.tenant_id):
        _enqueue(send_alert_webhook_task, alert_id, "alert.raised")


def _on_resolved(alert: Alert) -> None:
    logger.info("alert.resolved", extra={"alert_id": alert.pk, "cause": alert.cause, "tenant_id": alert.tenant_id})
    from inbox.tasks import send_alert_webhook_task

    _push_live(alert.tenant_id)
    if alert.tenant_id and webhook_url(alert.tenant_id):
        _enqueue(send_alert_webhook_task, alert.pk, "alert.resolved")


def _push_live(tenant_id: int | None) -> None:
    """The open numbers pages of the tenant get the new list of open alerts; /ops/ is told (platform
    alerts too: ``tenant_id`` None)."""
    from inbox.events import publish_alerts

    publish_alerts(tenant_id)  # never raises (a failure is logged); the page shows them on its next load


def _enqueue(task, *args) -> None:
    try:
        task.delay(*args)
    except Exception as exc:  # noqa: BLE001 - the broker is down: the alert stays on the pages; never break the caller
        logger.error("alert.enqueue_failed", extra={"task": task.name, "args": list(args), "error": repr(exc)[:300]})


def webhook_url(tenant_id: int) -> str:
    return Tenant.objects.filter(pk=tenant_id).values_list("alert_webhook_url", flat=True).first() or ""


def alert_recipients(alert: Alert) -> list[str]:
    """Active users with an e-mail address who did not opt out: the tenant's owners and admins, or staff
    for a platform alert."""
    users = get_user_model().objects.filter(is_active=True).exclude(email="").exclude(alert_email_opt_out__isnull=False)
    if alert.tenant_id is None:
        users = users.filter(is_staff=True)
    else:
        users = users.filter(memberships__tenant_id=alert.tenant_id, memberships__role__in=Membership.MANAGER_ROLES)
    return sorted(set(users.values_list("email", flat=True)))


def send_alert_emails(alert_id: int) -> int:
    """E-mail one alert to its recipients through Django's mail backend; returns how many were sent."""
    alert = Alert.objects.unscoped().select_related("connection").filter(pk=alert_id).first()
    if alert is None or alert.resolved_at is not None:
        return 0
    to = alert_recipients(alert)
    if not to:
        return 0
    where = Tenant.objects.get(pk=alert.tenant_id).name if alert.tenant_id else "the platform"
    subject = f"[Inbox alert] {alert.get_kind_display()}: {where}"
    body = (f"{alert.message}\n\nCause: {alert.cause or 'n/a'}\nRaised: {alert.created_at:%Y-%m-%d %H:%M:%S} UTC\n"
            f"{'Number: ' + alert.connection.name if alert.connection_id else ''}\n\n"
            "You get this because you manage this tenant (or run the platform). "
            "Turn alert e-mails off on the numbers page.\n")
    # One message per recipient: nobody learns the others' addresses.
    sent = sum(send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [address], fail_silently=False) for address in to)
    logger.info("alert.emailed", extra={"alert_id": alert.pk, "recipients": len(to)})
    return sent


def webhook_payload(alert: Alert, event: str) -> dict:
    return {"event": event, "alert": {
        "id": alert.pk, "cause": alert.cause, "kind": alert.kind, "message": alert.message,
        "tenant_id": alert.tenant_id, "connection_id": alert.connection_id, "times_raised": alert.times_raised,
        "created_at": alert.created_at.isoformat(),
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None}}


def post_alert_webhook(alert_id: int, event: str) -> int | None:
    """POST the alert as JSON to its tenant's webhook URL; returns the HTTP status, None when there is no
    URL any more. Raises on a network error or a non-2xx answer (the task retries)."""
    alert = Alert.objects.unscoped().filter(pk=alert_id).first()
    url = webhook_url(alert.tenant_id) if alert and alert.tenant_id else ""
    if not url:
        return None
    data = json.dumps(webhook_payload(alert, event)).encode()
    status = post_json(url, data, timeout=settings.ALERT_WEBHOOK_TIMEOUT_SECONDS,
                       headers={"User-Agent": "inbox-alerts/1"})
    logger.info("alert.webhook_sent", extra={"alert_id": alert_id, "event": event, "status": status})
    return status
