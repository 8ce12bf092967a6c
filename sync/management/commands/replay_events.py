"""Re-run a range of a connection's journal: ``manage.py replay_events --connection ID [--since ISO]``."""

import json
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from sync.actions import do_replay

from ._common import get_connection


def _when(value):
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"not an ISO 8601 date/time: {value!r}")
    return dt if timezone.is_aware(dt) else timezone.make_aware(dt, UTC)


class Command(BaseCommand):
    help = "Put journal rows back to pending and process them again (idempotent: nothing is duplicated)."

    def add_arguments(self, parser):
        parser.add_argument("--connection", required=True, help="Connection id")
        parser.add_argument("--since", type=_when, help="only rows received at or after this time (ISO 8601)")
        parser.add_argument("--until", type=_when, help="only rows received before this time (ISO 8601)")
        parser.add_argument("--failed-only", action="store_true", help="only failed and quarantined rows")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        conn = get_connection(opts["connection"])
        summary = do_replay(conn, since=opts["since"], until=opts["until"], failed_only=opts["failed_only"])
        if opts["json"]:
            self.stdout.write(json.dumps(summary))
        else:
            self.stdout.write(
                f"connection {conn.pk}: {summary['requeued']} rows requeued, {summary['processed']} processed, "
                f"{summary['saved']} new messages, {summary['duplicates']} duplicates, {summary['failed']} failed, "
                f"run #{summary['run']}"
            )
