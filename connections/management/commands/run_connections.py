"""python manage.py run_connections [--runner-id NAME] [--record FILE]: the session supervisor."""

import argparse

from django.core.management.base import BaseCommand

from connections.transport.neonize import ensure_store


class Command(BaseCommand):
    help = "Keep every leased WhatsApp connection's session alive (supervisor + session host children)."

    def add_arguments(self, parser):
        parser.add_argument("--runner-id", default="", help="a name for this runner (default host-pid)")
        parser.add_argument("--record", default="", help="also append every received event to this capture file")
        parser.add_argument("--max-connections", type=int, default=1000, help="how many connections to hold at most")
        parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)

    def handle(self, *args, runner_id, record, max_connections, child, **options):
        from inbox.events import publish_off_thread

        # The supervisor's loop and a child's command loop must never wait on Redis or on rendering: the
        # live updates of the actions they call are published on this process's publisher thread
        # (docs/live-updates.md). The runner's modules themselves never import the publisher.
        publish_off_thread()
        if child:
            from connections.child import run_child

            run_child(record)
            return
        from connections.runner import Runner

        ensure_store()
        Runner(runner_id=runner_id, record=record, max_connections=max_connections).run()
