"""Scheduled backups: every tenant exported daily into ``BACKUP_DIR/<slug>/``, the newest ``BACKUP_KEEP`` kept.

Beat runs ``inbox.tasks.backup_tenants_task`` (03:15 UTC, migration inbox 0001), which hands each tenant
to ``backup_tenant_task``: one export (``inbox.snapshot.export``) per tenant, recorded as a ``BackupRun``.
A failed backup keeps its error on the run and raises the staff alert ``backup:<slug>``; the next good
one resolves it. The watchdog (``inbox.watchdog``) raises the same alert for a backup that is late: a
tenant whose last good backup is older than ``BACKUP_MAX_AGE_HOURS`` (or that never had one and is older
than that itself). ``/health/detailed`` and ``/ops/`` show each tenant's last backups (``backup_status``);
late or failed ones are warnings, not a 503 (a late backup is no reason to take the web tier out).

Files are named ``<slug>-<UTC time>.zip``, written as ``.partial`` and renamed when complete (an
interrupted backup never looks like a good one), and only files of that pattern are ever deleted.
What these files do not hold (the journal, whatsmeow's session keys): docs/backups.md, with the
whole-install procedure (pg_dump of both databases).
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db.models import Max, Q
from django.utils import timezone

from inbox import alerts
from inbox.models import Alert, BackupRun, Tenant

logger = logging.getLogger(__name__)

FILE_RE = re.compile(r"^(?P<slug>[-\w]+)-(?P<stamp>\d{8}T\d{6}Z)\.zip$")


def backup_cause(slug: str) -> str:
    return f"backup:{slug}"


def tenant_dir(slug: str) -> Path:
    return Path(settings.BACKUP_DIR) / slug


def backup_tenant(tenant: Tenant) -> BackupRun:
    """Export ``tenant`` into its backup directory, prune its old files, record the run; never raises for a
    failed export (the run and the alert say what happened)."""
    from inbox.snapshot.export import export_tenant

    started = timezone.now()
    run = BackupRun.objects.create(tenant=tenant, tenant_slug=tenant.slug, started_at=started)
    path = tenant_dir(tenant.slug) / f"{tenant.slug}-{started:%Y%m%dT%H%M%SZ}.zip"
    try:
        manifest = export_tenant(tenant, path, with_media=settings.BACKUP_WITH_MEDIA)
    except Exception as exc:  # noqa: BLE001 - recorded and alerted, the other tenants' backups go on
        logger.exception("backup.failed", extra={"tenant": tenant.slug})
        run.status, run.finished_at = BackupRun.Status.FAILED, timezone.now()
        run.error = f"{exc.__class__.__name__}: {exc}"[:2000]
        run.save(update_fields=["status", "error", "finished_at"])
        alerts.do_raise_alert(backup_cause(tenant.slug), kind=Alert.Kind.BACKUP,
                              message=f"Backup of tenant {tenant.slug} failed: {run.error[:500]}")
        return run
    run.status, run.finished_at, run.path = BackupRun.Status.OK, timezone.now(), str(path)
    run.size = path.stat().st_size
    run.rows = {name: meta["rows"] for name, meta in manifest["files"].items() if "rows" in meta}
    run.save(update_fields=["status", "finished_at", "path", "size", "rows"])
    removed = prune_backups(tenant.slug)
    alerts.do_resolve_alert(backup_cause(tenant.slug))
    logger.info("backup.done", extra={"tenant": tenant.slug, "path": str(path), "bytes": run.size,
                                      "removed": [p.name for p in removed]})
    return run


def prune_backups(slug: str, keep: int | None = None) -> list[Path]:
    """Delete all but the newest ``keep`` (BACKUP_KEEP) backup files of a tenant; returns those deleted."""
    keep = settings.BACKUP_KEEP if keep is None else keep
    directory = tenant_dir(slug)
    if not directory.is_dir():
        return []
    files = sorted((p for p in directory.iterdir() if (m := FILE_RE.match(p.name)) and m["slug"] == slug),
                   key=lambda p: p.name, reverse=True)  # the UTC stamp sorts as text
    doomed = files[max(keep, 1):]
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed


def backup_status(tenant_ids=None, now=None) -> dict:
    """Per tenant: the last run and the last good one, and whether it is late; two queries."""
    now = now or timezone.now()
    max_age = timedelta(hours=settings.BACKUP_MAX_AGE_HOURS)
    tenants = Tenant.objects.order_by("slug")
    if tenant_ids is not None:
        tenants = tenants.filter(pk__in=tenant_ids)
    tenants = list(tenants.only("pk", "slug", "created_at"))
    last = {row["tenant_id"]: row for row in BackupRun.objects.filter(tenant__in=tenants).values("tenant_id").annotate(
        last_at=Max("started_at"), last_ok_at=Max("finished_at", filter=Q(status=BackupRun.Status.OK)))}
    latest_runs = {}
    if last:
        for run in BackupRun.objects.filter(Q(*[Q(tenant_id=t, started_at=row["last_at"]) for t, row in last.items()],
                                              _connector=Q.OR)):
            latest_runs[run.tenant_id] = run
    out, warnings = [], []
    for t in tenants:
        row = last.get(t.pk, {})
        ok_at, run = row.get("last_ok_at"), latest_runs.get(t.pk)
        late = settings.BACKUPS_ENABLED and (now - (ok_at or t.created_at)) > max_age
        failed = run is not None and run.status == BackupRun.Status.FAILED
        entry = {"tenant": t.slug, "last_ok_at": ok_at.isoformat() if ok_at else None,
                 "last_ok_age_hours": round((now - ok_at).total_seconds() / 3600, 1) if ok_at else None,
                 "last_status": run.status if run else None, "last_error": run.error[:300] if failed else "",
                 "last_path": run.path if run else "", "last_size": run.size if run else None,
                 "late": late, "failed": failed}
        out.append(entry)
        if late:
            warnings.append(f"backup of {t.slug}: " + (f"last good one {entry['last_ok_age_hours']} h ago" if ok_at
                                                        else "none yet"))
        elif failed:
            warnings.append(f"backup of {t.slug}: the last one failed ({entry['last_error'][:100]})")
    return {"enabled": settings.BACKUPS_ENABLED, "directory": str(settings.BACKUP_DIR),
            "max_age_hours": settings.BACKUP_MAX_AGE_HOURS, "keep": settings.BACKUP_KEEP, "tenants": out,
            "warnings": warnings}


def watch_backups() -> dict:
    """The watchdog's round: raise ``backup:<slug>`` for late backups, resolve it for fresh ones (a failed
    backup's alert is raised by the backup itself and resolved by the next good one)."""
    status = backup_status()
    late = [t["tenant"] for t in status["tenants"] if t["late"]]
    for t in status["tenants"]:
        if t["late"]:
            alerts.do_raise_alert(backup_cause(t["tenant"]), kind=Alert.Kind.BACKUP, message=(
                f"Backup of tenant {t['tenant']} is late: "
                + (f"the last good one is {t['last_ok_age_hours']} h old" if t["last_ok_at"] else "none yet")
                + f" (expected every {settings.BACKUP_MAX_AGE_HOURS:g} h)"))
        elif not t["failed"]:
            alerts.do_resolve_alert(backup_cause(t["tenant"]))
    return {"late": late}
