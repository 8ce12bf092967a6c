"""What the database holds for a connection: ``manage.py sync_report --connection ID --json``."""

import json

from django.core.management.base import BaseCommand

from sync.selectors import sync_report

from ._common import get_connection


class Command(BaseCommand):
    help = "Counts of contacts, conversations, messages, journal states, skips and recent sync runs."

    def add_arguments(self, parser):
        parser.add_argument("--connection", required=True, help="Connection id")
        parser.add_argument("--json", action="store_true", help="one JSON object on stdout")

    def handle(self, *args, **opts):
        report = sync_report(get_connection(opts["connection"]))
        if opts["json"]:
            self.stdout.write(json.dumps(report))
            return
        j = report["journal"]
        self.stdout.write(
            f"connection {report['connection']}: {report['contacts']} contacts, {report['conversations']} conversations, "
            f"{report['messages']} messages ({report['deleted_messages']} deleted, {report['edited_messages']} edited)\n"
            f"journal: {j['pending']} pending, {j['processed']} processed, {j['failed']} failed, "
            f"{j['quarantined']} quarantined; skipped {report['skipped']}\n"
            f"search backlog: {report['search_backlog']} messages; orphaned messages: {report['orphaned_messages']}"
        )
        for run in report["runs"]:
            self.stdout.write(
                f"  run #{run['id']} {run['kind']} {run['sync_type']} {run['started_at']} -> {run['finished_at']}: "
                f"received {run['received']} = saved {run['saved']} + dup {run['duplicates']} + skipped "
                f"{sum(run['skipped'].values())} + failed {run['failed']}{'  DISCREPANCY' if run['discrepancy'] else ''}"
            )
