"""The platform watchdog: turns what /health/detailed sees into alerts that reach people.

``watch_once()`` raises (or keeps open, updated) and resolves:

* ``connection:<id>:down`` for a number that should be connected but has not been seen alive
  (heartbeat, else its last connect) for WATCHDOG_NUMBER_DOWN_SECONDS: disconnected, failed or logged out
  (the runner raises it at once for failed/logged out/banned; the watchdog catches the slow cases and
  resolves it when the number is back or paused);
* ``connection:<id>:journal`` while a number has journal rows that failed or are quarantined;
* ``backup:<slug>`` (tenant-less, to staff) while a tenant's last good backup is older than
  BACKUP_MAX_AGE_HOURS (inbox.snapshot.backups; a failed backup raises it at once);
* ``platform:<part>`` (tenant-less, to staff) while the database-independent parts are down: Redis,
  the Celery workers, beat, the runners.

It runs as its own process (``manage.py watch_platform``, in the Procfile) because it must report the
death of beat and of the workers, which a beat task could not. Platform alerts are e-mailed from this
process (Celery may be what is down); tenant alerts go through Celery as usual.
"""

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from inbox import alerts, health
from inbox.models import Alert

logger = logging.getLogger(__name__)
PLATFORM_PARTS = ("redis", "workers", "beat", "runners")
_failing_since: dict[str, float] = {}  # part -> monotonic time this process first saw it down


def watch_numbers() -> dict:
    from connections.models import Connection

    Status = Connection.Status
    cutoff = timezone.now() - timedelta(seconds=settings.WATCHDOG_NUMBER_DOWN_SECONDS)
    down = list(Connection.objects.unscoped()
                .filter(desired_state=Connection.DesiredState.CONNECTED,
                        status__in=[Status.DISCONNECTED, Status.FAILED, Status.LOGGED_OUT, Status.CONNECTING])
                .annotate(seen=Coalesce("last_heartbeat_at", "last_connected_at", "paired_at", "created_at"))
                .filter(seen__lt=cutoff)
                .only("pk", "tenant_id", "name", "status", "status_detail"))
    down_causes = set()
    for c in down:
        cause = alerts.connection_down_cause(c.pk)
        down_causes.add(cause)
        minutes = int((timezone.now() - c.seen).total_seconds() // 60)
        alerts.do_raise_alert(cause, kind=Alert.Kind.NUMBER_DOWN, tenant_id=c.tenant_id, connection_id=c.pk,
                              message=f"{c.name}: {c.get_status_display().lower()} for {minutes} min"
                                      f"{' (' + c.status_detail + ')' if c.status_detail else ''}")
    # Resolve the open "down" alerts of numbers that are connected again or no longer meant to be.
    open_down = alerts.open_causes("connection:")
    ids = {int(cause.split(":")[1]): cause for cause in open_down if cause.endswith(":down")}
    still_down = set(Connection.objects.unscoped().filter(pk__in=ids).exclude(status=Status.CONNECTED).filter(
        desired_state=Connection.DesiredState.CONNECTED).values_list("pk", flat=True))
    resolved = [alerts.do_resolve_alert(cause) for pk, cause in ids.items() if pk not in still_down]
    return {"down": sorted(c.pk for c in down), "resolved": len([r for r in resolved if r])}


def watch_journal() -> dict:
    from sync.models import RawEvent

    failing = {row["connection_id"]: row for row in RawEvent.objects.unscoped()
               .filter(state__in=[RawEvent.State.FAILED, RawEvent.State.QUARANTINED])
               .values("connection_id", "tenant_id")
               .annotate(failed=Count("id", filter=Q(state=RawEvent.State.FAILED)),
                         quarantined=Count("id", filter=Q(state=RawEvent.State.QUARANTINED)))}
    for cid, row in failing.items():
        alerts.do_raise_alert(alerts.journal_cause(cid), kind=Alert.Kind.JOURNAL_FAILED, tenant_id=row["tenant_id"],
                              connection_id=cid, message=f"{row['failed']} journal row(s) failing and "
                                                         f"{row['quarantined']} quarantined: see Django admin > Raw events")
    for cause in alerts.open_causes("connection:"):
        if cause.endswith(":journal") and int(cause.split(":")[1]) not in failing:
            alerts.do_resolve_alert(cause)
    return {"failing": sorted(failing)}


def watch_platform_parts() -> dict:
    checks = {"redis": health.check_redis()}
    checks["workers"] = health.check_workers() if checks["redis"]["status"] == health.OK else {
        "status": health.ERROR, "error": "Redis (the broker) is down"}
    checks["beat"] = health.check_beat()
    from connections.models import Connection

    checks["runners"] = health.check_runners(list(Connection.objects.unscoped().only("pk", "runner_id")))
    failing, waiting = [], []
    now = time.monotonic()
    for part in PLATFORM_PARTS:
        cause = alerts.platform_cause(part)
        if checks[part]["status"] != health.OK:
            failing.append(part)
            # A part must stay down for the grace period: the platform starting up (a worker not ready
            # yet, beat's first tick to come) or a restart is not worth waking anyone.
            since = _failing_since.setdefault(part, now)
            if now - since < settings.WATCHDOG_PLATFORM_GRACE_SECONDS:
                waiting.append(part)
                continue
            alerts.do_raise_alert(cause, kind=Alert.Kind.PLATFORM, deliver_now=True,
                                  message=f"{part}: {checks[part].get('error', 'down')}")
        else:
            _failing_since.pop(part, None)
            alerts.do_resolve_alert(cause)
    return {"failing": failing, "within_grace": waiting}


def watch_backups() -> dict:
    from inbox.snapshot.backups import watch_backups as watch

    return watch()


def watch_once() -> dict:
    """One round; each part guarded so one failing check does not hide the others."""
    result = {}
    for name, fn in (("platform", watch_platform_parts), ("numbers", watch_numbers), ("journal", watch_journal),
                     ("backups", watch_backups)):
        try:
            result[name] = fn()
        except Exception as exc:  # noqa: BLE001 - e.g. the database is down: logged, next round retries
            logger.exception("watchdog.step_failed", extra={"step": name})
            result[name] = {"error": repr(exc)[:300]}
    logger.info("watchdog.round", extra={"result": result})
    return result
