"""The phone's "Export chat" files: both platforms, several locales, imported twice, overlapping synced history."""

import zipfile
import zoneinfo
from datetime import datetime

import pytest
from django.core.management import CommandError, call_command

from inbox.formatting import message_preview
from inbox.models import Conversation, Message, MessageSearchEntry
from sync.chat_export import AmbiguousDates, ChatExportError, parse_chat_export, read_and_parse
from sync.chat_import import do_import_chat_export
from sync.models import SyncRun
from tests.factories import ConversationFactory, MessageFactory

SP = zoneinfo.ZoneInfo("America/Sao_Paulo")
UTC = zoneinfo.ZoneInfo("UTC")
LRM, NNBSP = "\u200e", "\u202f"

ANDROID_US = f"""12/31/20, 9:41{NNBSP}PM - Messages and calls are end-to-end encrypted. No one outside of this chat can read them.
12/31/20, 9:41{NNBSP}PM - Ana: Happy new year!
12/31/20, 9:42{NNBSP}PM - Me Support: Thanks, you too
and a second line
12/31/20, 11:05{NNBSP}PM - Ana: <Media omitted>
1/13/21, 12:00{NNBSP}AM - Ana: midnight: with a colon
1/13/21, 12:30{NNBSP}PM - Ana: IMG-20210113-WA0001.jpg (file attached)
"""
ANDROID_GB = """31/12/2020, 21:41 - Ana: Feliz ano novo!
31/12/2020, 21:42 - Me Support: Obrigado
01/01/2021, 09:00 - Ana added Bruno
"""
ANDROID_DE = """31.12.20, 21:41 - Ana: Frohes neues Jahr
01.01.21, 09:00 - Me Support: Danke
"""
IOS_GB = f"""[31/12/2020, 21:41:05] Ana: Happy new year!
[31/12/2020, 21:41:30] Me Support: Thanks
with two lines
{LRM}[31/12/2020, 21:45:00] Ana: {LRM}image omitted
{LRM}[31/12/2020, 21:46:00] Ana: {LRM}<attached: 00000012-PHOTO-2020-12-31-21-46-00.jpg>
[31/12/2020, 21:47:00] Ana: {LRM}Messages and calls are end-to-end encrypted.
"""
IOS_US = """[12/31/20, 9:41:05 PM] Ana: Happy new year!
[1/2/21, 10:00:00 a.m.] Me Support: morning
"""


def test_android_us_12_hour_month_first_with_system_multi_line_and_media():
    msgs = parse_chat_export(ANDROID_US, tz=SP)
    assert [(m.type, m.sender) for m in msgs] == [("system", ""), ("text", "Ana"), ("text", "Me Support"),
                                                  ("image", "Ana"), ("text", "Ana"), ("image", "Ana")]
    assert msgs[1].sent_at == datetime(2020, 12, 31, 21, 41, tzinfo=SP) and msgs[1].precision_seconds == 60
    assert msgs[2].text == "Thanks, you too\nand a second line"
    assert msgs[4].sent_at == datetime(2021, 1, 13, 0, 0, tzinfo=SP) and msgs[4].text == "midnight: with a colon"
    assert msgs[5].media_filename == "IMG-20210113-WA0001.jpg" and msgs[5].sent_at.hour == 12


def test_android_day_first_locales_and_system_lines():
    gb = parse_chat_export(ANDROID_GB, tz=UTC)
    assert gb[0].sent_at == datetime(2020, 12, 31, 21, 41, tzinfo=UTC)
    assert (gb[2].type, gb[2].text) == ("system", "Ana added Bruno")
    de = parse_chat_export(ANDROID_DE, tz=UTC)
    assert de[1].sent_at == datetime(2021, 1, 1, 9, 0, tzinfo=UTC) and de[1].sender == "Me Support"


