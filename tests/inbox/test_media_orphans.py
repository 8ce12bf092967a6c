"""Stored files that no media row names are swept: a whole tenant deleted by Django's cascade leaves its
files behind (the rows go, the storage is not told), and so does a crash between storing a file and
committing its row. The sweep (manage.py sweep_orphan_media, beat's daily task) removes them once past
the grace period, reports counts, and never touches a file a row still names or a name that is not ours."""

import json
import os
import time
from io import StringIO

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from connections.models import Connection
from connections.transport import samples
from inbox import media
from inbox.models import Contact, MediaFile, Tenant
from inbox.tasks import sweep_orphan_media_task
from tests.factories import ConnectionFactory, ConversationFactory, MessageFactory, TenantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


def stored(conv, kind, data, external_id) -> MediaFile:
    msg = MessageFactory(conversation=conv, type=kind, body="", external_id=external_id)
    item = MediaFile.objects.create(tenant=conv.tenant, message=msg, connection=conv.connection, kind=kind)
    assert media.do_store_media(item, data)
    item.refresh_from_db()
    return item


def age(media_root, name, seconds):
    """Make a stored file look ``seconds`` old."""
    path = media_root / name
    then = time.time() - seconds
    os.utime(path, (then, then))


def files(media_root) -> set[str]:
    return {str(p.relative_to(media_root)) for p in media_root.rglob("*") if p.is_file()}


def test_a_tenant_deleted_by_cascade_leaves_files_that_the_sweep_removes(media_root, acme_connection):
    kept = stored(ConversationFactory(connection=acme_connection), "image", samples.jpeg(), "KEEP")
    gone_tenant = TenantFactory()
    conv = ConversationFactory(connection=ConnectionFactory(tenant=gone_tenant))
    photo = stored(conv, "image", samples.png(), "GONE1")
    doc = stored(conv, "document", samples.pdf("gone"), "GONE2")
    # The same bytes as a kept file, in the deleted tenant: its own copy, removed without touching ours.
    same = stored(conv, "image", samples.jpeg(), "GONE3")
    assert same.storage_name != kept.storage_name
    before = files(media_root)
    # Deleted as Django's admin does it (ORM cascades: numbers, then contacts, then the tenant): the rows
    # go, the storage is not told.
    Connection.objects.unscoped().filter(tenant=gone_tenant).delete()
    Contact.objects.for_tenant(gone_tenant).delete()
    Tenant.objects.filter(pk=gone_tenant.pk).delete()
    assert not MediaFile.objects.unscoped().filter(tenant_id=gone_tenant.pk).exists()
    assert files(media_root) == before
    orphans = {photo.storage_name, photo.thumbnail_name, doc.storage_name, same.storage_name, same.thumbnail_name}
    orphan_bytes = sum((media_root / n).stat().st_size for n in orphans)
    for name in before:
        age(media_root, name, 2 * 86400)

    dry = media.sweep_orphan_files(dry_run=True)
    assert (dry.scanned, dry.removed, dry.in_grace, dry.removed_bytes, dry.tenants_gone) == (7, 5, 0, orphan_bytes, 1)
    assert files(media_root) == before
    report = media.sweep_orphan_files()
    assert (report.scanned, report.removed, report.in_grace, report.removed_bytes) == (7, 5, 0, orphan_bytes)
    assert files(media_root) == {kept.storage_name, kept.thumbnail_name}
    assert (media_root / kept.storage_name).read_bytes() == samples.jpeg()
    again = media.sweep_orphan_files()
    assert (again.scanned, again.removed) == (2, 0)


def test_young_orphans_are_kept_for_their_grace_period(media_root, acme_connection):
    """A file stored moments before its row commits looks like an orphan: the grace period keeps it."""
    conv = ConversationFactory(connection=acme_connection)
    item = stored(conv, "document", samples.pdf("young"), "YOUNG")
    MediaFile.objects.unscoped().filter(pk=item.pk).delete()  # as if the row never committed
    report = media.sweep_orphan_files()  # default grace: MEDIA_ORPHAN_GRACE_SECONDS (a day)
    assert (report.scanned, report.removed, report.in_grace) == (1, 0, 1)
    assert (media_root / item.storage_name).exists()
    age(media_root, item.storage_name, 86400 + 60)
    assert media.sweep_orphan_files().removed == 1
    assert not (media_root / item.storage_name).exists()


def test_files_a_row_names_and_names_that_are_not_ours_are_never_removed(media_root, acme_connection):
    conv = ConversationFactory(connection=acme_connection)
    video = stored(conv, "video", samples.mp4(), "VID")  # its poster is named by thumbnail_name
    stray = media_root / "media" / str(conv.tenant_id) / "ab" / "notes.txt"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_text("an operator's file")
    other = media_root / "elsewhere" / ("0" * 64)
    other.parent.mkdir(parents=True)
    other.write_bytes(b"x")
    for name in files(media_root):
        age(media_root, name, 10 * 86400)
    report = media.sweep_orphan_files(0)
    assert report.removed == 0
    assert {video.storage_name, video.thumbnail_name} <= files(media_root) and stray.exists() and other.exists()


@pytest.mark.smoke
def test_the_command_and_the_beat_task_report_counts(media_root, acme_connection):
    conv = ConversationFactory(connection=acme_connection)
    item = stored(conv, "document", samples.pdf("cmd"), "CMD")
    size = item.size
    MediaFile.objects.unscoped().filter(pk=item.pk).delete()
    out = StringIO()
    call_command("sweep_orphan_media", "--json", "--dry-run", "--grace-hours", "0", stdout=out)
    assert json.loads(out.getvalue()) == {"scanned": 1, "removed": 1, "in_grace": 0, "removed_bytes": size,
                                          "tenants_gone": 0, "dry_run": True}
    assert (media_root / item.storage_name).exists()
    out = StringIO()
    call_command("sweep_orphan_media", stdout=out)
    assert out.getvalue().strip() == ("scanned 1 files: removed 0 orphans (0 bytes, 0 deleted tenants), "
                                      "1 orphans kept in their grace period")
    age(media_root, item.storage_name, 2 * 86400)
    assert sweep_orphan_media_task() == {"scanned": 1, "removed": 1, "in_grace": 0, "removed_bytes": size,
                                         "tenants_gone": 0, "dry_run": False}
    assert not (media_root / item.storage_name).exists()
    # Beat runs it daily (a row in django-celery-beat, written by migration inbox/0001).
    task = PeriodicTask.objects.get(task="inbox.tasks.sweep_orphan_media_task")
    assert task.enabled and task.interval.every == 86400 and task.interval.period == "seconds"


def test_no_media_directory_is_an_empty_report(media_root):
    assert media.sweep_orphan_files(0).__dict__ == {"scanned": 0, "removed": 0, "in_grace": 0, "removed_bytes": 0,
                                                    "tenants_gone": 0, "dry_run": False}
