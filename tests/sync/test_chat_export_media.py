"""A .zip chat export's media files become the imported messages' MediaFile rows: stored, sniffed and
checksummed like received media (sync/chat_import.py, inbox/media.py)."""

import hashlib
import zipfile
import zoneinfo
from datetime import datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from connections.transport import samples
from inbox import media
from inbox.models import MediaFile, Message
from sync.chat_export import Attachments, parse_chat_export
from sync.chat_import import do_import_chat_export
from tests.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db
UTC = zoneinfo.ZoneInfo("UTC")
LRM = "\u200e"
CHAT = "5511987650001@s.whatsapp.net"
PHOTO, INVOICE, VOICE, LOST = ("00000012-PHOTO-2020-12-31-21-46-00.jpg", "00000013-Invoice.pdf",
                               "00000014-AUDIO-2020-12-31-21-48-00.opus", "00000015-PHOTO-2020-12-31-21-49-00.jpg")
IOS = f"""[31/12/2020, 21:41:05] Ana: Happy new year!
{LRM}[31/12/2020, 21:46:00] Ana: {LRM}<attached: {PHOTO}>
{LRM}[31/12/2020, 21:47:00] Me Support: {LRM}<attached: {INVOICE}>
{LRM}[31/12/2020, 21:48:00] Ana: {LRM}<attached: {VOICE}>
{LRM}[31/12/2020, 21:49:00] Ana: {LRM}<attached: {LOST}>
"""
ANDROID = "31/12/2020, 21:46 - Ana: IMG-20201231-WA0001.jpg (file attached)\n"


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


def export_zip(tmp_path, text=IOS, files=None):
    path = tmp_path / "WhatsApp Chat - Ana.zip"
    files = {PHOTO: samples.jpeg(), INVOICE: samples.pdf(), VOICE: samples.ogg_opus()} if files is None else files
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("_chat.txt", "\ufeff" + text)
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def media_of(tenant, **filters) -> dict:
    return {m.filename: m for m in MediaFile.objects.for_tenant(tenant).filter(**filters).select_related("message")}


@pytest.mark.smoke
def test_the_zips_files_are_stored_sniffed_and_checksummed_as_the_messages_media_once(acme_connection, tmp_path,
                                                                                       media_root, capsys):
    path = export_zip(tmp_path)
    args = [str(path), "--connection", str(acme_connection.pk), "--chat", CHAT, "--me", "Me Support", "--timezone", "UTC"]
    call_command("import_chat_export", *args)
    assert '"media_attached": 3' in capsys.readouterr().out
    rows = media_of(acme_connection.tenant)
    assert set(rows) == {PHOTO, INVOICE, VOICE}  # the fifth line's file is not in the zip: no media row
    expected = {PHOTO: (samples.jpeg(), "image/jpeg", "image"), INVOICE: (samples.pdf(), "application/pdf", "document"),
                VOICE: (samples.ogg_opus(), "audio/ogg", "audio")}
    for name, (data, mimetype, kind) in expected.items():
        item = rows[name]
        assert (item.state, item.kind, item.mimetype, item.size) == ("fetched", kind, mimetype, len(data))
        assert item.sha256 == hashlib.sha256(data).hexdigest() and media.read_bytes(item) == data
        assert item.storage_name == media.storage_name(acme_connection.tenant_id, item.sha256)
        assert item.message.type == kind and item.message.media_size == len(data)
    assert rows[PHOTO].thumbnail_name and (media_root / rows[PHOTO].thumbnail_name).exists()
    assert rows[INVOICE].message.direction == "out"
    lost = Message.objects.for_tenant(acme_connection.tenant).get(media_filename=LOST)
    assert not MediaFile.objects.for_tenant(acme_connection.tenant).filter(message=lost).exists()

    call_command("import_chat_export", *args)  # a second import: nothing new, no file stored twice
    assert '"saved": 0' in (out := capsys.readouterr().out) and '"media_attached": 0' in out
    assert MediaFile.objects.for_tenant(acme_connection.tenant).count() == 3
    assert len([p for p in media_root.rglob("*") if p.is_file() and not p.name.endswith(".thumb")]) == 3


def test_a_synced_media_message_whatsapp_no_longer_serves_gets_the_exports_file(acme_connection, tmp_path):
    conv = ConversationFactory(connection=acme_connection, chat_jid=CHAT)
    synced = MessageFactory(conversation=conv, external_id="SYNCED-IMG", type="image", body="",
                            sent_at=datetime(2020, 12, 31, 21, 46, 0, 200000, tzinfo=UTC))
    gone = MediaFile.objects.create(tenant=conv.tenant, message=synced, connection=acme_connection, kind="image",
                                    state="expired", error="404 from WhatsApp")
    path = export_zip(tmp_path, IOS.splitlines()[1] + "\n", {PHOTO: samples.jpeg()})
    with Attachments.of(path) as files:
        result = do_import_chat_export(acme_connection, CHAT, parse_chat_export(IOS.splitlines()[1] + "\n", tz=UTC),
                                       me="Me Support", attachments=files)
    assert (result.saved, result.matched_synced, result.media_attached) == (0, 1, 1)
    gone.refresh_from_db()
    assert gone.state == "fetched" and gone.error == "" and media.read_bytes(gone) == samples.jpeg()


def test_a_file_over_its_kinds_limit_is_a_failed_row_saying_so(acme_connection, tmp_path, settings):
    settings.MEDIA_MAX_BYTES = {**settings.MEDIA_MAX_BYTES, "image": 100}
    path = export_zip(tmp_path, ANDROID, {"IMG-20201231-WA0001.jpg": samples.jpeg()})
    with Attachments.of(path) as files:
        result = do_import_chat_export(acme_connection, CHAT, parse_chat_export(ANDROID, tz=UTC), me="Me Support",
                                       attachments=files)
    assert result.saved == 1 and result.media_attached == 0
    item = MediaFile.objects.for_tenant(acme_connection.tenant).get()
    assert item.state == "failed" and "over the image limit of 100" in item.error and not item.storage_name


def test_an_import_that_fails_leaves_no_stored_file(acme_connection, tmp_path, media_root, monkeypatch):
    from sync import chat_import

    def broken(conv):
        raise RuntimeError("disk full")

    monkeypatch.setattr(chat_import, "_update_window", broken)  # after the files were stored
    path = export_zip(tmp_path)
    with Attachments.of(path) as files, pytest.raises(RuntimeError):
        do_import_chat_export(acme_connection, CHAT, parse_chat_export(IOS, tz=UTC), me="Me Support",
                              attachments=files)
    assert not Message.objects.for_tenant(acme_connection.tenant).exists()
    assert not [p for p in media_root.rglob("*") if p.is_file()]


def test_the_conversation_pages_zip_upload_attaches_the_files(client, acme_connection, acme_owner, tmp_path):
    conv = ConversationFactory(connection=acme_connection, chat_jid=CHAT)
    client.force_login(acme_owner)
    upload = SimpleUploadedFile("WhatsApp Chat - Ana.zip", export_zip(tmp_path).read_bytes(), "application/zip")
    response = client.post(reverse("import_chat_export", args=["acme", conv.pk]),
                           {"file": upload, "me": "Me Support", "timezone": "UTC"})
    assert response.status_code == 200
    assert "3 media files from the export attached." in response.content.decode()
    assert MediaFile.objects.for_tenant(acme_connection.tenant).filter(state="fetched").count() == 3
