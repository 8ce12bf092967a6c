"""Safe deletes (inbox.deletion, inbox.admin_deletion): Django admin's and the pages' deletes archive; only a
typed confirmation purges, in batches, by a Celery task; restoring brings an archived number or tenant back."""

import hashlib
from pathlib import Path

import pytest
from django.urls import reverse

from connections.models import Connection, ConnectionEvent
from connections.transport import samples
from inbox import media
from inbox.deletion import DeletionRefused, check_purge_connection, check_restore_connection, do_run_purge
from inbox.models import (
    Contact,
    Conversation,
    MediaFile,
    Membership,
    Message,
    MessageSearchEntry,
    PurgeJob,
    Tenant,
)
from sync import events_builder as b
from sync.models import RawEvent
from tests import procs
from tests.factories import ConnectionFactory, MembershipFactory, TenantFactory, UserFactory
from tests.sync.helpers import PN_ANA, PN_BRUNO, T0, feed, incoming


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


def fill(conn, n=5, *, prefix="m", with_media=True):
    """n text messages in two chats through the journal and the sync engine (conversations, contacts, raw
    events, search entries), and a received image whose file is stored like the runner stores one."""
    events = [incoming(f"{prefix}{conn.pk}-{i}", f"hello {prefix} {i}", ts=T0 + i, chat=PN_ANA if i % 2 else PN_BRUNO)
              for i in range(n)]
    if with_media:
        data = samples.jpeg()
        content = b.media_message("image", mimetype="image/jpeg", size=len(data), direct_path="/v/x.enc",
                                  file_sha256=hashlib.sha256(data).digest(), media_key=b"k" * 32)
        events.append(b.message_ev(PN_ANA, PN_ANA, f"{prefix}{conn.pk}-img", content, (T0 + n) * 1000, push_name="Ana"))
    feed(conn, *events)
    if with_media:
        item = MediaFile.objects.for_tenant(conn.tenant_id).get(message__external_id=f"{prefix}{conn.pk}-img")
        assert media.do_store_media(item, samples.jpeg())


def counts(tenant_id) -> dict:
    return {"messages": Message.objects.for_tenant(tenant_id).count(),
            "conversations": Conversation.objects.for_tenant(tenant_id).count(),
            "contacts": Contact.objects.for_tenant(tenant_id).count(),
            "raw_events": RawEvent.objects.for_tenant(tenant_id).count(),
            "search": MessageSearchEntry.objects.for_tenant(tenant_id).count(),
            "media": MediaFile.objects.for_tenant(tenant_id).count(),
            "numbers": Connection.objects.for_tenant(tenant_id).count()}


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


# --- archive from the admin: nothing lost -------------------------------------------------------------
@pytest.mark.smoke
def test_admin_delete_of_a_number_archives_it_and_loses_nothing(admin_client, acme_connection, media_root):
    fill(acme_connection)
    before = counts(acme_connection.tenant_id)
    assert before["messages"] == 6 and before["search"] >= 5 and before["media"] == 1
    url = reverse("admin:connections_connection_delete", args=[acme_connection.pk])
    page = admin_client.get(url).content.decode()
    assert f"Type {acme_connection.name} to confirm" in page and "messages: 6" in page
    assert admin_client.post(url, {"action": "archive"}).status_code == 302
    acme_connection.refresh_from_db()
    assert acme_connection.archived_at is not None and acme_connection.desired_state == "logged_out"
    assert counts(acme_connection.tenant_id) == before
    assert len(files_under(media_root)) >= 1  # the image and its thumbnail stay
    assert ConnectionEvent.objects.unscoped().filter(connection=acme_connection, kind="archived").exists()
    assert not PurgeJob.objects.exists()


def test_admin_has_no_cascading_bulk_delete_and_archives_and_restores_in_bulk(admin_client, acme, acme_connection):
    fill(acme_connection, with_media=False)
    changelist = reverse("admin:connections_connection_changelist")
    page = admin_client.get(changelist).content.decode()
    assert 'value="delete_selected"' not in page and 'value="archive_selected"' in page
    assert 'value="delete_selected"' not in admin_client.get(reverse("admin:inbox_tenant_changelist")).content.decode()
    # A hand-made POST of the removed action deletes nothing.
    admin_client.post(changelist, {"action": "delete_selected", "_selected_action": [acme_connection.pk], "post": "yes"})
    assert Connection.objects.unscoped().filter(pk=acme_connection.pk, archived_at__isnull=True).exists()

    admin_client.post(changelist, {"action": "archive_selected", "_selected_action": [acme_connection.pk]})
    acme_connection.refresh_from_db()
    assert acme_connection.archived_at is not None and Message.objects.for_tenant(acme).count() == 5
    admin_client.post(changelist, {"action": "restore_selected", "_selected_action": [acme_connection.pk]})
    acme_connection.refresh_from_db()
    assert acme_connection.archived_at is None
    assert acme_connection.desired_state == "logged_out"  # its session was unlinked: the owner pairs it again
    assert "restored" in ConnectionEvent.objects.unscoped().filter(connection=acme_connection).values_list("kind", flat=True)


