"""Media retention per tenant (inbox.retention): files of old messages removed, the messages kept and shown
as "removed by retention"; other tenants, newer messages and shared content untouched."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from connections.transport import samples
from inbox import media
from inbox.models import MediaFile, Message
from inbox.retention import remove_expired_media
from tests.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


def received(conv, kind, data, ext, days_ago) -> MediaFile:
    msg = MessageFactory(conversation=conv, type=kind, body=f"caption {ext}", external_id=ext,
                         sent_at=timezone.now() - timedelta(days=days_ago))
    item = MediaFile.objects.create(tenant=conv.tenant, message=msg, connection=conv.connection, kind=kind)
    if data is not None:
        assert media.do_store_media(item, data)
    item.refresh_from_db()
    return item


@pytest.mark.smoke
def test_old_media_files_go_the_messages_stay_and_recent_or_other_tenants_media_stay(
        client, acme, acme_owner, acme_connection, media_root, django_capture_on_commit_callbacks):
    acme.media_retention_days = 30
    acme.save()
    conv = ConversationFactory(connection=acme_connection)
    old_photo = received(conv, "image", samples.jpeg(), "OLD-PHOTO", 40)
    old_pdf = received(conv, "document", samples.pdf(), "OLD-PDF", 31)
    received(conv, "video", None, "OLD-PENDING", 90)  # never downloaded: not fetched just to be removed
    new_photo = received(conv, "image", samples.jpeg(), "NEW-PHOTO", 2)  # the same bytes, sent again lately
    new_voice = received(conv, "audio", samples.ogg_opus(), "NEW-VOICE", 29)
    theirs = received(ConversationFactory(), "document", samples.pdf(), "THEIRS", 400)  # no retention set
    assert (media_root / old_pdf.storage_name).exists()

    with django_capture_on_commit_callbacks(execute=True):
        summary = remove_expired_media(batch=2)
    assert summary == {"removed": {acme.slug: 3}, "more": False}
    state = {m.message.external_id: m for m in MediaFile.objects.unscoped().select_related("message")}
    assert {k: m.state for k, m in state.items()} == {
        "OLD-PHOTO": "removed", "OLD-PDF": "removed", "OLD-PENDING": "removed", "NEW-PHOTO": "fetched",
        "NEW-VOICE": "fetched", "THEIRS": "fetched"}
    assert state["OLD-PDF"].storage_name == "" and state["OLD-PDF"].sha256 == old_pdf.sha256  # what was there
    assert not (media_root / old_pdf.storage_name).exists()
    assert (media_root / new_photo.storage_name).exists() and (media_root / new_photo.thumbnail_name).exists()
    assert (media_root / theirs.storage_name).exists() and (media_root / new_voice.storage_name).exists()
    assert Message.objects.for_tenant(acme).filter(conversation=conv).count() == 5  # the messages stay
    assert media.tenant_media_bytes(acme.pk) == len(samples.jpeg()) + len(samples.ogg_opus())

    client.force_login(acme_owner)
    page = client.get(reverse("conversation", args=[acme.slug, conv.pk])).content.decode()
    assert page.count('data-media-state="removed"') == 3 and "caption OLD-PDF" in page
    assert "Removed by the workspace's media retention" in page.replace("&#x27;", "'")
    assert client.get(reverse("conversation", args=[acme.slug, conv.pk]) + f"media/{old_photo.pk}/").status_code == 404

    assert remove_expired_media() == {"removed": {}, "more": False}  # nothing more to do


def test_without_a_setting_nothing_is_removed_and_the_time_budget_carries_over(acme, acme_connection,
                                                                                django_capture_on_commit_callbacks):
    conv = ConversationFactory(connection=acme_connection)
    received(conv, "document", samples.pdf(), "ANCIENT", 3000)
    assert remove_expired_media() == {"removed": {}, "more": False}
    acme.media_retention_days = 1
    acme.save()
    assert remove_expired_media(time_budget=0)["more"] is True  # out of time at once: the task comes back
    with django_capture_on_commit_callbacks(execute=True):
        assert remove_expired_media()["removed"] == {acme.slug: 1}


def test_beat_runs_media_retention_hourly():
    task = PeriodicTask.objects.get(name="inbox: media retention")
    assert task.task == "inbox.tasks.media_retention_task" and task.enabled
    assert (task.interval.every, task.interval.period) == (3600, "seconds")