def test_ios_bracketed_lines_with_seconds_marks_and_attachments():
    msgs = parse_chat_export(IOS_GB, tz=UTC)
    assert [(m.type, m.sender) for m in msgs] == [("text", "Ana"), ("text", "Me Support"), ("image", "Ana"),
                                                  ("image", "Ana"), ("system", "")]
    assert msgs[0].sent_at == datetime(2020, 12, 31, 21, 41, 5, tzinfo=UTC) and msgs[0].precision_seconds == 1
    assert msgs[1].text == "Thanks\nwith two lines"
    assert msgs[3].media_filename == "00000012-PHOTO-2020-12-31-21-46-00.jpg"
    assert msgs[4].text == "Messages and calls are end-to-end encrypted."
    us = parse_chat_export(IOS_US, tz=UTC)
    assert us[0].sent_at == datetime(2020, 12, 31, 21, 41, 5, tzinfo=UTC)
    assert us[1].sent_at == datetime(2021, 1, 2, 10, 0, tzinfo=UTC)  # month-first, from the 12/31 line


def test_ambiguous_dates_are_asked_for_and_garbage_is_refused():
    text = "01/02/21, 10:00 - Ana: hi\n03/04/21, 11:00 - Ana: again\n"
    with pytest.raises(AmbiguousDates, match="--date-order"):
        parse_chat_export(text, tz=UTC)
    assert parse_chat_export(text, tz=UTC, date_order="dmy")[0].sent_at == datetime(2021, 2, 1, 10, tzinfo=UTC)
    assert parse_chat_export(text, tz=UTC, date_order="mdy")[0].sent_at == datetime(2021, 1, 2, 10, tzinfo=UTC)
    with pytest.raises(ChatExportError, match="not a WhatsApp chat export"):
        parse_chat_export("hello\nworld\n", tz=UTC)


def test_a_zip_export_is_read_from_its_chat_file(tmp_path):
    path = tmp_path / "WhatsApp Chat - Ana.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("_chat.txt", "\ufeff" + IOS_GB)
        zf.writestr("00000012-PHOTO-2020-12-31-21-46-00.jpg", b"\xff\xd8")
    assert len(read_and_parse(path, tz=UTC)) == 5


CHAT = "5511987650001@s.whatsapp.net"


@pytest.mark.django_db
@pytest.mark.smoke
def test_imported_twice_and_overlapping_synced_history_never_duplicates(acme_connection):
    conv = ConversationFactory(connection=acme_connection, chat_jid=CHAT)
    # What the sync already stored: Ana's first message (to the second) and our reply, one second off.
    MessageFactory(conversation=conv, external_id="SYNCED1", body="Happy new year!",
                   sent_at=datetime(2020, 12, 31, 21, 41, 5, 300000, tzinfo=UTC))
    MessageFactory(conversation=conv, external_id="SYNCED2", direction="out", status="read",
                   body="Thanks\nwith two lines", sent_at=datetime(2020, 12, 31, 21, 41, 30, tzinfo=UTC))
    msgs = parse_chat_export(IOS_GB, tz=UTC)
    first = do_import_chat_export(acme_connection, CHAT, msgs, me="Me Support")
    assert (first.received, first.saved, first.matched_synced, first.already_imported) == (5, 3, 2, 0)
    assert first.conversation_id == conv.pk
    second = do_import_chat_export(acme_connection, CHAT, parse_chat_export(IOS_GB, tz=UTC), me="Me Support")
    assert (second.saved, second.matched_synced, second.already_imported) == (0, 2, 3)
    stored = Message.objects.for_tenant(acme_connection.tenant).filter(conversation=conv)
    assert stored.count() == 5
    assert set(stored.values_list("type", flat=True)) == {"text", "image", "system"}
    # The list row: the newest message, its preview made the one way every writer makes it.
    conv.refresh_from_db()
    newest = stored.order_by("-sent_at", "-pk").first()
    assert (conv.last_message_at, conv.last_message_preview) == (newest.sent_at, message_preview(newest.body, newest.type))
    assert conv.last_message_preview == "[system] Messages and calls are end-to-end encrypted."
    runs = SyncRun.objects.unscoped().filter(connection=acme_connection, kind="import")
    assert runs.count() == 2 and not runs.filter(discrepancy=True).exists()


