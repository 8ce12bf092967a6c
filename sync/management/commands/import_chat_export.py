"""``manage.py import_chat_export --connection ID --chat JID --me NAME FILE``: a phone's "Export chat" file
(.txt or .zip, Android or iOS) into one conversation (sync/chat_export.py, sync/chat_import.py)."""

import json
import zoneinfo

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from connections.models import Connection


class Command(BaseCommand):
    help = ("Import a WhatsApp chat export into the conversation of --chat on --connection; messages already "
            "synced or imported before are not added again.")

    def add_arguments(self, parser):
        parser.add_argument("path", help="the exported .txt, or the .zip with it")
        parser.add_argument("--connection", type=int, required=True, help="the number's id")
        parser.add_argument("--chat", required=True, help="the chat's JID (5511987654321@s.whatsapp.net, ...@g.us)")
        parser.add_argument("--me", default="", help="the name the exporting phone's owner appears under in the file "
                                                     "(their lines become outbound); default: the number's push name")
        parser.add_argument("--timezone", default=None, help="the phone's time zone (default TIME_ZONE)")
        parser.add_argument("--date-order", choices=["dmy", "mdy", "ymd"], default=None,
                            help="only when every date in the file reads both ways")
        parser.add_argument("--contact-name", default="", help="the contact's name if the chat is new here")

    def handle(self, *args, path, connection, chat, me="", timezone=None, date_order=None, contact_name="", **options):
        from sync.chat_export import Attachments, ChatExportError, read_and_parse
        from sync.chat_import import do_import_chat_export

        conn = Connection.objects.unscoped().filter(pk=connection).first()
        if conn is None:
            raise CommandError(f"no number with id {connection}")
        if "@" not in chat:
            raise CommandError(f"--chat must be a JID (…@s.whatsapp.net, …@g.us), not {chat!r}")
        try:
            tz = zoneinfo.ZoneInfo(timezone or settings.TIME_ZONE)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise CommandError(f"unknown time zone {timezone!r}") from exc
        try:
            messages = read_and_parse(path, tz=tz, date_order=date_order)
            attachments = Attachments.of(path)
        except (ChatExportError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        with attachments:
            result = do_import_chat_export(conn, chat, messages, me=me or conn.push_name, contact_name=contact_name,
                                           attachments=attachments)
        self.stdout.write(json.dumps(result.as_dict()))
