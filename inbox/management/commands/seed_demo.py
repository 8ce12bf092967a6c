from django.core.management.base import BaseCommand

from inbox.demo import DEMO_PASSWORD, do_seed_demo


class Command(BaseCommand):
    help = "Create the demo tenants, users, simulator numbers and conversations (idempotent)."

    def handle(self, *args, **options):
        do_seed_demo()
        self.stdout.write(
            f"demo data ready: tenants acme, globex; users acme-admin, acme-agent, globex-admin, admin "
            f"(password {DEMO_PASSWORD})"
        )
