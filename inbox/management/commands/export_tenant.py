"""``manage.py export_tenant --tenant SLUG --out PATH``: one tenant's consistent snapshot (inbox/snapshot)."""

import json

from django.core.management.base import BaseCommand, CommandError

from inbox.models import Tenant


class Command(BaseCommand):
    help = ("Export a tenant (members, numbers, contacts, conversations, messages, revisions, alerts, media files, "
            "labels, notes, canned responses, snoozes, API tokens, webhook endpoints) to a file.")

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="the tenant's slug")
        parser.add_argument("--out", required=True, help="the file to write (a .zip; replaced when complete)")
        parser.add_argument("--with-sessions", action="store_true",
                            help="the paired numbers' whatsmeow session keys too, encrypted with the passphrase in "
                                 "the environment variable named by --passphrase-env")
        parser.add_argument("--with-secrets", action="store_true",
                            help="the webhook endpoints' signing secrets too, encrypted with the passphrase (without "
                                 "them, an import makes new secrets and leaves the endpoints disabled)")
        parser.add_argument("--passphrase-env", default="EXPORT_PASSPHRASE",
                            help="the variable holding the passphrase (never on the command line, where ps shows it)")
        parser.add_argument("--without-media", action="store_true",
                            help="the media rows (references, checksums) without the stored files")

    def handle(self, *args, tenant, out, with_sessions=False, with_secrets=False, passphrase_env="EXPORT_PASSPHRASE",
               without_media=False, **options):
        import os

        from inbox.snapshot.archive import ArchiveError
        from inbox.snapshot.export import export_tenant

        passphrase = os.environ.get(passphrase_env, "")
        for flag, asked in (("--with-sessions", with_sessions), ("--with-secrets", with_secrets)):
            if asked and len(passphrase) < 12:
                raise CommandError(f"{flag} needs a passphrase of at least 12 characters in ${passphrase_env}")
        t = Tenant.objects.filter(slug=tenant).first()
        if t is None:
            raise CommandError(f"no tenant with slug {tenant!r}")
        try:
            manifest = export_tenant(t, out, with_sessions=with_sessions, passphrase=passphrase,
                                     with_media=not without_media, with_secrets=with_secrets)
        except ArchiveError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps({"path": out, "tenant": t.slug, "version": manifest["version"],
                                      "snapshot": manifest["snapshot"], "sessions": manifest["sessions"],
                                      "secrets": manifest["secrets"],
                                      "media": manifest["media"], "media_missing": manifest["media_missing"],
                                      "media_files": sum(n.startswith("media/") for n in manifest["files"]),
                                      "rows": {n: m["rows"] for n, m in manifest["files"].items() if "rows" in m}}))
