"""Media in the inbox, in one process: sniffing, registration by the sync engine, storage, the
access-checked serving view, attachments from the reply box, purge and accounting. The runner's part
(downloading through the transport) is tested with real processes in tests/connections/test_media_runner.py."""

import hashlib
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from connections.transport import samples
from inbox import media, mediatypes
from inbox.models import Conversation, MediaFile, Message
from inbox.purge import do_purge_conversations
from sync import events_builder as b
from sync.decode import media_ref_sha256
from tests.factories import ConversationFactory, MembershipFactory, MessageFactory, UserFactory
from tests.sync.helpers import PN_ANA, T0, feed

pytestmark = pytest.mark.django_db

HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"></svg>'


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


def media_ev(id, kind, data, mimetype, *, caption="", file_name="", ts=T0):
    content = b.media_message(kind, mimetype=mimetype, size=len(data), direct_path=f"/v/{id}.enc",
                              file_sha256=hashlib.sha256(data).digest(), media_key=b"k" * 32, caption=caption,
                              file_name=file_name)
    return b.message_ev(PN_ANA, PN_ANA, id, content, ts * 1000, push_name="Ana")


def stored(conv, kind, data, *, external_id=None) -> MediaFile:
    """A received media message whose file was fetched (through the same action the runner calls)."""
    msg = MessageFactory(conversation=conv, type=kind, body="", external_id=external_id or f"M{kind}{len(data)}")
    item = MediaFile.objects.create(tenant=conv.tenant, message=msg, connection=conv.connection, kind=kind)
    assert media.do_store_media(item, data)
    item.refresh_from_db()
    return item


# --- sniffing ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("data", "expected"), [
    (samples.jpeg(), "image/jpeg"), (samples.png(), "image/png"), (samples.webp_sticker(), "image/webp"),
    (samples.ogg_opus(), "audio/ogg"), (samples.mp4_header(), "video/mp4"), (samples.pdf(), "application/pdf"),
    (HTML, "text/html"), (b"\n  <html><body>hi", "text/html"), (SVG, "image/svg+xml"),
    (b"<svg onload=alert(1)>", "image/svg+xml"), (b"\x00\x01junk", "application/octet-stream"),
], ids=["jpeg", "png", "webp", "ogg", "mp4", "pdf", "html", "html-ws", "svg-xml", "svg", "junk"])
def test_sniff_names_the_type_from_the_bytes(data, expected):
    assert mediatypes.sniff(data) == expected
    assert mediatypes.is_inline(expected) == (expected in {"image/jpeg", "image/png", "image/webp", "audio/ogg",
                                                           "video/mp4"})


# --- registration by the sync engine ------------------------------------------------------------------------
def test_a_received_media_message_gets_a_pending_file_with_its_download_locator(acme_connection):
    data = samples.jpeg()
    feed(acme_connection, media_ev("IMG1", "image", data, "image/jpeg", caption="broken lid"),
         b.message_ev(PN_ANA, PN_ANA, "TXT1", "just text", (T0 + 1) * 1000))
    msg = Message.objects.unscoped().get(external_id="IMG1")
    assert (msg.type, msg.body) == ("image", "broken lid")
    item = MediaFile.objects.unscoped().get()
    assert (item.message_id, item.state, item.kind, item.history, item.tenant_id) == (
        msg.pk, "pending", "image", False, acme_connection.tenant_id)
    assert item.declared_mimetype == "image/jpeg" and item.declared_size == len(data)
    # The locator is the media part alone, and names the file's checksum.
    assert media_ref_sha256(bytes(item.ref)) == hashlib.sha256(data).hexdigest()
    # Replaying the same event registers nothing twice.
    from sync.journal import journal_events
    from sync.processor import process_pending

    journal_events(acme_connection.pk, [(*b.serialize(media_ev("IMG1", "image", data, "image/jpeg")), None)],
                   schedule=False)
    process_pending(acme_connection.pk, wait=True)
    assert MediaFile.objects.unscoped().count() == 1


