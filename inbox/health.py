"""What ``GET /health/detailed`` reports (docs/operations.md): reads only, each part judged on its own.

Required parts (any one down or stale makes the answer 503): the database, Redis, at least one Celery
worker answering a ping, beat's last tick, and the runners (every runner mark fresh, and a live runner
whenever a number wants to be connected). Numbers, the journal, the search backlog and backups are reported with
their ages; a stale number or an old journal backlog is a warning (one tenant's phone is not the
platform being down), and the watchdog (inbox/watchdog.py) turns warnings into alerts.

A tenant admin gets the same platform parts without other tenants' numbers or runners' other leases.
"""

import time

from django.conf import settings
from django.db import connection as db_connection
from django.db.models import Count, Min, Q
from django.utils import timezone

OK, ERROR, WARN = "ok", "error", "warn"


def _error(exc: Exception) -> dict:
    return {"status": ERROR, "error": f"{exc.__class__.__name__}: {exc}"[:300]}


def check_database() -> dict:
    try:
        started = time.monotonic()
        with db_connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return {"status": OK, "ms": round((time.monotonic() - started) * 1000, 1)}
    except Exception as exc:  # a health check reports, it does not raise
        return _error(exc)


def check_redis() -> dict:
    import redis

    try:
        started = time.monotonic()
        redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2).ping()
        return {"status": OK, "ms": round((time.monotonic() - started) * 1000, 1)}
    except Exception as exc:
        return _error(exc)


def check_workers() -> dict:
    """Celery workers by a broadcast ping on the broker of settings (read now, so tests can point it
    elsewhere), waiting HEALTH_WORKER_PING_SECONDS for answers."""
    from kombu import pidbox

    from config.celery import app

    # A mailbox of our own: Celery's (app.control) publishes through the app's producer pool, bound to
    # the broker the app first saw, not to the connection passed in.
    mailbox = pidbox.Mailbox(app.conf.control_exchange, type="fanout", accept=["json"], serializer="json")
    try:
        with app.connection_for_write(settings.CELERY_BROKER_URL) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            replies = mailbox(conn)._broadcast("ping", {}, reply=True, timeout=settings.HEALTH_WORKER_PING_SECONDS)
    except Exception as exc:
        return {**_error(exc), "workers": []}
    names = sorted(name for reply in replies or [] for name in reply)
    if not names:
        return {"status": ERROR, "error": "no Celery worker answered a ping", "workers": []}
    return {"status": OK, "workers": names}


def check_beat() -> dict:
    from config import heartbeats

    try:
        last = heartbeats.last_beat_tick()
    except Exception as exc:
        return _error(exc)
    if last is None:
        return {"status": ERROR, "error": "beat has not ticked (not running?)", "last_tick_age_seconds": None}
    age = round(time.time() - last, 1)
    if age > settings.HEALTH_BEAT_STALE_SECONDS:
        return {"status": ERROR, "error": f"beat's last tick is {age:.0f} s old", "last_tick_age_seconds": age}
    return {"status": OK, "last_tick_age_seconds": age}


def runner_stale_seconds() -> float:
    return settings.HEALTH_RUNNER_STALE_SECONDS or max(2 * settings.RUNNER_LEASE_SECONDS, 3 * settings.RUNNER_HEARTBEAT_SECONDS)


def check_runners(conns: list, tenant_ids=None) -> dict:
    """Runner marks (config/heartbeats.py) with the leases each holds. ``conns``: the numbers the caller
    may see (their leases are listed); the judgement uses every number that wants a session."""
    from config import heartbeats
    from connections.models import Connection

    try:
        marks = heartbeats.runner_marks()
    except Exception as exc:
        return {**_error(exc), "runners": []}
    now, stale_after = time.time(), runner_stale_seconds()
    leases: dict[str, list[int]] = {}
    for c in conns:
        if c.runner_id:
            leases.setdefault(c.runner_id, []).append(c.pk)
    runners, problems = [], []
    for runner_id, mark in sorted(marks.items()):
        age = round(now - float(mark.get("at", 0)), 1)
        stale = age > stale_after
        if stale:  # a tenant admin learns that a runner is down, not the platform's host names
            problems.append(f"runner {runner_id if tenant_ids is None else '(platform)'} last seen {age:.0f} s ago")
        if tenant_ids is not None and runner_id not in leases:
            continue  # a tenant sees the runners holding its numbers
        runners.append({"id": runner_id, "host": mark.get("host"), "pid": mark.get("pid"), "age_seconds": age,
                        "stale": stale, "children": mark.get("children"), "sessions": mark.get("sessions"),
                        "leases": leases.get(runner_id, [])})
    fresh = [r for r, m in marks.items() if now - float(m.get("at", 0)) <= stale_after]
    wanted = Connection.objects.unscoped().filter(desired_state=Connection.DesiredState.CONNECTED).exclude(
        status__in=[Connection.Status.NEW, Connection.Status.LOGGED_OUT]).exists()
    if wanted and not fresh:
        problems.append("numbers want a session and no runner is alive")
    body = {"status": ERROR if problems else OK, "runners": runners}
    if problems:
        body["error"] = "; ".join(problems)
    return body


