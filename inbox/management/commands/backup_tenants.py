"""``manage.py backup_tenants [--tenant SLUG]``: what beat's daily backup does, now, in this process."""

import json

from django.core.management.base import BaseCommand, CommandError

from inbox.models import Tenant


class Command(BaseCommand):
    help = "Back up every tenant (or one) into BACKUP_DIR, keeping BACKUP_KEEP files each (docs/backups.md)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="only this tenant's slug")

    def handle(self, *args, tenant=None, **options):
        from inbox.snapshot.backups import backup_tenant

        tenants = Tenant.objects.order_by("slug")
        if tenant:
            tenants = tenants.filter(slug=tenant)
            if not tenants.exists():
                raise CommandError(f"no tenant with slug {tenant!r}")
        failed = 0
        for t in tenants:
            run = backup_tenant(t)
            failed += run.status != run.Status.OK
            self.stdout.write(json.dumps({"tenant": t.slug, "status": run.status, "path": run.path, "bytes": run.size,
                                          "error": run.error}))
        if failed:
            raise CommandError(f"{failed} backup(s) failed")