def test_history_media_shows_its_metadata_at_once_and_is_queued_behind_live_media(acme_connection):
    doc = b.media_message("document", mimetype="application/pdf", size=4321, direct_path="/v/h.enc",
                          file_sha256=b"x" * 32, file_name="contract.pdf")
    conv = b.history_conversation(PN_ANA, [b.web_message(PN_ANA, "HIST1", doc, T0 - 100)])
    feed(acme_connection, b.history_sync_ev([conv], "INITIAL_BOOTSTRAP"),
         media_ev("LIVE1", "image", samples.png(), "image/png"))
    hist = Message.objects.unscoped().get(external_id="HIST1")
    assert (hist.type, hist.media_filename, hist.media_size) == ("document", "contract.pdf", 4321)
    rows = list(MediaFile.objects.unscoped().order_by("history", "id").values_list("message__external_id", "history"))
    assert rows == [("LIVE1", False), ("HIST1", True)]
    claimed = media.claim_due_media(acme_connection.pk, 1)
    assert [m.message.external_id for m in claimed] == ["LIVE1"]  # live first


# --- storing ----------------------------------------------------------------------------------------
def test_stored_file_is_content_addressed_per_tenant_sniffed_and_thumbnailed(acme_connection, media_root):
    conv = ConversationFactory(connection=acme_connection)
    data = samples.png()
    msg = MessageFactory(conversation=conv, type="image", external_id="P1")
    item = MediaFile.objects.create(tenant=conv.tenant, message=msg, connection=acme_connection, kind="image",
                                    declared_mimetype="image/jpeg")  # the sender lied
    assert media.do_store_media(item, data, expected_sha256=hashlib.sha256(data).hexdigest())
    item.refresh_from_db()
    sha = hashlib.sha256(data).hexdigest()
    assert (item.state, item.sha256, item.size, item.mimetype) == ("fetched", sha, len(data), "image/png")
    assert item.storage_name == f"media/{conv.tenant_id}/{sha[:2]}/{sha}"
    assert (media_root / item.storage_name).read_bytes() == data
    assert mediatypes.sniff((media_root / item.thumbnail_name).read_bytes()) in ("image/jpeg", "image/png")
    # The same bytes again in the tenant: one file.
    again = stored(conv, "image", data, external_id="P2")
    assert again.storage_name == item.storage_name
    assert media.tenant_media_bytes(conv.tenant_id) == len(data)


def test_checksum_mismatch_and_size_limit_are_refused(acme_connection, settings):
    conv = ConversationFactory(connection=acme_connection)
    msg = MessageFactory(conversation=conv, type="image", external_id="C1")
    item = MediaFile.objects.create(tenant=conv.tenant, message=msg, connection=acme_connection, kind="image")
    item.attempts = 1
    assert not media.do_store_media(item, samples.jpeg(), expected_sha256="0" * 64)
    item.refresh_from_db()
    assert item.state == "pending" and "checksum" in item.error and not item.storage_name
    settings.MEDIA_MAX_BYTES = dict(settings.MEDIA_MAX_BYTES, image=100)
    assert not media.do_store_media(item, samples.jpeg())
    item.refresh_from_db()
    assert item.state == "failed" and "limit for a image is 100" in item.error


def test_download_failures_back_off_then_fail_and_expired_is_final_until_retried(acme_connection, settings):
    settings.MEDIA_FETCH_MAX_ATTEMPTS = 2
    conv = ConversationFactory(connection=acme_connection)
    msg = MessageFactory(conversation=conv, type="audio", external_id="A1")
    MediaFile.objects.create(tenant=conv.tenant, message=msg, connection=acme_connection, kind="audio")
    [first] = media.claim_due_media(acme_connection.pk, 5)
    assert first.attempts == 1 and first.next_attempt_at > timezone.now() + timedelta(seconds=10)
    assert media.do_record_fetch_failure(first, "503") == "pending"
    assert media.claim_due_media(acme_connection.pk, 5) == []  # not due yet: backoff
    MediaFile.objects.unscoped().update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    [second] = media.claim_due_media(acme_connection.pk, 5)
    assert media.do_record_fetch_failure(second, "503 again") == "failed"
    assert media.claim_due_media(acme_connection.pk, 5) == []
    retried = media.check_retry_media(MediaFile.objects.unscoped().get())
    assert (retried.state, retried.attempts, retried.error) == ("pending", 0, "")
    [third] = media.claim_due_media(acme_connection.pk, 5)
    assert media.do_record_fetch_failure(third, "404", expired=True) == "expired"
    with pytest.raises(media.MediaRefused):
        media.check_retry_media(stored(conv, "image", samples.jpeg()))


