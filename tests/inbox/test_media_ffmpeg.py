"""ffmpeg's part of media (inbox/transcode.py), with the real ffmpeg that scripts/ensure-ffmpeg.sh installs:
a poster frame for videos, attached audio converted to an OGG/Opus voice note; and what happens without
ffmpeg (no poster, audio sent as it came, logged once) or with a file ffmpeg cannot read."""

import io
import logging
import shutil
import subprocess

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from connections.transport import samples
from inbox import media, mediatypes, transcode
from inbox.models import MediaFile, Message
from tests.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db



@pytest.fixture(autouse=True)
def ffmpeg_installed():
    assert shutil.which("ffmpeg"), "ffmpeg is missing: `make test` installs it (scripts/ensure-ffmpeg.sh)"


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


@pytest.fixture
def no_ffmpeg(settings):
    settings.FFMPEG_BINARY = "ffmpeg-is-not-installed-here"
    transcode._missing_logged.clear()
    yield
    transcode._missing_logged.clear()


def stored(conv, kind, data, external_id) -> MediaFile:
    msg = MessageFactory(conversation=conv, type=kind, body="", external_id=external_id)
    item = MediaFile.objects.create(tenant=conv.tenant, message=msg, connection=conv.connection, kind=kind)
    assert media.do_store_media(item, data)
    item.refresh_from_db()
    return item


def probe(data: bytes, tmp_path) -> dict:
    """What ffprobe says of a file: codec and duration of its first audio stream."""
    path = tmp_path / "probe"
    path.write_bytes(data)
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
                          "stream=codec_name,sample_rate,channels:format=duration,format_name", "-of", "default=nw=1",
                          str(path)], capture_output=True, text=True, check=True).stdout
    return dict(line.split("=", 1) for line in out.split())


def test_a_received_video_gets_a_poster_frame_shown_on_its_player(client, acme_agent, acme_connection, media_root):
    conv = ConversationFactory(connection=acme_connection)
    video = stored(conv, "video", samples.mp4(), "VID1")
    assert (video.state, video.mimetype, video.thumbnail_name) == ("fetched", "video/mp4", f"{video.storage_name}.thumb")
    poster = (media_root / video.thumbnail_name).read_bytes()
    assert mediatypes.sniff(poster) == "image/jpeg"
    with Image.open(io.BytesIO(poster)) as img:
        assert img.size == (160, 120)  # the video's frame, already within MEDIA_THUMBNAIL_PIXELS
        r, g, b = img.convert("RGB").resize((1, 1)).getpixel((0, 0))
        assert r + g + b > 150  # ffmpeg's test pattern, not a black frame

    client.force_login(acme_agent)
    page = client.get(reverse("conversation", args=[conv.tenant.slug, conv.pk])).content.decode()
    assert (f'<video controls preload="metadata" src="media/{video.pk}/" poster="media/{video.pk}/thumb/" '
            'data-media="video">') in page
    served = client.get(reverse("media_thumbnail", args=[conv.tenant.slug, conv.pk, video.pk]))
    assert served.status_code == 200 and served["Content-Type"] == "image/jpeg"
    assert served["Content-Disposition"].startswith("inline") and served["X-Content-Type-Options"] == "nosniff"
    assert b"".join(served.streaming_content) == poster


def test_a_large_videos_poster_fits_the_thumbnail_box(acme_connection, media_root, tmp_path):
    big = tmp_path / "big.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=10:duration=1",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(big)], check=True)
    item = stored(ConversationFactory(connection=acme_connection), "video", big.read_bytes(), "VIDBIG")
    with Image.open(media_root / item.thumbnail_name) as img:
        assert img.size == (320, 180)


def test_without_ffmpeg_a_video_shows_without_a_poster_and_that_is_logged_once(client, acme_agent, acme_connection,
                                                                             no_ffmpeg, caplog):
    conv = ConversationFactory(connection=acme_connection)
    with caplog.at_level(logging.WARNING, logger="inbox.transcode"):
        first = stored(conv, "video", samples.mp4(), "VID1")
        second = stored(conv, "video", samples.mp4() + b"\0", "VID2")
    assert [r.message for r in caplog.records] == [transcode.FFMPEG_MISSING]
    assert caplog.records[0].binary == "ffmpeg-is-not-installed-here"
    for item in (first, second):
        assert (item.state, item.mimetype, item.thumbnail_name) == ("fetched", "video/mp4", "")
    client.force_login(acme_agent)
    page = client.get(reverse("conversation", args=[conv.tenant.slug, conv.pk])).content.decode()
    assert f'<video controls preload="metadata" src="media/{first.pk}/" data-media="video">' in page
    assert client.get(reverse("media_thumbnail", args=[conv.tenant.slug, conv.pk, first.pk])).status_code == 404


