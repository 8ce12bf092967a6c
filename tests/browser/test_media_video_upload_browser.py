"""Media in a real browser, continued: a received video shows its poster frame (ffmpeg) and seeks (the
Range path of the access-checked view, 206 Partial Content); the reply box shows an upload's progress,
refuses a file over WhatsApp's limit before uploading it (and the server refuses one the browser could not
tell), shows a failed upload, and keeps the caption each time. Limits are lowered for this module's web
process (MEDIA_MAX_*_BYTES) so the files stay small."""

import os

import pytest
from playwright.sync_api import expect

from connections.transport import samples
from inbox import media
from inbox.models import MediaFile, Message
from tests import procs
from tests.browser.conftest import _wait_port, login, wait_online
from tests.factories import ConversationFactory, MessageFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

IMAGE_LIMIT = 200_000  # "195.3 KB"
DOCUMENT_LIMIT = 5_000_000


@pytest.fixture(scope="module")
def web(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        port = procs.free_port()
        proc = procs.daphne(port, procs.process_env(MEDIA_MAX_IMAGE_BYTES=str(IMAGE_LIMIT),
                                                    MEDIA_MAX_DOCUMENT_BYTES=str(DOCUMENT_LIMIT)))
    _wait_port(port, proc)
    yield f"http://127.0.0.1:{port}"
    proc.stop()


def open_conversation(new_page, web, conv, before=None):
    page = new_page()
    login(page, web, "acme-agent")
    if before:
        before(page)
    page.goto(f"{web}/t/acme/c/{conv.pk}/")
    wait_online(page)
    return page


def test_a_video_shows_its_poster_and_seeks_through_range_requests(web, new_page, acme_agent, acme_connection):
    conv = ConversationFactory(connection=acme_connection)
    msg = MessageFactory(conversation=conv, type="video", body="the box arrived like this", external_id="B-VID")
    item = MediaFile.objects.create(tenant=conv.tenant, message=msg, connection=acme_connection, kind="video")
    assert media.do_store_media(item, samples.mp4())
    item.refresh_from_db()
    assert item.thumbnail_name  # the poster frame ffmpeg made

    seen = []
    page = open_conversation(new_page, web, conv, before=lambda page: page.on(
        "response", lambda r: seen.append((r.status, r.request.headers.get("range"), r.headers))
        if f"/media/{item.pk}/" in r.url and "/thumb/" not in r.url else None))
    video = page.locator(f"#msg-{item.message_id} video")
    expect(video).to_be_visible()
    assert video.get_attribute("poster") == f"media/{item.pk}/thumb/"
    poster = video.evaluate("""el => new Promise((resolve, reject) => {
        const img = new Image();
        img.onload = () => resolve([img.naturalWidth, img.naturalHeight]);
        img.onerror = () => reject(new Error('poster did not load'));
        img.src = el.poster;
    })""")
    assert poster == [160, 120]

    result = video.evaluate("""el => new Promise((resolve, reject) => {
        el.muted = true;
        el.addEventListener('error', () => reject(new Error('video error ' + (el.error && el.error.code))));
        const seek = () => {
            el.addEventListener('seeked', () => resolve({time: el.currentTime, duration: el.duration,
                seekableEnd: el.seekable.length ? el.seekable.end(0) : 0}), {once: true});
            el.currentTime = 2.0;
        };
        if (el.readyState >= 1) { seek(); } else { el.addEventListener('loadedmetadata', seek, {once: true}); el.load(); }
    })""")
    assert abs(result["duration"] - 3.0) < 0.2 and result["seekableEnd"] > 2.5
    assert abs(result["time"] - 2.0) < 0.2
    played = video.evaluate("""el => el.play().then(() => new Promise(r =>
        setTimeout(() => { r(el.currentTime); el.pause(); }, 400)))""")
    assert played > 2.0  # it plays on from where it was sought to
    partial = [(status, rng, headers) for status, rng, headers in seen if status == 206]
    assert partial, seen  # the player asked for ranges and got 206 Partial Content
    for _, rng, headers in partial:
        assert rng and rng.startswith("bytes=")
        assert headers["content-range"].startswith("bytes ") and headers["content-range"].endswith(f"/{item.size}")
        assert headers["accept-ranges"] == "bytes" and headers["x-content-type-options"] == "nosniff"


def test_the_reply_box_shows_upload_progress_and_sends_the_file(web, new_page, acme_agent, acme_connection):
    conv = ConversationFactory(connection=acme_connection)
    page = open_conversation(new_page, web, conv)
    # Record what the progress bar showed while the upload ran (the form is replaced when it ends).
    page.evaluate("""() => {
        window.__progress = [];
        new MutationObserver(records => records.forEach(r => {
            const form = r.target, panel = form.querySelector('[data-upload]');
            window.__progress.push([form.getAttribute('data-uploading'), panel && !panel.hidden,
                                    panel && panel.querySelector('progress').value]);
        })).observe(document.body, {subtree: true, attributes: true, attributeFilter: ['data-uploading']});
    }""")
    cdp = page.context.new_cdp_session(page)  # a slow uplink, so the upload takes a few seconds
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 20, "downloadThroughput": -1,
                                                   "uploadThroughput": 1_000_000})
    data = os.urandom(3_000_000)
    page.set_input_files("#reply-attachment", files=[{"name": "scan.bin", "mimeType": "application/octet-stream",
                                                      "buffer": data}])
    page.fill("#reply-body", "the full scan")
    page.click("#reply-form button[type=submit]")
    bar = page.locator("#reply-form [data-upload] progress")
    expect(bar).to_be_visible()
    expect(page.locator("#reply-form button[type=submit]")).to_be_disabled()  # no second send meanwhile
    expect(page.locator(".msg-out .media-document")).to_be_visible(timeout=30000)
    progress = page.evaluate("window.__progress")
    values = [int(v) for v, visible, _ in progress if v is not None and visible]
    assert values and values[-1] == 100 and any(0 < v < 100 for v in values), progress
    assert values == sorted(values)
    expect(page.locator("#reply-form [data-upload]")).to_be_hidden()
    expect(page.locator("#reply-error")).to_be_hidden()
    msg = Message.objects.unscoped().get(conversation=conv)
    assert (msg.type, msg.body, msg.media.size, msg.media.filename) == ("document", "the full scan", len(data), "scan.bin")