# --- serving ------------------------------------------------------------------------------------------
def url(item, name="media_file"):
    conv = item.message.conversation
    return reverse(name, args=[conv.tenant.slug, conv.pk, item.pk])


def test_members_get_files_inline_or_as_attachments_with_nosniff(client, acme_agent, acme_connection):
    conv = ConversationFactory(connection=acme_connection)
    image, voice, doc = (stored(conv, "image", samples.jpeg()), stored(conv, "audio", samples.ogg_opus()),
                         stored(conv, "document", samples.pdf()))
    MediaFile.objects.unscoped().filter(pk=doc.pk).update(filename="invoice-42.pdf")
    client.force_login(acme_agent)
    r = client.get(url(image))
    assert r.status_code == 200 and r["Content-Type"] == "image/jpeg" and r["Content-Disposition"].startswith("inline")
    assert b"".join(r.streaming_content) == samples.jpeg()
    assert r["X-Content-Type-Options"] == "nosniff" and "sandbox" in r["Content-Security-Policy"]
    assert "no-store" in r["Cache-Control"]
    thumb = client.get(url(image, "media_thumbnail"))
    assert thumb.status_code == 200 and thumb["Content-Type"] in ("image/jpeg", "image/png")
    assert client.get(url(voice))["Content-Type"] == "audio/ogg"
    r = client.get(url(doc))
    assert r["Content-Type"] == "application/octet-stream"
    assert r["Content-Disposition"] == 'attachment; filename="invoice-42.pdf"'
    assert b"".join(r.streaming_content) == samples.pdf()  # byte-identical
    forced = client.get(url(image) + "?download=1")
    assert forced["Content-Disposition"].startswith("attachment")


@pytest.mark.parametrize("payload", [HTML, SVG], ids=["html", "svg"])
def test_an_html_or_svg_image_is_served_inert(client, acme_agent, acme_connection, payload):
    conv = ConversationFactory(connection=acme_connection)
    item = stored(conv, "image", payload)
    assert item.mimetype in ("text/html", "image/svg+xml") and not item.thumbnail_name
    client.force_login(acme_agent)
    r = client.get(url(item))
    assert r["Content-Type"] == "application/octet-stream" and r["Content-Disposition"].startswith("attachment")
    assert r["X-Content-Type-Options"] == "nosniff" and r["Content-Security-Policy"] == "default-src 'none'; sandbox"
    page = client.get(reverse("conversation", args=[conv.tenant.slug, conv.pk])).content.decode()
    assert f'src="media/{item.pk}/' not in page  # not shown as an <img>: offered as a download


def test_another_tenants_user_gets_404_for_every_media_url(client, acme_connection, globex_owner, globex):
    conv = ConversationFactory(connection=acme_connection)
    item = stored(conv, "image", samples.jpeg())
    failed = stored(conv, "audio", samples.ogg_opus())
    MediaFile.objects.unscoped().filter(pk=failed.pk).update(state="failed")
    client.force_login(globex_owner)
    acme = conv.tenant.slug
    for path in (url(item), url(item, "media_thumbnail"), url(item) + "?download=1"):
        assert client.get(path).status_code == 404
    assert client.post(url(failed, "media_retry")).status_code == 404
    # Through their own tenant's URL, with our ids: still 404.
    own = ConversationFactory(connection__tenant=globex)
    for name in ("media_file", "media_thumbnail"):
        assert client.get(reverse(name, args=[globex.slug, own.pk, item.pk])).status_code == 404
        assert client.get(reverse(name, args=[globex.slug, conv.pk, item.pk])).status_code == 404
    assert client.get(reverse("media_file", args=[acme, conv.pk, item.pk])).status_code == 404
    # A member of the tenant, but the wrong conversation in the URL: 404 too.
    other = ConversationFactory(connection=acme_connection)
    member = UserFactory()
    MembershipFactory(user=member, tenant=conv.tenant, role="agent")
    client.force_login(member)
    assert client.get(reverse("media_file", args=[acme, other.pk, item.pk])).status_code == 404
    assert client.get(url(item)).status_code == 200


