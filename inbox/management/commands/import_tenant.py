"""``manage.py import_tenant PATH [--dry-run]``: an export file into this database (inbox/snapshot/load.py)."""

import json

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = ("Import a tenant export: checksums verified first, one transaction, rows that exist are left as they "
            "are (a second import changes nothing). Prints what was read and created per kind of row.")

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--dry-run", action="store_true", help="write everything, then roll back")

    def handle(self, *args, path, dry_run=False, **options):
        from inbox.snapshot.archive import ArchiveError
        from inbox.snapshot.load import import_tenant

        try:
            result = import_tenant(path, dry_run=dry_run)
        except ArchiveError as exc:
            raise CommandError(f"{exc} (nothing was imported)") from exc
        self.stdout.write(json.dumps(result))
