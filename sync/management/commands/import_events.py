"""Journal and process a capture file: ``manage.py import_events --connection ID FILE``."""

import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from sync.actions import do_import_capture

from ._common import get_connection


class Command(BaseCommand):
    help = "Journal every event of a capture file (JSON Lines) for a connection, then process the journal."

    def add_arguments(self, parser):
        parser.add_argument("--connection", required=True, help="Connection id")
        parser.add_argument("file", help="capture file (JSON Lines: event, payload base64, received_at)")
        parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
        parser.add_argument("--batch-size", type=int, default=50, help="journal rows per transaction")

    def handle(self, *args, **opts):
        conn = get_connection(opts["connection"])
        path = Path(opts["file"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        summary = do_import_capture(conn, path, on_progress=self._progress(), batch_size=opts["batch_size"])
        self._close_bar()
        if opts["json"]:
            self.stdout.write(json.dumps(summary))
        else:
            self.stdout.write(
                f"connection {summary['connection']}: {summary['lines']} events read, {summary['journaled']} journaled "
                f"({summary['already_journaled']} already in the journal), {summary['processed']} processed, "
                f"{summary['saved']} messages saved, {summary['duplicates']} duplicates, skipped {summary['skipped']}, "
                f"{summary['failed']} failed, run #{summary['run']}"
            )
        for line in summary["bad_lines"]:
            self.stderr.write(f"bad capture line: {line}")
        if summary["bad_lines"] or summary["failed"]:
            raise CommandError(f"{len(summary['bad_lines'])} bad lines, {summary['failed']} events failed "
                               "(kept in the journal; see sync_report / admin)", returncode=2)

    def _progress(self):
        self._bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            def on_progress(done, total):
                if self._bar is None:
                    self._bar = tqdm(total=total, unit="event", desc="journaling")
                self._bar.update(done - self._bar.n)
            return on_progress

        def plain(done, total):
            self.stderr.write(f"journaled {done}/{total} events")
        return plain

    def _close_bar(self):
        if self._bar is not None:
            self._bar.close()