def test_the_thread_shows_thumbnails_players_downloads_states_and_retry(client, acme_agent, acme_connection,
                                                                       django_assert_max_num_queries):
    conv = ConversationFactory(connection=acme_connection)
    image, voice, video = (stored(conv, "image", samples.jpeg()), stored(conv, "audio", samples.ogg_opus()),
                           stored(conv, "video", samples.mp4_header()))
    doc = stored(conv, "document", samples.pdf())
    Message.objects.unscoped().filter(pk=image.message_id).update(body="the broken lid")
    gone = MessageFactory(conversation=conv, type="image", external_id="GONE")
    MediaFile.objects.create(tenant=conv.tenant, message=gone, connection=acme_connection, kind="image",
                             state="expired", error="404")
    client.force_login(acme_agent)
    with django_assert_max_num_queries(30):
        page = client.get(reverse("conversation", args=[conv.tenant.slug, conv.pk])).content.decode()
    assert f'<a class="media-image media-image" href="media/{image.pk}/"' in page
    assert f'<img src="media/{image.pk}/thumb/"' in page and "the broken lid" in page
    assert f'<audio controls preload="metadata" src="media/{voice.pk}/"' in page
    assert f'<video controls preload="metadata" src="media/{video.pk}/"' in page
    assert f'href="media/{doc.pk}/?download=1" download' in page
    assert "No longer on WhatsApp" in page and 'hx-post="media/' in page


def test_thread_query_count_does_not_grow_with_media(client, acme_agent, acme_connection, django_assert_num_queries):
    conv = ConversationFactory(connection=acme_connection)
    stored(conv, "image", samples.jpeg())
    client.force_login(acme_agent)
    path = reverse("thread_messages", args=[conv.tenant.slug, conv.pk])
    client.get(path)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as one:
        client.get(path)
    for i in range(5):
        stored(conv, "audio", samples.ogg_opus(seconds=1 + i))
    with CaptureQueriesContext(connection) as six:
        client.get(path)
    assert len(six.captured_queries) == len(one.captured_queries)


# --- sending ------------------------------------------------------------------------------------------
def test_an_attachment_from_the_reply_box_is_queued_with_its_file(client, acme_agent, acme_connection, media_root):
    conv = ConversationFactory(connection=acme_connection)
    client.force_login(acme_agent)
    path = reverse("reply", args=[conv.tenant.slug, conv.pk])
    r = client.post(path, {"body": "your invoice", "attachment": SimpleUploadedFile("inv.pdf", samples.pdf(),
                                                                                    "image/png")})
    assert r.status_code == 302
    msg = Message.objects.unscoped().get(conversation=conv)
    assert (msg.direction, msg.status, msg.type, msg.body, msg.media_filename) == (
        "out", "queued", "document", "your invoice", "inv.pdf")
    item = msg.media
    assert (item.state, item.mimetype, item.filename) == ("fetched", "application/pdf", "inv.pdf")
    assert (media_root / item.storage_name).read_bytes() == samples.pdf()
    assert Conversation.objects.unscoped().get(pk=conv.pk).last_message_preview == "your invoice"
    # A photo goes as an image, whatever the browser called it.
    client.post(path, {"attachment": SimpleUploadedFile("x.bin", samples.jpeg(), "application/octet-stream")})
    photo = Message.objects.unscoped().filter(conversation=conv).latest("id")
    assert (photo.type, photo.body, photo.media.mimetype) == ("image", "", "image/jpeg")


