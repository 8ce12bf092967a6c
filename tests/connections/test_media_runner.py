"""Media through a real runner: the simulator's media server hands real files (JPEG, PNG, WebP sticker, MP4,
OGG/Opus voice note, PDF) to the child's download, which stores them; failures are retried with backoff and
then marked; expired files are marked and can be retried; attachments are uploaded by the runner."""

import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import close_old_connections

from connections.nudge import nudge
from connections.transport import samples
from connections.transport.simulator import _media_key, _redis, expire_media, inbound_specs, media_spec, queue_inbound, sent_media
from inbox import media
from inbox.models import MediaFile, Message
from sync.models import RawEvent
from sync.processor import process_pending
from tests import procs
from tests.connections.helpers import runner_env, start_runner, wait_status
from tests.factories import ConnectionFactory, ConversationFactory, TenantFactory

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]

EXPECTED = {"image": "image/jpeg", "png": "image/png", "sticker": "image/webp", "audio": "audio/ogg",
            "video": "video/mp4", "document": "application/pdf"}


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    return tmp_path


def media_runner(name, media_root, **extra):
    env = runner_env(MEDIA_ROOT=str(media_root), MEDIA_FETCH_BACKOFF_BASE_SECONDS=0.3,
                     MEDIA_FETCH_BACKOFF_CAP_SECONDS=1, MEDIA_FETCH_MAX_ATTEMPTS=3, **extra)
    return start_runner(name, env)


def send_sample(conn, name, *, caption="", batch=""):
    """A customer sends sample ``name``: the fake server stores the file, then delivers the message."""
    kind, data, mimetype, filename = samples.sample(name)
    spec = inbound_specs("+5511999990001", "", name="Ana", batch=batch or name.upper())[0]
    spec["media"] = media_spec(kind, data, mimetype, filename=filename, caption=caption,
                               seconds=1 if kind in ("audio", "video") else 0, ptt=kind == "audio")
    queue_inbound(conn.pk, [spec])
    return spec, data


def journal_and_process(conn, count):
    procs.wait_for(lambda: RawEvent.objects.unscoped().filter(connection=conn, event_name="MessageEv").count() >= count, 30,
                   message=f"{count} media messages journaled")
    process_pending(conn.pk, wait=True)


def media_of(external_id) -> MediaFile:
    close_old_connections()
    return MediaFile.objects.unscoped().select_related("message").get(message__external_id=external_id)


@pytest.mark.smoke
def test_every_kind_of_media_is_downloaded_by_the_runner_stored_and_sniffed(media_root):
    conn = ConnectionFactory(tenant=TenantFactory(), jid="5511900000601:1@s.whatsapp.net")
    runner = media_runner("media", media_root)
    try:
        wait_status(conn.pk, "connected", 20, runner)
        sent = {name: send_sample(conn, name, caption="look" if name == "image" else "") for name in EXPECTED
                if name != "audio"}
        # The voice note through `manage.py simulate --media`, as an operator would drive the demo.
        out = procs.manage("simulate", "simulate", "--connection", str(conn.pk), "--media", "audio", "--batch", "CMD",
                           env=runner_env())
        out.popen.wait(20)
        assert out.popen.returncode == 0 and "queued a audio" in out.output(), out.output()
        sent["audio"] = ({"id": "SIMCMD000000"}, samples.ogg_opus())
        journal_and_process(conn, len(EXPECTED))
        for name, (spec, data) in sent.items():
            procs.wait_for(lambda spec=spec: media_of(spec["id"]).state == "fetched", 30,
                           message=f"{name} fetched", interval=0.1)
            item = media_of(spec["id"])
            assert item.mimetype == EXPECTED[name], name
            assert item.sha256 == hashlib.sha256(data).hexdigest() and item.size == len(data)
            assert (media_root / item.storage_name).read_bytes() == data
            assert item.attempts == 1
        assert media_of(sent["image"][0]["id"]).message.body == "look"
        assert media_of(sent["document"][0]["id"]).filename == "invoice-42.pdf"
        for name in ("image", "png", "sticker"):
            assert media_of(sent[name][0]["id"]).thumbnail_name
        # The video (a real H.264 MP4) got its poster frame from ffmpeg in the child.
        video = media_of(sent["video"][0]["id"])
        assert video.thumbnail_name == f"{video.storage_name}.thumb"
        assert (media_root / video.thumbnail_name).read_bytes()[:3] == b"\xff\xd8\xff"
    finally:
        runner.stop()


