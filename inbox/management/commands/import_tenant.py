"""``manage.py import_tenant PATH [--dry-run]``: an export file into this database (inbox/snapshot/load.py)."""

import json

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = ("Import a tenant export: checksums verified first, one transaction, rows that exist are left as they "
            "are (a second import changes nothing). Prints what was read and created per kind of row.")

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--dry-run", action="store_true", help="write everything, then roll back")
        parser.add_argument("--with-sessions", action="store_true",
                            help="restore the file's encrypted session keys into this install's whatsmeow store")
        parser.add_argument("--with-secrets", action="store_true",
                            help="open the file's encrypted webhook signing secrets (without them, webhook endpoints "
                                 "are imported disabled, with new secrets)")
        parser.add_argument("--passphrase-env", default="EXPORT_PASSPHRASE",
                            help="the variable holding the passphrase (never on the command line)")

    def handle(self, *args, path, dry_run=False, with_sessions=False, with_secrets=False,
               passphrase_env="EXPORT_PASSPHRASE", **options):
        import os

        from inbox.snapshot.archive import ArchiveError
        from inbox.snapshot.load import import_tenant
        from inbox.snapshot.sessions import SessionsNotRestored

        try:
            result = import_tenant(path, dry_run=dry_run, with_sessions=with_sessions, with_secrets=with_secrets,
                                   passphrase=os.environ.get(passphrase_env, ""))
        except SessionsNotRestored as exc:
            raise CommandError(f"the tenant's rows were imported, its session keys were not: {exc}") from exc
        except ArchiveError as exc:
            raise CommandError(f"{exc} (nothing was imported)") from exc
        self.stdout.write(json.dumps(result))