def test_attachments_over_whatsapps_limits_or_empty_get_a_clear_form_error(client, acme_agent, acme_connection,
                                                                          settings):
    settings.MEDIA_MAX_BYTES = dict(settings.MEDIA_MAX_BYTES, image=1000)
    conv = ConversationFactory(connection=acme_connection)
    client.force_login(acme_agent)
    path = reverse("reply", args=[conv.tenant.slug, conv.pk])
    big = samples.jpeg(width=800, height=600)
    assert len(big) > 1000
    r = client.post(path, {"attachment": SimpleUploadedFile("big.jpg", big, "image/jpeg")}, HTTP_HX_REQUEST="true")
    assert r.status_code == 422
    assert f"The photo is {len(big) / 1024:.1f} KB; WhatsApp accepts a photo up to 1000 bytes." in r.content.decode()
    r = client.post(path, {"attachment": SimpleUploadedFile("empty.pdf", b"", "application/pdf")},
                    HTTP_HX_REQUEST="true")
    assert r.status_code == 422 and "The file is empty." in r.content.decode()
    assert not Message.objects.unscoped().filter(conversation=conv).exists()
    assert not MediaFile.objects.unscoped().exists()


# --- purge and accounting ---------------------------------------------------------------------------------
def test_purging_a_conversation_removes_its_media_and_files_no_other_message_uses(acme_connection, media_root,
                                                                                  django_capture_on_commit_callbacks):
    keep_conv, drop_conv = ConversationFactory(connection=acme_connection), ConversationFactory(connection=acme_connection)
    shared = samples.jpeg()
    kept = stored(keep_conv, "image", shared, external_id="K1")
    same = stored(drop_conv, "image", shared, external_id="D1")
    only = stored(drop_conv, "document", samples.pdf(), external_id="D2")
    tenant_id = acme_connection.tenant_id
    assert media.tenant_media_bytes(tenant_id) == len(shared) + len(samples.pdf())
    with django_capture_on_commit_callbacks(execute=True):
        result = do_purge_conversations([drop_conv.pk])
    assert result.conversations == 1 and result.messages == 2
    assert list(MediaFile.objects.unscoped().values_list("pk", flat=True)) == [kept.pk]
    assert same.storage_name == kept.storage_name and (media_root / kept.storage_name).exists()
    assert (media_root / kept.thumbnail_name).exists()
    assert not (media_root / only.storage_name).exists()
    assert media.tenant_media_bytes(tenant_id) == len(shared)


def test_the_numbers_page_shows_media_progress_per_number_and_storage_used(client, acme_owner, acme_connection):
    conv = ConversationFactory(connection=acme_connection)
    stored(conv, "image", samples.jpeg())
    stored(conv, "document", samples.pdf())
    for i, state in enumerate(["pending", "pending", "failed", "expired"]):
        msg = MessageFactory(conversation=conv, type="image", external_id=f"S{i}")
        MediaFile.objects.create(tenant=conv.tenant, message=msg, connection=acme_connection, kind="image", state=state)
    other = ConversationFactory()  # another tenant's media is not counted
    stored(other, "audio", samples.ogg_opus())
    client.force_login(acme_owner)
    html = client.get(reverse("connections", args=[conv.tenant.slug])).content.decode().replace("\xa0", " ")
    from django.template.defaultfilters import filesizeformat

    total = filesizeformat(len(samples.jpeg()) + len(samples.pdf())).replace("\xa0", " ")
    assert f"Media stored for this workspace: {total}" in html
    assert f"2 stored ({total}) · 2 downloading · 1 failed · 1 expired" in html


def test_purging_a_number_removes_its_media_files(acme_connection, media_root, django_capture_on_commit_callbacks):
    from inbox.deletion import check_purge_connection, do_run_purge

    conv = ConversationFactory(connection=acme_connection)
    item = stored(conv, "document", samples.pdf())
    with django_capture_on_commit_callbacks(execute=True):
        job = check_purge_connection(acme_connection, acme_connection.name)
    with django_capture_on_commit_callbacks(execute=True):
        assert do_run_purge(job.pk)
    assert not MediaFile.objects.unscoped().exists()
    assert not (media_root / item.storage_name).exists()
