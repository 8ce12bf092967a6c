"""``manage.py watch_platform [--once] [--interval SECONDS]``: the platform watchdog (inbox/watchdog.py)."""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections


class Command(BaseCommand):
    help = "Raise and resolve alerts: numbers down for long, failing journal rows, dead Redis/workers/beat/runners."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="one round, then exit (cron, tests)")
        parser.add_argument("--interval", type=float, default=None,
                            help="seconds between rounds (default WATCHDOG_INTERVAL_SECONDS)")

    def handle(self, *args, once=False, interval=None, **options):
        from inbox.watchdog import watch_once

        interval = settings.WATCHDOG_INTERVAL_SECONDS if interval is None else interval
        if interval <= 0:
            raise CommandError("--interval must be a positive number of seconds")
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        while True:
            watch_once()
            if once or stop.wait(interval):
                return
            close_old_connections()  # between rounds: a connection the database dropped is replaced
