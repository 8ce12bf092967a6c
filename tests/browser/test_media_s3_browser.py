"""Media on S3 storage in a real browser: daphne started with ``MEDIA_STORAGE=s3`` (a local S3 server:
moto's emulator, tests/s3.py) serves a received video's poster and lets chromium's player seek and play,
over 206 responses streamed from ranged GetObject calls; a PDF downloads byte-identical."""

import uuid

import pytest
from playwright.sync_api import expect

from config.storage import media_storage
from connections.transport import samples
from inbox import media
from inbox.models import MediaFile
from tests import procs
from tests.browser.conftest import _wait_port, login, wait_online
from tests.factories import ConversationFactory, MessageFactory
from tests.s3 import S3Bucket, env_reader

pytestmark = [pytest.mark.browser, pytest.mark.s3, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def bucket(s3_server):
    bucket = S3Bucket(s3_server, f"browser-{uuid.uuid4().hex[:12]}")
    s3_server.client.create_bucket(Bucket=bucket.name)
    return bucket


@pytest.fixture(scope="module")
def web(django_db_setup, django_db_blocker, bucket):
    with django_db_blocker.unblock():
        port = procs.free_port()
        proc = procs.daphne(port, procs.process_env(**bucket.env))
    _wait_port(port, proc)
    yield f"http://127.0.0.1:{port}"
    proc.stop()


@pytest.fixture(autouse=True)
def on_s3(settings, bucket):
    settings.STORAGES = {**settings.STORAGES, "default": media_storage(env_reader(bucket.env))}


def stored(conv, kind, data, external_id) -> MediaFile:
    msg = MessageFactory(conversation=conv, type=kind, body="", external_id=external_id)
    item = MediaFile.objects.create(tenant=conv.tenant, message=msg, connection=conv.connection, kind=kind,
                                    filename="terms.pdf" if kind == "document" else "")
    assert media.do_store_media(item, data)
    item.refresh_from_db()
    return item


def test_a_video_on_s3_shows_its_poster_seeks_and_plays_and_a_pdf_downloads(web, new_page, acme_agent,
                                                                            acme_connection, bucket):
    conv = ConversationFactory(connection=acme_connection)
    video = stored(conv, "video", samples.mp4(), "S3-VID")
    doc = stored(conv, "document", samples.pdf("on s3"), "S3-DOC")
    assert {video.storage_name, video.thumbnail_name, doc.storage_name} <= bucket.keys()
    seen = []
    page = new_page()
    page.on("response", lambda r: seen.append((r.status, r.headers))
            if f"/media/{video.pk}/" in r.url and "/thumb/" not in r.url else None)
    login(page, web, "acme-agent")
    page.goto(f"{web}/t/acme/c/{conv.pk}/")
    wait_online(page)
    player = page.locator(f"#msg-{video.message_id} video")
    expect(player).to_be_visible()
    poster = player.evaluate("""el => new Promise((resolve, reject) => {
        const img = new Image();
        img.onload = () => resolve([img.naturalWidth, img.naturalHeight]);
        img.onerror = () => reject(new Error('poster did not load'));
        img.src = el.poster;
    })""")
    assert poster == [160, 120]
    result = player.evaluate("""el => new Promise((resolve, reject) => {
        el.muted = true;
        el.addEventListener('error', () => reject(new Error('video error ' + (el.error && el.error.code))));
        const seek = () => {
            el.addEventListener('seeked', () => resolve({time: el.currentTime, duration: el.duration}), {once: true});
            el.currentTime = 2.0;
        };
        if (el.readyState >= 1) { seek(); } else { el.addEventListener('loadedmetadata', seek, {once: true}); el.load(); }
    })""")
    assert abs(result["duration"] - 3.0) < 0.2 and abs(result["time"] - 2.0) < 0.2
    played = player.evaluate("""el => el.play().then(() => new Promise(r =>
        setTimeout(() => { r(el.currentTime); el.pause(); }, 400)))""")
    assert played > 2.0
    partial = [headers for status, headers in seen if status == 206]
    assert partial, seen
    assert all(h["content-range"].endswith(f"/{video.size}") and h["x-content-type-options"] == "nosniff"
               for h in partial)

    with page.expect_download() as download:
        page.click(f"#msg-{doc.message_id} a.media-download")
    assert download.value.suggested_filename == "terms.pdf"
    with open(download.value.path(), "rb") as f:
        assert f.read() == samples.pdf("on s3")