def test_a_file_over_whatsapps_limit_is_refused_with_the_message_and_the_caption_kept(web, new_page, acme_agent,
                                                                                       acme_connection):
    conv = ConversationFactory(connection=acme_connection)
    page = open_conversation(new_page, web, conv)
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" and "/reply/" in r.url else None)
    big_photo = samples.jpeg(320, 240) + b"\0" * (300_000 - len(samples.jpeg(320, 240)))
    assert len(big_photo) == 300_000

    # The browser knows it is a photo: refused before a byte is uploaded.
    page.set_input_files("#reply-attachment", files=[{"name": "photo.jpg", "mimeType": "image/jpeg", "buffer": big_photo}])
    page.fill("#reply-body", "look at the crack")
    page.click("#reply-form button[type=submit]")
    error = page.locator("#reply-error")
    expect(error).to_have_text("The photo is 293.0 KB; WhatsApp accepts a photo up to 195.3 KB.")
    expect(page.locator("#reply-body")).to_have_value("look at the crack")
    assert page.locator("#reply-body").get_attribute("aria-invalid") == "true"
    page.wait_for_timeout(300)
    assert posts == [] and not Message.objects.unscoped().filter(conversation=conv).exists()

    # Named so the browser cannot tell (a document to it): the server sniffs a photo and refuses it (422).
    page.set_input_files("#reply-attachment", files=[{"name": "photo.bin", "mimeType": "application/octet-stream",
                                                      "buffer": big_photo}])
    page.click("#reply-form button[type=submit]")
    expect(error).to_have_text("The photo is 293.0 KB; WhatsApp accepts a photo up to 195.3 KB.")
    expect(page.locator("#reply-body")).to_have_value("look at the crack")
    assert len(posts) == 1 and not Message.objects.unscoped().filter(conversation=conv).exists()

    # A small enough photo then goes, with the caption that was kept.
    page.set_input_files("#reply-attachment", files=[{"name": "photo.jpg", "mimeType": "image/jpeg",
                                                      "buffer": samples.jpeg(320, 240)}])
    page.click("#reply-form button[type=submit]")
    expect(page.locator(".msg-out .media-image img")).to_be_visible()
    expect(error).to_be_hidden()
    msg = Message.objects.unscoped().get(conversation=conv)
    assert (msg.type, msg.body) == ("image", "look at the crack")


def test_a_failed_upload_says_so_and_keeps_the_caption_and_file(web, new_page, acme_agent, acme_connection):
    conv = ConversationFactory(connection=acme_connection)
    page = open_conversation(new_page, web, conv)
    page.route("**/reply/", lambda route: route.abort("connectionreset"))
    page.set_input_files("#reply-attachment", files=[{"name": "invoice.pdf", "mimeType": "application/pdf",
                                                      "buffer": samples.pdf()}])
    page.fill("#reply-body", "your invoice")
    page.click("#reply-form button[type=submit]")
    expect(page.locator("#reply-error")).to_have_text(
        "The upload failed; nothing was sent. Check the connection and send again.")
    expect(page.locator("#reply-body")).to_have_value("your invoice")
    assert page.locator("#reply-attachment").evaluate("el => el.files.length && el.files[0].name") == "invoice.pdf"
    expect(page.locator("#reply-form [data-upload]")).to_be_hidden()
    page.unroute("**/reply/")
    page.click("#reply-form button[type=submit]")  # sent again once the connection is back
    expect(page.locator(".msg-out .media-document")).to_be_visible()
    assert Message.objects.unscoped().get(conversation=conv).body == "your invoice"
