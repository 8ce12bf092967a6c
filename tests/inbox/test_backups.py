"""Scheduled backups (inbox/snapshot/backups.py): files kept, failures and late backups alerted, status shown."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from config.celery import app
from inbox import watchdog
from inbox.models import Alert, BackupRun, Tenant
from inbox.snapshot import backups
from inbox.snapshot.archive import ArchiveReader
from tests.factories import ConversationFactory, MessageFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def backup_dir(settings, tmp_path):
    settings.BACKUP_DIR = str(tmp_path / "backups")
    settings.BACKUP_KEEP = 3
    settings.BACKUP_MAX_AGE_HOURS = 26
    settings.BACKUPS_ENABLED = True
    return tmp_path / "backups"


def test_a_backup_is_an_importable_export_and_only_the_newest_files_are_kept(acme, backup_dir):
    MessageFactory(conversation=ConversationFactory(connection__tenant=acme, tenant=acme))
    folder = backup_dir / "acme"
    folder.mkdir(parents=True)
    for day in range(1, 6):  # older backups, and a file that is not one (never deleted)
        (folder / f"acme-2026010{day}T031500Z.zip").write_bytes(b"old")
    (folder / "notes.txt").write_text("mine")
    run = backups.backup_tenant(acme)
    assert run.status == "ok" and run.rows["messages.jsonl.gz"] == 1 and run.size > 0
    with ArchiveReader(run.path) as reader:
        reader.verify()
        assert reader.manifest["tenant"] == "acme"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["acme-20260105T031500Z.zip", "acme-20260104T031500Z.zip", run.path.rsplit("/", 1)[1], "notes.txt"])


def test_a_failed_backup_alerts_staff_and_the_next_good_one_resolves_it(acme, monkeypatch):
    from inbox.snapshot import export

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export, "export_tenant", broken)
    run = backups.backup_tenant(acme)
    assert run.status == "failed" and "No space left" in run.error
    alert = Alert.objects.unscoped().get(cause="backup:acme", resolved_at__isnull=True)
    assert alert.kind == "backup" and alert.tenant_id is None  # to staff: the platform's job failed
    status = backups.backup_status()
    assert status["tenants"][0]["failed"] and "the last one failed" in status["warnings"][0]
    monkeypatch.undo()
    assert backups.backup_tenant(acme).status == "ok"
    alert.refresh_from_db()
    assert alert.resolved_at is not None
    assert backups.backup_status()["warnings"] == []


def test_a_late_backup_is_a_warning_and_an_alert_from_the_watchdog(acme, settings):
    Tenant.objects.filter(pk=acme.pk).update(created_at=timezone.now() - timedelta(days=3))
    assert backups.backup_status()["tenants"][0]["late"]  # never backed up, and old enough to have been
    assert watchdog.watch_backups() == {"late": ["acme"]}
    assert "none yet" in Alert.objects.unscoped().get(cause="backup:acme", resolved_at__isnull=True).message
    BackupRun.objects.create(tenant=acme, tenant_slug="acme", status="ok", started_at=timezone.now() - timedelta(hours=30),
                             finished_at=timezone.now() - timedelta(hours=30))
    assert watchdog.watch_backups() == {"late": ["acme"]}
    assert "30.0 h old" in Alert.objects.unscoped().get(cause="backup:acme", resolved_at__isnull=True).message
    BackupRun.objects.create(tenant=acme, tenant_slug="acme", status="ok", started_at=timezone.now(),
                             finished_at=timezone.now())
    assert watchdog.watch_backups() == {"late": []}
    assert not Alert.objects.unscoped().filter(cause="backup:acme", resolved_at__isnull=True).exists()
    settings.BACKUPS_ENABLED = False
    Tenant.objects.filter(pk=acme.pk).update(created_at=timezone.now() - timedelta(days=3))
    TenantFactory(slug="newer")
    assert not any(t["late"] for t in backups.backup_status()["tenants"])


def test_health_and_ops_show_the_backups(client, acme, globex, settings):
    settings.HEALTH_TOKEN = "s3cret"
    settings.HEALTH_WORKER_PING_SECONDS = 0.2
    backups.backup_tenant(acme)
    Tenant.objects.filter(pk=globex.pk).update(created_at=timezone.now() - timedelta(days=2))
    body = client.get("/health/detailed", HTTP_AUTHORIZATION="Bearer s3cret").json()
    by_slug = {t["tenant"]: t for t in body["backups"]["tenants"]}
    assert by_slug["acme"]["last_status"] == "ok" and not by_slug["acme"]["late"]
    assert by_slug["globex"]["late"] and "backup of globex: none yet" in body["warnings"]
    client.force_login(UserFactory(username="ops", is_staff=True))
    html = client.get(reverse("ops")).content.decode()
    assert 'data-testid="ops-backups"' in html and "(late)" in html


def test_beat_backs_up_every_tenant_daily_and_prunes_the_journal_hourly(acme, globex, settings):
    daily = PeriodicTask.objects.get(task="inbox.tasks.backup_tenants_task")
    assert (daily.crontab.hour, daily.crontab.minute, daily.enabled) == ("3", "15", True)
    assert PeriodicTask.objects.get(task="sync.tasks.prune_journal_task").interval.every == 3600
    from inbox.tasks import backup_tenants_task

    app.conf.task_always_eager = True
    try:
        assert backup_tenants_task() == [acme.pk, globex.pk]
        settings.BACKUPS_ENABLED = False
        assert backup_tenants_task() == []
    finally:
        app.conf.task_always_eager = False
    assert sorted(BackupRun.objects.values_list("tenant_slug", "status")) == [("acme", "ok"), ("globex", "ok")]