def test_failed_downloads_are_retried_with_backoff_then_marked_and_expired_media_can_be_retried(media_root):
    conn = ConnectionFactory(tenant=TenantFactory(), jid="5511900000602:1@s.whatsapp.net")
    runner = media_runner("media-fail", media_root)
    try:
        wait_status(conn.pk, "connected", 20, runner)
        # Two transient failures, then the file comes: fetched on the third attempt.
        nudge(conn.pk, "simulate", kind="fail_downloads", count=2)
        procs.wait_for(lambda: '"kind": "fail_downloads"' in runner.output(), 30, message="failing downloads")
        voice, voice_bytes = send_sample(conn, "audio", batch="V1")
        journal_and_process(conn, 1)
        procs.wait_for(lambda: media_of(voice["id"]).state == "fetched", 30, message="voice note fetched")
        assert media_of(voice["id"]).attempts == 3
        assert (media_root / media_of(voice["id"]).storage_name).read_bytes() == voice_bytes

        # Failing every time: failed after MEDIA_FETCH_MAX_ATTEMPTS, with the error.
        nudge(conn.pk, "simulate", kind="fail_downloads", count=50)
        procs.wait_for(lambda: runner.output().count('"kind": "fail_downloads"') >= 2, 30, message="failing again")
        doomed, _ = send_sample(conn, "png", batch="F1")
        journal_and_process(conn, 2)
        procs.wait_for(lambda: media_of(doomed["id"]).state == "failed", 30, message="marked failed")
        item = media_of(doomed["id"])
        assert item.attempts == 3 and "simulated download failure" in item.error and not item.storage_name
        nudge(conn.pk, "simulate", kind="fail_downloads", count=0)

        # Expired on the server before we fetched it: marked expired at once; retried once it is back.
        gone, gone_bytes = send_sample(conn, "document", batch="E1")
        procs.wait_for(lambda: RawEvent.objects.unscoped().filter(connection=conn, event_name="MessageEv").count() >= 3, 15)
        assert expire_media(gone["media"]["path"])
        process_pending(conn.pk, wait=True)
        procs.wait_for(lambda: media_of(gone["id"]).state == "expired", 30, message="marked expired")
        assert "404" in media_of(gone["id"]).error and media_of(gone["id"]).attempts == 1
        _redis().set(_media_key(gone["media"]["path"]), gone_bytes)
        media.check_retry_media(media_of(gone["id"]))
        procs.wait_for(lambda: media_of(gone["id"]).state == "fetched", 30, message="fetched after retry")
        # And the one that failed for good can be retried too, now that downloads work.
        procs.wait_for(lambda: '"kind": "fail_downloads"' in runner.output(), 1)
        media.check_retry_media(media_of(doomed["id"]))
        procs.wait_for(lambda: media_of(doomed["id"]).state == "fetched", 30, message="failed one fetched on retry")
    finally:
        runner.stop()