def test_admin_delete_of_a_tenant_archives_it_closes_it_to_members_and_restore_reopens_it(
        admin_client, client, acme, acme_owner, acme_connection):
    fill(acme_connection, with_media=False)
    before = counts(acme.pk)
    client.force_login(acme_owner)
    inbox = reverse("inbox", args=[acme.slug])
    assert client.get(inbox).status_code == 200
    url = reverse("admin:inbox_tenant_delete", args=[acme.pk])
    assert f"Type {acme.slug} to confirm" in admin_client.get(url).content.decode()
    assert admin_client.post(url, {"action": "archive"}).status_code == 302
    acme.refresh_from_db()
    acme_connection.refresh_from_db()
    assert acme.archived_at is not None and acme_connection.archived_at == acme.archived_at
    assert client.get(inbox).status_code == 404  # closed to its members
    assert counts(acme.pk) == before and Membership.objects.filter(tenant=acme).exists()

    admin_client.post(reverse("admin:inbox_tenant_changelist"),
                      {"action": "restore_selected", "_selected_action": [acme.pk]})
    acme.refresh_from_db()
    acme_connection.refresh_from_db()
    assert acme.archived_at is None and acme_connection.archived_at is None
    assert client.get(inbox).status_code == 200


def test_a_wrong_confirmation_is_refused_with_a_clear_message_and_deletes_nothing(admin_client, acme, acme_connection):
    fill(acme_connection, with_media=False)
    before = counts(acme.pk)
    number = admin_client.post(reverse("admin:connections_connection_delete", args=[acme_connection.pk]),
                               {"action": "purge", "confirm": acme_connection.name.upper()})
    assert number.status_code == 422
    assert (f"Nothing was deleted: to purge this number and its history, type its name exactly: {acme_connection.name}"
            in number.content.decode())
    tenant = admin_client.post(reverse("admin:inbox_tenant_delete", args=[acme.pk]), {"action": "purge", "confirm": ""})
    assert tenant.status_code == 422
    assert f"type its slug exactly: {acme.slug}" in tenant.content.decode()
    assert counts(acme.pk) == before and not PurgeJob.objects.exists()
    acme.refresh_from_db()
    acme_connection.refresh_from_db()
    assert acme.archived_at is None and acme_connection.archived_at is None


