"""``manage.py export_tenant --tenant SLUG --out PATH``: one tenant's consistent snapshot (inbox/snapshot)."""

import json

from django.core.management.base import BaseCommand, CommandError

from inbox.models import Tenant


class Command(BaseCommand):
    help = "Export a tenant (members, numbers, contacts, conversations, messages, revisions, alerts) to a file."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="the tenant's slug")
        parser.add_argument("--out", required=True, help="the file to write (a .zip; replaced when complete)")
        parser.add_argument("--with-sessions", action="store_true",
                            help="not supported yet: whatsmeow session keys are backed up with pg_dump (docs/backups.md)")

    def handle(self, *args, tenant, out, with_sessions=False, **options):
        from inbox.snapshot.export import export_tenant

        if with_sessions:
            raise CommandError("--with-sessions is not supported yet: back up the whatsmeow store database with "
                               "pg_dump (docs/backups.md)")
        t = Tenant.objects.filter(slug=tenant).first()
        if t is None:
            raise CommandError(f"no tenant with slug {tenant!r}")
        manifest = export_tenant(t, out)
        self.stdout.write(json.dumps({"path": out, "tenant": t.slug, "version": manifest["version"],
                                      "snapshot": manifest["snapshot"],
                                      "rows": {n: m["rows"] for n, m in manifest["files"].items()}}))