def test_a_pdf_an_image_and_a_voice_note_from_the_reply_box_are_uploaded_once_by_the_runner(media_root, settings):
    tenant = TenantFactory()
    conn = ConnectionFactory(tenant=tenant, jid="5511900000603:1@s.whatsapp.net")
    conv = ConversationFactory(connection=conn)
    pdf, jpeg = samples.pdf(), samples.jpeg()
    doc = media.check_queue_media_reply(conv, None, SimpleUploadedFile("invoice.pdf", pdf), "your invoice")
    photo = media.check_queue_media_reply(conv, None, SimpleUploadedFile("photo.jpg", jpeg), "")
    # An MP3 recording goes as an OGG/Opus voice note (converted by ffmpeg when it was queued).
    voice = media.check_queue_media_reply(conv, None, SimpleUploadedFile("recording.mp3", samples.mp3()), "")
    voice_sha = voice.media.sha256
    assert voice.media.mimetype == "audio/ogg" and voice_sha != hashlib.sha256(samples.mp3()).hexdigest()
    runner = media_runner("media-send", media_root)
    try:
        def status(pk):
            close_old_connections()
            return Message.objects.unscoped().get(pk=pk).status

        procs.wait_for(lambda: status(voice.pk) in ("sent", "delivered", "read"), 30, message="all three sent")
        assert status(doc.pk) in ("sent", "delivered", "read") and status(photo.pk) in ("sent", "delivered", "read")
        got = sent_media(conn.pk)
        assert [(g["sha256"], g["mimetype"], g["filename"], g["caption"]) for g in got] == [
            (hashlib.sha256(pdf).hexdigest(), "application/pdf", "invoice.pdf", "your invoice"),
            (hashlib.sha256(jpeg).hexdigest(), "image/jpeg", "photo.jpg", ""),
            (voice_sha, "audio/ogg", "recording.ogg", ""),
        ]
        assert all(g["chat"] == conv.chat_jid for g in got)
        close_old_connections()
        assert Message.objects.unscoped().get(pk=doc.pk).send_attempts == 1
        nudge(conn.pk, "send")
        nudge(conn.pk, "send")
        procs.wait_for(lambda: RawEvent.objects.unscoped().filter(connection=conn, event_name="ReceiptEv").count() >= 6, 10,
                       message="delivered and read receipts for all three journaled")
        process_pending(conn.pk, wait=True)
        assert status(doc.pk) == "read" and status(photo.pk) == "read" and status(voice.pk) == "read"
        assert len(sent_media(conn.pk)) == 3  # never sent twice
    finally:
        runner.stop()


@pytest.mark.s3
def test_a_runner_on_s3_storage_stores_received_media_in_the_bucket_and_sends_attachments_from_it(
        s3_media, media_root, client):
    """MEDIA_STORAGE=s3 in the runner's environment (a local S3 server: moto's emulator, tests/s3.py): the
    child stores what it downloads as objects (the video's poster too), the view serves them byte-identical,
    and an attachment queued here (stored in the bucket) is read back from it and sent once."""
    from django.urls import reverse

    from tests.factories import MembershipFactory, UserFactory

    tenant = TenantFactory()
    conn = ConnectionFactory(tenant=tenant, jid="5511900000604:1@s.whatsapp.net")
    pdf = samples.pdf("from the bucket")
    outgoing = media.check_queue_media_reply(ConversationFactory(connection=conn), None,
                                             SimpleUploadedFile("terms.pdf", pdf), "")
    runner = media_runner("media-s3", media_root, **s3_media.env)
    try:
        wait_status(conn.pk, "connected", 20, runner)
        sent = {name: send_sample(conn, name) for name in ("image", "video")}
        journal_and_process(conn, 2)
        for name, (spec, _data) in sent.items():
            procs.wait_for(lambda spec=spec: media_of(spec["id"]).state == "fetched", 30,
                           message=f"{name} fetched", interval=0.1)
        procs.wait_for(lambda: any(g["filename"] == "terms.pdf" for g in sent_media(conn.pk)), 30,
                       message="the attachment sent")
    finally:
        runner.stop()
    assert [g["sha256"] for g in sent_media(conn.pk)] == [hashlib.sha256(pdf).hexdigest()]
    assert outgoing.media.storage_name in s3_media.keys()
    user = UserFactory()
    MembershipFactory(user=user, tenant=tenant, role="agent")
    client.force_login(user)
    for name, (spec, data) in sent.items():
        item = media_of(spec["id"])
        assert s3_media.get(item.storage_name) == data and item.thumbnail_name in s3_media.keys(), name
        args = [tenant.slug, item.message.conversation_id, item.pk]
        r = client.get(reverse("media_file", args=args))
        assert r.status_code == 200 and b"".join(r.streaming_content) == data
        poster = client.get(reverse("media_thumbnail", args=args))
        assert poster.status_code == 200 and b"".join(poster.streaming_content)[:3] == b"\xff\xd8\xff"
    assert not [p for p in media_root.rglob("*") if p.is_file()]  # nothing on the local disk