@pytest.mark.django_db
def test_minute_precision_matches_within_the_minute_and_repeated_lines_count(acme_connection):
    conv = ConversationFactory(connection=acme_connection, chat_jid=CHAT)
    MessageFactory(conversation=conv, external_id="S1", body="ok", sent_at=datetime(2021, 3, 4, 10, 15, 42, tzinfo=UTC))
    text = "04/03/2021, 10:15 - Ana: ok\n04/03/2021, 10:15 - Ana: ok\n13/03/2021, 08:00 - Ana: later\n"
    result = do_import_chat_export(acme_connection, CHAT, parse_chat_export(text, tz=UTC), me="Me Support")
    assert (result.saved, result.matched_synced) == (2, 1)  # one "ok" was synced, the second one is new
    assert Message.objects.for_tenant(acme_connection.tenant).filter(conversation=conv, body="ok").count() == 2
    assert MessageSearchEntry.objects.for_tenant(acme_connection.tenant).filter(body="later").exists()
    conv.refresh_from_db()
    assert conv.last_message_preview == "later"


@pytest.mark.django_db
def test_the_command_creates_a_new_chat_and_reports(acme_connection, tmp_path, capsys):
    path = tmp_path / "chat.txt"
    path.write_text(ANDROID_GB, encoding="utf-8")
    call_command("import_chat_export", str(path), "--connection", str(acme_connection.pk), "--chat", CHAT,
                 "--me", "Me Support", "--timezone", "America/Sao_Paulo")
    assert '"saved": 3' in capsys.readouterr().out
    conv = Conversation.objects.for_tenant(acme_connection.tenant).get(chat_jid=CHAT)
    assert conv.contact.display_name == "Ana"
    reply = Message.objects.for_tenant(acme_connection.tenant).get(body="Obrigado")
    assert reply.direction == "out" and reply.sent_at == datetime(2020, 12, 31, 21, 42, tzinfo=SP)
    call_command("import_chat_export", str(path), "--connection", str(acme_connection.pk), "--chat", CHAT,
                 "--me", "Me Support", "--timezone", "America/Sao_Paulo")
    assert '"saved": 0' in capsys.readouterr().out
    ambiguous = tmp_path / "amb.txt"
    ambiguous.write_text("01/02/21, 10:00 - Ana: hi\n", encoding="utf-8")
    with pytest.raises(CommandError, match="--date-order"):
        call_command("import_chat_export", str(ambiguous), "--connection", str(acme_connection.pk), "--chat", CHAT)


@pytest.mark.django_db
def test_the_conversation_page_takes_an_upload_for_owners_and_admins_only(client, acme_connection, acme_owner, acme_agent,
                                                                         globex_owner):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    conv = ConversationFactory(connection=acme_connection, chat_jid=CHAT)
    url = reverse("import_chat_export", args=["acme", conv.pk])

    def upload(text, **fields):
        return client.post(url, {"file": SimpleUploadedFile("chat.txt", text.encode()), "me": "Me Support",
                                 "timezone": "UTC", **fields})

    client.force_login(acme_owner)
    page = client.get(reverse("conversation", args=["acme", conv.pk])).content.decode()
    assert "Import the phone&#x27;s chat export" in page or "Import the phone's chat export" in page
    response = upload(ANDROID_GB)
    assert response.status_code == 200
    assert "Imported 3 of 3 messages" in response.content.decode()
    assert "Imported 0 of 3 messages; 0 were already synced and 3 imported before" in upload(ANDROID_GB).content.decode()
    ambiguous = upload("01/02/21, 10:00 - Ana: hi\n")
    assert ambiguous.status_code == 422 and "choose the date order" in ambiguous.content.decode()
    assert upload("01/02/21, 10:00 - Ana: hi\n", date_order="mdy").status_code == 200
    assert upload("not a chat").status_code == 422

    client.force_login(acme_agent)
    assert "chat export" not in client.get(reverse("conversation", args=["acme", conv.pk])).content.decode()
    assert upload(ANDROID_GB).status_code == 403
    client.force_login(globex_owner)
    assert client.post(reverse("import_chat_export", args=["globex", conv.pk]),
                       {"file": SimpleUploadedFile("c.txt", ANDROID_GB.encode())}).status_code == 404
