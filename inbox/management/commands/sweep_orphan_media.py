"""Find stored media files that no media row names (a tenant deleted by cascade, a crash between storing
a file and committing its row) and remove those older than the grace period; print the counts.

    manage.py sweep_orphan_media [--grace-hours H] [--dry-run] [--json]

Beat runs the same sweep daily (inbox.tasks.sweep_orphan_media_task). docs/media.md.
"""

import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inbox.media import sweep_orphan_files


class Command(BaseCommand):
    help = "Remove stored media files that no media row names, once older than the grace period."

    def add_arguments(self, parser):
        parser.add_argument("--grace-hours", type=float, default=None,
                            help=f"keep orphans younger than this (default {settings.MEDIA_ORPHAN_GRACE_SECONDS / 3600:g} h, "
                                 "MEDIA_ORPHAN_GRACE_SECONDS)")
        parser.add_argument("--dry-run", action="store_true", help="count what would be removed; remove nothing")
        parser.add_argument("--json", dest="as_json", action="store_true", help="print the counts as one JSON object")

    def handle(self, *args, grace_hours=None, dry_run=False, as_json=False, **options):
        if grace_hours is not None and grace_hours < 0:
            raise CommandError("--grace-hours cannot be negative.")
        grace = None if grace_hours is None else int(grace_hours * 3600)
        report = sweep_orphan_files(grace, dry_run=dry_run)
        if as_json:
            self.stdout.write(json.dumps(report.__dict__, sort_keys=True))
            return
        verb = "would remove" if dry_run else "removed"
        self.stdout.write(f"scanned {report.scanned} files: {verb} {report.removed} orphans "
                          f"({report.removed_bytes} bytes, {report.tenants_gone} deleted tenants), "
                          f"{report.in_grace} orphans kept in their grace period")