def test_a_video_ffmpeg_cannot_read_is_stored_without_a_poster(acme_connection, caplog):
    conv = ConversationFactory(connection=acme_connection)
    broken = samples.mp4_header()  # an MP4 header and nothing to decode
    with caplog.at_level(logging.WARNING, logger="inbox.transcode"):
        item = stored(conv, "video", broken, "VIDX")
    assert (item.state, item.mimetype, item.thumbnail_name, item.size) == ("fetched", "video/mp4", "", len(broken))
    assert [r.message for r in caplog.records] == [transcode.FFMPEG_FAILED]


def test_attached_mp3_audio_is_sent_as_an_ogg_opus_voice_note(client, acme_agent, acme_connection, media_root,
                                                              tmp_path):
    conv = ConversationFactory(connection=acme_connection)
    client.force_login(acme_agent)
    r = client.post(reverse("reply", args=[conv.tenant.slug, conv.pk]),
                    {"attachment": SimpleUploadedFile("recording.mp3", samples.mp3(), "audio/mpeg")},
                    HTTP_HX_REQUEST="true")
    assert r.status_code == 200
    msg = Message.objects.unscoped().get(conversation=conv)
    item = msg.media
    assert (msg.type, msg.status, msg.media_mimetype) == ("audio", "queued", "audio/ogg")
    assert (item.mimetype, item.filename, item.state) == ("audio/ogg", "recording.ogg", "fetched")
    data = (media_root / item.storage_name).read_bytes()
    assert item.size == len(data) == msg.media_size
    info = probe(data, tmp_path)
    assert (info["format_name"], info["codec_name"], info["sample_rate"], info["channels"]) == ("ogg", "opus", "48000", "1")
    assert 1.3 < float(info["duration"]) < 1.7  # the 1.5 s recording, whole


def test_an_ogg_opus_attachment_is_sent_as_it_is(client, acme_agent, acme_connection, media_root):
    conv = ConversationFactory(connection=acme_connection)
    voice = samples.ogg_opus(seconds=2.0)
    media.check_queue_media_reply(conv, acme_agent, SimpleUploadedFile("voice.ogg", voice), "")
    item = MediaFile.objects.unscoped().get(message__conversation=conv)
    assert (item.mimetype, item.filename) == ("audio/ogg", "voice.ogg")
    assert (media_root / item.storage_name).read_bytes() == voice


def test_without_ffmpeg_attached_audio_is_sent_unconverted(acme_agent, acme_connection, media_root, no_ffmpeg, caplog):
    conv = ConversationFactory(connection=acme_connection)
    with caplog.at_level(logging.WARNING, logger="inbox.transcode"):
        msg = media.check_queue_media_reply(conv, acme_agent, SimpleUploadedFile("recording.mp3", samples.mp3()), "hi")
    assert [r.message for r in caplog.records] == [transcode.FFMPEG_MISSING]
    item = msg.media
    assert (msg.type, msg.body, item.mimetype, item.filename) == ("audio", "hi", "audio/mpeg", "recording.mp3")
    assert (media_root / item.storage_name).read_bytes() == samples.mp3()


def test_a_conversion_too_slow_is_cut_off_and_the_audio_goes_as_it_came(acme_agent, acme_connection, settings, caplog):
    settings.FFMPEG_TIMEOUT_SECONDS = 0.001
    conv = ConversationFactory(connection=acme_connection)
    with caplog.at_level(logging.WARNING, logger="inbox.transcode"):
        msg = media.check_queue_media_reply(conv, acme_agent, SimpleUploadedFile("r.mp3", samples.mp3()), "")
    assert msg.media.mimetype == "audio/mpeg"
    assert [r.message for r in caplog.records] == [transcode.FFMPEG_FAILED]
    assert "TimeoutExpired" in caplog.records[0].error