# --- purge, in batches --------------------------------------------------------------------------------
@pytest.mark.smoke
def test_a_number_purge_goes_in_batches_with_progress_and_leaves_the_other_number(acme, media_root, client, acme_owner,
                                                                                  django_capture_on_commit_callbacks):
    drop, keep = ConnectionFactory(tenant=acme, name="Drop"), ConnectionFactory(tenant=acme, name="Keep")
    fill(drop, n=7, prefix="d")
    fill(keep, n=3, prefix="k", with_media=False)
    kept = {"messages": Message.objects.for_tenant(acme).filter(connection=keep).count(),
            "raw": RawEvent.objects.for_tenant(acme).filter(connection=keep).count()}
    with pytest.raises(DeletionRefused):
        check_purge_connection(drop, "drop")
    with django_capture_on_commit_callbacks(execute=False):  # the task is run by hand below
        job = check_purge_connection(drop, "Drop")
    drop.refresh_from_db()
    assert drop.archived_at is not None and job.status == "queued" and job.target_label == "Drop"
    with pytest.raises(DeletionRefused, match="being purged"):
        check_restore_connection(drop)
    assert check_purge_connection(drop, "Drop").pk == job.pk  # typed again: the same job, not a second task

    with django_capture_on_commit_callbacks(execute=True):
        assert do_run_purge(job.pk, batch=3, time_budget=0.0001) is False  # out of time: queued again
    client.force_login(acme_owner)
    progress = client.get(reverse("connections", args=[acme.slug])).content.decode()
    assert "Deleting Drop with its history:" in progress and "messages and" in progress
    with django_capture_on_commit_callbacks(execute=True):
        assert do_run_purge(job.pk, batch=3) is True
    job.refresh_from_db()
    assert job.status == "done" and job.counts["messages"] == 8 and job.counts["numbers"] == 1
    assert job.counts["raw_events"] == 8 and job.counts["conversations"] == 2
    assert not Connection.objects.unscoped().filter(pk=drop.pk).exists()
    assert not Message.objects.unscoped().filter(connection_id=drop.pk).exists()
    assert not MediaFile.objects.unscoped().exists() and files_under(media_root) == []
    assert Message.objects.for_tenant(acme).filter(connection=keep).count() == kept["messages"]
    assert RawEvent.objects.for_tenant(acme).filter(connection=keep).count() == kept["raw"]
    assert MessageSearchEntry.objects.for_tenant(acme).count() == kept["messages"]


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_a_typed_tenant_purge_is_done_by_a_worker_and_removes_everything_of_that_tenant_only(
        admin_client, tmp_path, settings, caplog):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    acme, globex = TenantFactory(slug="acme"), TenantFactory(slug="globex")
    owner = UserFactory()
    MembershipFactory(user=owner, tenant=acme, role="owner")
    for tenant, prefix in ((acme, "a"), (globex, "g")):
        for n in range(2):
            fill(ConnectionFactory(tenant=tenant, name=f"{tenant.slug} {n}"), n=6, prefix=f"{prefix}{n}")
    acme_files, globex_files = files_under(tmp_path / "media" / "media" / str(acme.pk)), files_under(
        tmp_path / "media" / "media" / str(globex.pk))
    assert acme_files and globex_files
    (tmp_path / "media" / "media" / str(acme.pk) / "stray").write_bytes(b"a file no row names")
    globex_before = counts(globex.pk)

    worker = procs.celery_worker(procs.process_env(MEDIA_ROOT=settings.MEDIA_ROOT, PURGE_BATCH=4), concurrency=1)
    try:
        response = admin_client.post(reverse("admin:inbox_tenant_delete", args=[acme.pk]),
                                     {"action": "purge", "confirm": "acme"})
        assert response.status_code == 302
        job = PurgeJob.objects.get(kind="tenant", target_id=acme.pk)
        assert response["Location"] == reverse("admin:inbox_purgejob_change", args=[job.pk])
        procs.wait_for(lambda: PurgeJob.objects.get(pk=job.pk).status in ("done", "failed"), 60,
                       message="the purge job to finish")
    finally:
        worker.stop()
    job.refresh_from_db()
    assert job.status == "done", (job.error, worker.output()[-4000:])
    assert job.requested_by == "admin" and job.counts["messages"] == 14 and job.counts["tenants"] == 1
    assert '"purge.done"' in worker.output() or "purge.done" in worker.output()
    assert not Tenant.objects.filter(pk=acme.pk).exists()
    assert counts(acme.pk) == dict.fromkeys(globex_before, 0)
    assert not Membership.objects.filter(tenant_id=acme.pk).exists()
    assert files_under(tmp_path / "media" / "media" / str(acme.pk)) == []
    assert counts(globex.pk) == globex_before
    assert files_under(tmp_path / "media" / "media" / str(globex.pk)) == globex_files


# --- archived numbers in the inbox ---------------------------------------------------------------------
def test_an_archived_numbers_conversations_leave_the_default_inbox_stay_reachable_by_admins_and_are_read_only(
        client, acme, acme_owner, acme_agent, acme_connection):
    from connections.actions import do_archive_connection

    other = ConnectionFactory(tenant=acme, name="Still here")
    fill(acme_connection, n=1, prefix="old", with_media=False)
    fill(other, n=1, prefix="new", with_media=False)
    do_archive_connection(acme_connection)
    old = Conversation.objects.for_tenant(acme).get(connection=acme_connection)
    client.force_login(acme_agent)
    inbox = client.get(reverse("inbox", args=[acme.slug]) + "?status=all").content.decode()
    assert "hello new 0" in inbox and "hello old 0" not in inbox
    assert f'value="{acme_connection.pk}"' not in inbox  # agents are not offered the deleted number
    client.force_login(acme_owner)
    inbox = client.get(reverse("inbox", args=[acme.slug]) + "?status=all").content.decode()
    assert f"{acme_connection.name} (archived)" in inbox
    chosen = client.get(reverse("inbox", args=[acme.slug]) + f"?status=all&connection={acme_connection.pk}")
    assert "hello old 0" in chosen.content.decode()
    page = client.get(reverse("conversation", args=[acme.slug, old.pk])).content.decode()
    assert 'data-testid="archived-read-only"' in page and 'id="reply-form"' not in page
    refused = client.post(reverse("reply", args=[acme.slug, old.pk]), {"body": "still there?"})
    assert refused.status_code == 422 and "read-only" in refused.content.decode()
    assert Message.objects.for_tenant(acme).filter(conversation=old).count() == 1
