"""Media in a real browser (Debian chromium): the voice note plays with a duration, the photo's thumbnail
renders and opens full size, the document downloads byte-identical, an attachment is sent from the
reply box's file picker; all under the app's Content-Security-Policy."""

import pytest
from playwright.sync_api import expect

from connections.transport import samples
from inbox import media
from inbox.models import MediaFile, Message
from tests.browser.conftest import login, wait_online
from tests.factories import ConversationFactory, MessageFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def stored(conv, kind, data, external_id, filename=""):
    msg = MessageFactory(conversation=conv, type=kind, body="", external_id=external_id, media_filename=filename)
    item = MediaFile.objects.create(tenant=conv.tenant, message=msg, connection=conv.connection, kind=kind,
                                    filename=filename)
    assert media.do_store_media(item, data)
    item.refresh_from_db()
    return item


def test_voice_note_plays_image_renders_and_document_downloads_byte_identical(web, new_page, acme_agent,
                                                                              acme_connection):
    conv = ConversationFactory(connection=acme_connection)
    image = stored(conv, "image", samples.jpeg(640, 480), "B-IMG")
    voice = stored(conv, "audio", samples.ogg_opus(seconds=2.0), "B-VOICE")
    doc = stored(conv, "document", samples.pdf("Browser test"), "B-DOC", filename="invoice-42.pdf")
    page = new_page()
    login(page, web, "acme-agent")
    page.goto(f"{web}/t/acme/c/{conv.pk}/")
    wait_online(page)

    img = page.locator(f"#msg-{image.message_id} img")
    expect(img).to_be_visible()
    page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=img.element_handle())
    assert img.evaluate("el => el.naturalWidth") <= 320  # the thumbnail, not the 640 px original
    assert img.evaluate("el => el.closest('a').getAttribute('href')") == f"media/{image.pk}/"

    audio = page.locator(f"#msg-{voice.message_id} audio")
    duration = audio.evaluate("""el => new Promise((resolve, reject) => {
        if (el.readyState >= 1) { resolve(el.duration); return; }
        el.addEventListener('loadedmetadata', () => resolve(el.duration));
        el.addEventListener('error', () => reject(new Error('audio error ' + (el.error && el.error.code))));
        el.load();
    })""")
    assert 1.5 < duration < 2.5, duration
    played = audio.evaluate("""el => { el.muted = true; return el.play().then(() => new Promise(r =>
        setTimeout(() => { r(el.currentTime); el.pause(); }, 400))); }""")
    assert played > 0

    with page.expect_download() as download:
        page.click(f"#msg-{doc.message_id} a.media-download")
    assert download.value.suggested_filename == "invoice-42.pdf"
    with open(download.value.path(), "rb") as f:
        assert f.read() == samples.pdf("Browser test")

    # Full size opens in a new tab, from the same access-checked view.
    full = page.request.get(f"{web}/t/acme/c/{conv.pk}/media/{image.pk}/")
    assert full.status == 200 and full.body() == samples.jpeg(640, 480)
    assert full.headers["x-content-type-options"] == "nosniff"


def test_attachment_from_the_file_picker_is_queued_with_its_caption(web, new_page, acme_agent, acme_connection):
    conv = ConversationFactory(connection=acme_connection)
    page = new_page()
    login(page, web, "acme-agent")
    page.goto(f"{web}/t/acme/c/{conv.pk}/")
    wait_online(page)
    page.set_input_files("#reply-attachment", files=[{"name": "invoice.pdf", "mimeType": "application/pdf",
                                                      "buffer": samples.pdf()}])
    page.fill("#reply-body", "here it is")
    page.click("#reply-form button[type=submit]")
    expect(page.locator(".msg-out .media-document")).to_be_visible()
    expect(page.locator(".msg-out .msg-body")).to_have_text("here it is")
    msg = Message.objects.unscoped().get(conversation=conv)
    assert (msg.type, msg.status, msg.media.filename, msg.media.size) == ("document", "queued", "invoice.pdf",
                                                                          len(samples.pdf()))
    expect(page.locator("#reply-attachment")).to_have_value("")  # the form was reset for the next reply