# --- posters made afterwards: manage.py backfill_video_posters ---------------------------------------------
def stored_files(media_root) -> dict:
    return {str(p.relative_to(media_root)): p.stat().st_mtime_ns for p in media_root.rglob("*") if p.is_file()}


def test_backfill_makes_the_posters_videos_stored_without_ffmpeg_lack_once(settings, media_root, acme_connection,
                                                                          globex, client, acme_agent):
    import json
    from io import StringIO

    from django.core.management import CommandError, call_command

    def backfill(*args) -> dict:
        out = StringIO()
        call_command("backfill_video_posters", "--json", *args, stdout=out)
        return json.loads(out.getvalue())

    conv = ConversationFactory(connection=acme_connection)
    settings.FFMPEG_BINARY = "ffmpeg-is-not-installed-here"
    first, second = stored(conv, "video", samples.mp4(), "V1"), stored(conv, "video", samples.mp4(), "V2")
    broken = stored(conv, "video", samples.mp4()[:300], "BROKEN")  # sniffed MP4, unreadable by ffmpeg
    theirs = stored(ConversationFactory(connection__tenant=globex), "video", samples.mp4(), "G1")
    assert not any(v.thumbnail_name for v in (first, second, broken, theirs))
    photo = stored(conv, "image", samples.jpeg(), "IMG")
    before = stored_files(media_root)

    with pytest.raises(CommandError, match="ffmpeg is not installed.*nothing was changed"):
        call_command("backfill_video_posters")
    assert stored_files(media_root) == before
    settings.FFMPEG_BINARY = "ffmpeg"
    assert backfill("--dry-run") == {"videos": 4, "files": 3, "made": 3, "linked": 0, "failed": 0, "dry_run": True}
    assert stored_files(media_root) == before
    assert backfill("--tenant", "globex") == {"videos": 1, "files": 1, "made": 1, "linked": 0, "failed": 0,
                                              "dry_run": False}
    assert backfill() == {"videos": 3, "files": 2, "made": 1, "linked": 0, "failed": 1, "dry_run": False}
    for video in (first, second, theirs):
        video.refresh_from_db()
        assert video.thumbnail_name == f"{video.storage_name}.thumb"
        poster = (media_root / video.thumbnail_name).read_bytes()
        assert mediatypes.sniff(poster) == "image/jpeg"
    broken.refresh_from_db()
    assert broken.thumbnail_name == "" and broken.state == "fetched"
    photo.refresh_from_db()
    assert photo.thumbnail_name  # images were never the backfill's business

    # A row of a file whose poster is stored, without its name (an import stores no posters): linked, not made.
    MediaFile.objects.unscoped().filter(pk=second.pk).update(thumbnail_name="")
    made = stored_files(media_root)
    assert backfill() == {"videos": 2, "files": 2, "made": 0, "linked": 1, "failed": 1, "dry_run": False}
    second.refresh_from_db()
    assert second.thumbnail_name == first.thumbnail_name
    assert backfill() == {"videos": 1, "files": 1, "made": 0, "linked": 0, "failed": 1, "dry_run": False}
    assert stored_files(media_root) == made  # nothing written again
    client.force_login(acme_agent)
    r = client.get(reverse("media_thumbnail", args=[conv.tenant.slug, conv.pk, first.pk]))
    assert r.status_code == 200 and r["Content-Type"] == "image/jpeg"
    with pytest.raises(CommandError, match="No workspace"):
        call_command("backfill_video_posters", "--tenant", "nope")


def test_backfill_in_small_batches_tries_each_file_once_per_run(settings, media_root, acme_connection):
    conv = ConversationFactory(connection=acme_connection)
    settings.FFMPEG_BINARY = "ffmpeg-is-not-installed-here"
    for i in range(3):  # one unreadable file named by three rows, met in three batches
        stored(conv, "video", samples.mp4()[:300], f"BROKEN{i}")
    stored(conv, "video", samples.mp4(), "GOOD")
    settings.FFMPEG_BINARY = "ffmpeg"
    report = media.backfill_video_posters(batch=1)
    assert (report.videos, report.files, report.made, report.failed) == (4, 2, 1, 1)
