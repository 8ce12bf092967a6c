"""Make the posters of stored videos that have none (stored while ffmpeg was missing, or imported from an
export), once ffmpeg is installed; print the counts. Safe to run again: what has a poster is not seen again.

    manage.py backfill_video_posters [--tenant SLUG] [--dry-run] [--json]

docs/media.md ("Video posters and voice notes").
"""

import json

from django.core.management.base import BaseCommand, CommandError

from inbox.media import FfmpegMissing, backfill_video_posters
from inbox.models import Tenant


class Command(BaseCommand):
    help = "Make the missing posters of stored videos (stored while ffmpeg was missing, or imported)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="only this workspace (its slug); default: every workspace")
        parser.add_argument("--dry-run", action="store_true", help="count the videos without a poster; change nothing")
        parser.add_argument("--json", dest="as_json", action="store_true", help="print the counts as one JSON object")

    def handle(self, *args, tenant=None, dry_run=False, as_json=False, **options):
        tenant_id = None
        if tenant:
            tenant_id = Tenant.objects.filter(slug=tenant).values_list("pk", flat=True).first()
            if tenant_id is None:
                raise CommandError(f"No workspace with the slug {tenant!r}.")
        try:
            report = backfill_video_posters(tenant_id, dry_run=dry_run)
        except FfmpegMissing as exc:
            raise CommandError(f"{exc}; nothing was changed.") from None
        if as_json:
            self.stdout.write(json.dumps(report.__dict__, sort_keys=True))
            return
        verb = "would make" if dry_run else "made"
        self.stdout.write(f"{report.videos} videos without a poster ({report.files} files): {verb} {report.made} "
                          f"posters, {report.linked} videos linked to a poster already stored, "
                          f"{report.failed} files ffmpeg could not read")
