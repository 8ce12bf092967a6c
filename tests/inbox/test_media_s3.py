"""Media on S3 storage (``MEDIA_STORAGE=s3``), against a local S3-compatible server over real HTTP: moto's
standalone server, an emulator of the S3 API (tests/s3.py), started once per session on its own port.

Every media path that touches files: storing content-addressed objects (received, attached, imported),
serving them through the access-checked view (whole, ranges, thumbnails, inert HTML/SVG, 404 across
tenants) and the API, purges, retention and the orphan sweep deleting objects (checked by listing the
bucket), exports carrying the bytes, and accounting from the database. No file touches ``MEDIA_ROOT``."""

import hashlib
import subprocess
import sys
import zipfile
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from config.storage import FILESYSTEM, S3_BACKEND, media_storage
from connections.models import Connection
from connections.transport import samples
from inbox import media
from inbox.models import Contact, MediaFile, Tenant
from inbox.purge import do_purge_conversations
from tests.factories import ConnectionFactory, ConversationFactory, MessageFactory, TenantFactory
from tests.s3 import env_reader

pytestmark = [pytest.mark.django_db, pytest.mark.s3]

HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"></svg>'


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """A MEDIA_ROOT that must stay empty: on S3 nothing is written to the local disk."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    yield tmp_path / "media"
    assert not (tmp_path / "media").exists() or not [p for p in (tmp_path / "media").rglob("*") if p.is_file()]


def stored(conv, kind, data, external_id) -> MediaFile:
    """A received media message whose file was fetched (the action the runner's child calls)."""
    msg = MessageFactory(conversation=conv, type=kind, body="", external_id=external_id)
    item = MediaFile.objects.create(tenant=conv.tenant, message=msg, connection=conv.connection, kind=kind,
                                    ref=b"\x0a\x03ref" + external_id.encode())
    assert media.do_store_media(item, data)
    item.refresh_from_db()
    return item


def url(item, name="media_file"):
    conv = item.message.conversation
    return reverse(name, args=[conv.tenant.slug, conv.pk, item.pk])


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def assert_inert(r):
    assert r["X-Content-Type-Options"] == "nosniff"
    assert r["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert r["Cross-Origin-Resource-Policy"] == "same-origin" and "no-store" in r["Cache-Control"]


# --- the switch ---------------------------------------------------------------------------------------
def test_media_storage_is_chosen_by_the_environment_with_clear_errors():
    assert media_storage(env_reader({})) == FILESYSTEM
    assert media_storage(env_reader({"MEDIA_STORAGE": "filesystem"})) == FILESYSTEM
    with pytest.raises(ImproperlyConfigured, match="needs MEDIA_S3_BUCKET"):
        media_storage(env_reader({"MEDIA_STORAGE": "s3"}))
    with pytest.raises(ImproperlyConfigured, match="use 'filesystem'"):
        media_storage(env_reader({"MEDIA_STORAGE": "gcs"}))
    s3 = media_storage(env_reader({"MEDIA_STORAGE": "S3", "MEDIA_S3_BUCKET": "inbox-media", "MEDIA_S3_PREFIX": "/prod/",
                                   "MEDIA_S3_REGION": "sa-east-1"}))
    assert s3["BACKEND"] == S3_BACKEND
    options = s3["OPTIONS"]
    assert (options["bucket_name"], options["location"], options["region_name"]) == ("inbox-media", "prod", "sa-east-1")
    # Never a public ACL, names kept (content-addressed), and no keys when unset (boto3's chain: roles).
    assert options["default_acl"] is None and options["file_overwrite"] is True and options["querystring_auth"] is True
    assert "access_key" not in options and "secret_key" not in options and "endpoint_url" not in options


def test_x_accel_with_s3_storage_refuses_to_start():
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings.test", "MEDIA_STORAGE": "s3",
           "MEDIA_S3_BUCKET": "b", "MEDIA_X_ACCEL_PREFIX": "/protected-media/"}
    done = subprocess.run([sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True,
                          text=True, timeout=60, cwd=str(__import__("config").__path__[0] + "/.."))
    assert done.returncode != 0 and "MEDIA_X_ACCEL_PREFIX serves files from MEDIA_ROOT" in done.stderr


# --- storing and serving ----------------------------------------------------------------------------
def test_received_files_are_stored_as_content_addressed_objects_and_served_byte_identical(
        client, acme_agent, acme_connection, s3_media):
    conv = ConversationFactory(connection=acme_connection)
    photo = stored(conv, "image", samples.jpeg(), "IMG1")
    again = stored(conv, "image", samples.jpeg(), "IMG2")  # the same bytes: the same object
    doc = stored(conv, "document", samples.pdf(), "DOC1")
    tenant_id = acme_connection.tenant_id
    sha = hashlib.sha256(samples.jpeg()).hexdigest()
    assert photo.storage_name == again.storage_name == f"media/{tenant_id}/{sha[:2]}/{sha}"
    assert s3_media.keys() == {photo.storage_name, photo.thumbnail_name, doc.storage_name}
    assert s3_media.get(photo.storage_name) == samples.jpeg()
    assert media.tenant_media_bytes(tenant_id) == len(samples.jpeg()) + len(samples.pdf())  # from the rows

    client.force_login(acme_agent)
    r = client.get(url(photo))
    assert r.status_code == 200 and r["Content-Type"] == "image/jpeg" and r["Content-Disposition"].startswith("inline")
    assert body(r) == samples.jpeg() and r["Content-Length"] == str(len(samples.jpeg()))
    assert_inert(r)
    thumb = client.get(url(photo, "media_thumbnail"))
    assert thumb.status_code == 200 and thumb["Content-Type"] in ("image/jpeg", "image/png")
    assert body(thumb) == s3_media.get(photo.thumbnail_name)
    r = client.get(url(doc))
    assert r["Content-Type"] == "application/octet-stream" and r["Content-Disposition"].startswith("attachment")
    assert body(r) == samples.pdf()


def test_range_requests_read_exactly_the_bytes_asked_from_the_object(client, acme_agent, acme_connection, s3_media):
    video = stored(ConversationFactory(connection=acme_connection), "video", samples.mp4(), "VID1")
    data, size = samples.mp4(), len(samples.mp4())
    client.force_login(acme_agent)
    for header, (first, last) in (("bytes=100-1123", (100, 1123)), ("bytes=-500", (size - 500, size - 1)),
                                  (f"bytes={size - 10}-", (size - 10, size - 1)), ("bytes=0-0", (0, 0))):
        r = client.get(url(video), HTTP_RANGE=header)
        assert r.status_code == 206, header
        assert body(r) == data[first:last + 1] and r["Content-Range"] == f"bytes {first}-{last}/{size}"
        assert r["Content-Length"] == str(last - first + 1) and r["Accept-Ranges"] == "bytes"
        assert r["Content-Type"] == "video/mp4"
        assert_inert(r)
    past = client.get(url(video), HTTP_RANGE=f"bytes={size}-")
    assert past.status_code == 416 and past["Content-Range"] == f"bytes */{size}"
    other_version = client.get(url(video), HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE='"not-this-one"')
    assert other_version.status_code == 200 and body(other_version) == data


@pytest.mark.parametrize("payload", [HTML, SVG], ids=["html", "svg"])
def test_an_html_or_svg_image_on_s3_is_served_inert(client, acme_agent, acme_connection, s3_media, payload):
    item = stored(ConversationFactory(connection=acme_connection), "image", payload, "EVIL")
    assert item.mimetype in ("text/html", "image/svg+xml") and not item.thumbnail_name
    client.force_login(acme_agent)
    r = client.get(url(item))
    assert r["Content-Type"] == "application/octet-stream" and r["Content-Disposition"].startswith("attachment")
    assert_inert(r)
    assert body(r) == payload
    ranged = client.get(url(item), HTTP_RANGE="bytes=0-15")
    assert ranged.status_code == 206 and ranged["Content-Type"] == "application/octet-stream"
    assert_inert(ranged)


def test_another_tenants_user_gets_404_for_every_media_url_on_s3(client, acme_connection, globex_owner, globex,
                                                                  s3_media):
    conv = ConversationFactory(connection=acme_connection)
    item = stored(conv, "image", samples.jpeg(), "IMG1")
    client.force_login(globex_owner)
    for path in (url(item), url(item, "media_thumbnail"), url(item) + "?download=1"):
        assert client.get(path).status_code == 404
        assert client.get(path, HTTP_RANGE="bytes=0-9").status_code == 404
    own = ConversationFactory(connection__tenant=globex)
    for name in ("media_file", "media_thumbnail"):
        assert client.get(reverse(name, args=[globex.slug, own.pk, item.pk])).status_code == 404


def test_an_attachment_is_stored_on_s3_and_read_back_for_sending_and_by_the_api(acme_agent, acme_connection, s3_media):
    from api.tokens import do_create_token
    from tests.api.test_api import client_for

    conv = ConversationFactory(connection=acme_connection)
    upload = SimpleUploadedFile("terms.pdf", samples.pdf("terms"), content_type="application/pdf")
    message = media.check_queue_media_reply(conv, acme_agent, upload, caption="the terms")
    item = MediaFile.objects.for_tenant(conv.tenant).get(message=message)
    assert item.storage_name in s3_media.keys()
    assert media.read_bytes(item) == samples.pdf("terms")  # what the runner's child sends
    _, token = do_create_token(conv.tenant, name="t", scope="read")
    r = client_for(token).get(f"/api/v1/messages/{message.pk}/media/")
    assert r.status_code == 200 and body(r) == samples.pdf("terms")
    assert r["Content-Length"] == str(len(samples.pdf("terms"))) and r["X-Content-Type-Options"] == "nosniff"


# --- removal --------------------------------------------------------------------------------------------
def test_purges_delete_the_objects_no_row_names_and_keep_the_rest(acme_connection, globex, s3_media,
                                                                  django_capture_on_commit_callbacks):
    from inbox.deletion import check_purge_tenant, do_run_purge

    keep_conv, drop_conv = ConversationFactory(connection=acme_connection), ConversationFactory(connection=acme_connection)
    kept = stored(keep_conv, "image", samples.jpeg(), "K1")
    stored(drop_conv, "image", samples.jpeg(), "D1")  # the same object as kept's
    only = stored(drop_conv, "document", samples.pdf(), "D2")
    theirs = stored(ConversationFactory(connection__tenant=globex), "image", samples.jpeg(), "G1")
    with django_capture_on_commit_callbacks(execute=True):
        do_purge_conversations([drop_conv.pk])
    assert only.storage_name not in s3_media.keys()
    assert {kept.storage_name, kept.thumbnail_name, theirs.storage_name} <= s3_media.keys()

    acme = acme_connection.tenant
    with django_capture_on_commit_callbacks(execute=True):
        job = check_purge_tenant(acme, acme.slug)
    with django_capture_on_commit_callbacks(execute=True):
        assert do_run_purge(job.pk)
    assert s3_media.keys(f"media/{acme.pk}/") == set()
    assert s3_media.keys() == {theirs.storage_name, theirs.thumbnail_name}  # the other tenant's untouched


def test_retention_and_the_orphan_sweep_delete_objects(acme_connection, s3_media, django_capture_on_commit_callbacks):
    from inbox.retention import remove_expired_media

    conv = ConversationFactory(connection=acme_connection)
    msg = MessageFactory(conversation=conv, type="document", body="", external_id="OLD",
                         sent_at=timezone.now() - timedelta(days=40))
    old = MediaFile.objects.create(tenant=conv.tenant, message=msg, connection=acme_connection, kind="document")
    assert media.do_store_media(old, samples.pdf("old"))
    old.refresh_from_db()
    recent = stored(conv, "image", samples.jpeg(), "NEW")
    tenant = acme_connection.tenant
    tenant.media_retention_days = 30
    tenant.save(update_fields=["media_retention_days"])
    with django_capture_on_commit_callbacks(execute=True):
        assert remove_expired_media()["removed"] == {tenant.slug: 1}
    assert old.storage_name not in s3_media.keys() and recent.storage_name in s3_media.keys()

    gone = TenantFactory()
    orphan = stored(ConversationFactory(connection=ConnectionFactory(tenant=gone)), "image", samples.png(), "GONE")
    Connection.objects.unscoped().filter(tenant=gone).delete()  # as Django's admin deletes: the files stay
    Contact.objects.for_tenant(gone).delete()
    Tenant.objects.filter(pk=gone.pk).delete()
    assert orphan.storage_name in s3_media.keys()
    assert media.sweep_orphan_files(3600).in_grace == 2  # just stored (the object's own modification time)
    report = media.sweep_orphan_files(0)
    assert (report.removed, report.tenants_gone) == (2, 1)
    assert s3_media.keys(f"media/{gone.pk}/") == set()
    assert {recent.storage_name, recent.thumbnail_name} <= s3_media.keys()


# --- exports ----------------------------------------------------------------------------------------
def test_an_export_carries_the_objects_bytes_and_an_import_stores_them_back_verified(tmp_path, s3_media):
    from inbox.snapshot.export import export_tenant
    from inbox.snapshot.load import import_tenant
    from tests.inbox.test_snapshot import delete_tenant

    acme = TenantFactory(slug="acme")
    conv = ConversationFactory(connection=ConnectionFactory(tenant=acme, name="Support"))
    files = {"IMG1": samples.jpeg(), "DOC1": samples.pdf(), "VOICE1": samples.ogg_opus()}
    for external_id, data in files.items():
        stored(conv, {"IMG1": "image", "DOC1": "document", "VOICE1": "audio"}[external_id], data, external_id)
    path = tmp_path / "acme.zip"
    manifest = export_tenant(acme, path)
    assert manifest["media_missing"] == 0
    with zipfile.ZipFile(path) as archive:
        for data in files.values():
            assert archive.read(f"media/{hashlib.sha256(data).hexdigest()}") == data

    delete_tenant(acme)
    for key in s3_media.keys():  # a new install: an empty bucket
        s3_media.client.delete_object(Bucket=s3_media.name, Key=key)
    import_tenant(path)
    restored = Tenant.objects.get(slug="acme")
    items = {m.message.external_id: m for m in MediaFile.objects.for_tenant(restored).select_related("message")}
    for external_id, data in files.items():
        assert s3_media.get(items[external_id].storage_name) == data
    assert items["IMG1"].thumbnail_name in s3_media.keys()


def test_an_object_lost_from_the_bucket_is_not_found_not_an_error(client, acme_agent, acme_connection, s3_media):
    """A row that says stored whose object is gone (a bucket emptied by hand): 404 and a log line, no 500;
    nothing falls back to the local disk."""
    item = stored(ConversationFactory(connection=acme_connection), "image", samples.jpeg(), "IMG1")
    for key in (item.storage_name, item.thumbnail_name):
        s3_media.client.delete_object(Bucket=s3_media.name, Key=key)
    with pytest.raises(FileNotFoundError):
        media.read_bytes(item)
    client.force_login(acme_agent)
    for path in (url(item), url(item, "media_thumbnail")):
        assert client.get(path).status_code == 404
        assert client.get(path, HTTP_RANGE="bytes=0-9").status_code == 404


def test_backfilled_posters_are_stored_in_the_bucket(settings, acme_connection, s3_media):
    from inbox.media import backfill_video_posters

    settings.FFMPEG_BINARY = "ffmpeg-is-not-installed-here"
    video = stored(ConversationFactory(connection=acme_connection), "video", samples.mp4(), "VID1")
    assert not video.thumbnail_name and s3_media.keys() == {video.storage_name}
    settings.FFMPEG_BINARY = "ffmpeg"
    report = backfill_video_posters()
    assert (report.videos, report.made, report.failed) == (1, 1, 0)
    video.refresh_from_db()
    assert s3_media.keys() == {video.storage_name, video.thumbnail_name}
    assert s3_media.get(video.thumbnail_name)[:3] == b"\xff\xd8\xff"


def test_an_import_whose_bytes_are_not_their_name_leaves_no_object(tmp_path, s3_media):
    """The checksum is checked while the member streams into the bucket: a mismatch deletes the object written
    and every object the import had stored, and nothing is imported."""
    import json

    from django.core.management import CommandError, call_command

    from inbox.snapshot.export import export_tenant
    from tests.inbox.test_snapshot import delete_tenant

    acme = TenantFactory(slug="acme")
    conv = ConversationFactory(connection=ConnectionFactory(tenant=acme, name="Support"))
    stored(conv, "image", samples.jpeg(), "IMG1")
    stored(conv, "document", samples.pdf(), "DOC1")
    path, bad = tmp_path / "acme.zip", tmp_path / "bad.zip"
    export_tenant(acme, path)
    delete_tenant(acme)
    for key in s3_media.keys():
        s3_media.client.delete_object(Bucket=s3_media.name, Key=key)
    pdf = f"media/{hashlib.sha256(samples.pdf()).hexdigest()}"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bad, "w") as dst:
        manifest = json.loads(src.read("manifest.json"))
        swapped = samples.png()  # other bytes under the PDF's name, the manifest made to match them
        manifest["files"][pdf].update(sha256=hashlib.sha256(swapped).hexdigest(), bytes=len(swapped))
        for info in src.infolist():
            dst.writestr(info, {pdf: swapped, "manifest.json": json.dumps(manifest).encode()}.get(info.filename)
                         or src.read(info))
    with pytest.raises(CommandError, match="holds other bytes.*nothing was imported"):
        call_command("import_tenant", str(bad))
    assert not Tenant.objects.filter(slug="acme").exists() and s3_media.keys() == set()