def numbers(conns: list) -> list[dict]:
    now = timezone.now()
    stale_after = settings.HEALTH_HEARTBEAT_STALE_SECONDS
    out = []
    for c in conns:
        age = round((now - c.last_heartbeat_at).total_seconds(), 1) if c.last_heartbeat_at else None
        wants = c.desired_state == c.DesiredState.CONNECTED
        stale = wants and c.status == c.Status.CONNECTED and (age is None or age > stale_after)
        down = wants and c.status in (c.Status.DISCONNECTED, c.Status.FAILED, c.Status.LOGGED_OUT)
        out.append({"id": c.pk, "tenant_id": c.tenant_id, "name": c.name, "status": c.status,
                    "desired_state": c.desired_state, "heartbeat_age_seconds": age, "runner_id": c.runner_id,
                    "lease_expires_at": c.lease_expires_at.isoformat() if c.lease_expires_at else None,
                    "stale": stale, "down": down})
    return out


def journal(tenant_ids=None) -> dict:
    from sync.models import RawEvent

    qs = RawEvent.objects.unscoped().filter(state__in=[RawEvent.State.PENDING, RawEvent.State.FAILED,
                                                       RawEvent.State.QUARANTINED])
    if tenant_ids is not None:
        qs = qs.filter(tenant_id__in=tenant_ids)
    agg = qs.aggregate(
        pending=Count("id", filter=Q(state__in=[RawEvent.State.PENDING, RawEvent.State.FAILED])),
        failed=Count("id", filter=Q(state=RawEvent.State.FAILED)),
        quarantined=Count("id", filter=Q(state=RawEvent.State.QUARANTINED)),
        oldest=Min("received_at", filter=Q(state__in=[RawEvent.State.PENDING, RawEvent.State.FAILED])))
    oldest = agg.pop("oldest")
    agg["oldest_pending_age_seconds"] = round((timezone.now() - oldest).total_seconds(), 1) if oldest else None
    return agg


def search_backlog(tenant_ids=None) -> dict:
    from django.db.models import Sum

    from sync.models import SearchBacklog

    qs = SearchBacklog.objects.unscoped()
    if tenant_ids is not None:
        qs = qs.filter(tenant_id__in=tenant_ids)
    agg = qs.aggregate(batches=Count("id"), messages=Sum("messages"), oldest=Min("created_at"))
    oldest = agg.pop("oldest")
    agg["messages"] = agg["messages"] or 0
    agg["oldest_age_seconds"] = round((timezone.now() - oldest).total_seconds(), 1) if oldest else None
    return agg


def backups(tenant_ids=None) -> dict:
    """Each tenant's last backups (inbox.snapshot.backups); a late or failed one is a warning."""
    from inbox.snapshot.backups import backup_status

    try:
        status = backup_status(tenant_ids)
    except Exception as exc:  # noqa: BLE001 - a health check reports, it does not raise
        return {**_error(exc), "warnings": [f"backups: {exc.__class__.__name__}"]}
    if tenant_ids is not None:  # a tenant admin sees their tenants' backups, not where the platform keeps them
        status.pop("directory", None)
        for t in status["tenants"]:
            t.pop("last_path", None)
    return status


def detailed_health(tenant_ids=None) -> tuple[bool, dict]:
    """(healthy, body). ``tenant_ids``: None for staff (everything), else the tenants whose numbers and
    backlogs the caller may see."""
    from connections.models import Connection

    checks = {"database": check_database(), "redis": check_redis()}
    conns = []
    if checks["database"]["status"] == OK:
        qs = Connection.objects.unscoped().order_by("tenant_id", "name", "pk")
        if tenant_ids is not None:
            qs = qs.filter(tenant_id__in=tenant_ids)
        conns = list(qs.only("pk", "tenant_id", "name", "status", "desired_state", "last_heartbeat_at",
                             "runner_id", "lease_expires_at"))
    checks["workers"] = check_workers() if checks["redis"]["status"] == OK else {
        "status": ERROR, "error": "Redis (the broker) is down", "workers": []}
    checks["beat"] = check_beat()
    checks["runners"] = check_runners(conns, tenant_ids) if checks["database"]["status"] == OK else {
        "status": ERROR, "error": "the database is down", "runners": []}
    healthy = all(part["status"] == OK for part in checks.values())
    body = {"status": OK if healthy else ERROR, "checked_at": timezone.now().isoformat(), "checks": checks}
    if checks["database"]["status"] == OK:
        body["numbers"] = numbers(conns)
        body["journal"] = journal(tenant_ids)
        body["search_backlog"] = search_backlog(tenant_ids)
        body["backups"] = backups(tenant_ids)
        warnings = [f"number {n['id']} ({n['name']}): heartbeat stale" for n in body["numbers"] if n["stale"]]
        warnings += [f"number {n['id']} ({n['name']}): {n['status']}" for n in body["numbers"] if n["down"]]
        age = body["journal"]["oldest_pending_age_seconds"]
        if age is not None and age > settings.JOURNAL_SAFETY_NET_SECONDS * 10:
            warnings.append(f"journal: oldest pending row is {age:.0f} s old")
        warnings += body["backups"].get("warnings", [])
        body["warnings"] = warnings
    return healthy, body

