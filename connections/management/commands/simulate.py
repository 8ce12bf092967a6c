"""python manage.py simulate --connection ID (--text T [--from N] [--rate R --count C] | --media SAMPLE | --disconnect | ...)

A text is handed to the simulator's fake WhatsApp server (``queue_inbound``), which delivers it to the
number's session as soon as one is connected (``--media image|png|sticker|audio|video|document``: a
real file on the fake media server, which the runner then downloads), like WhatsApp holds messages for an offline device;
what it sends then travels the same path as a real message: runner -> journal -> worker. The other
commands reach the simulated session inside the runner over Redis (a nudge).
"""

from django.core.management.base import BaseCommand, CommandError

from connections.models import Connection
from connections.nudge import nudge
from connections.protocol import Nudge
from connections.transport.samples import SAMPLES
from connections.transport.simulator import inbound_specs, media_inbound_specs, queue_inbound


class Command(BaseCommand):
    help = "Drive the simulated WhatsApp peer of a simulator connection held by a running runner."

    def add_arguments(self, parser):
        parser.add_argument("--connection", type=int, required=True)
        parser.add_argument("--from", dest="sender", default="+5511999990001", help="the sender's phone number")
        parser.add_argument("--name", default="", help="the sender's push name")
        parser.add_argument("--text", default=None)
        parser.add_argument("--count", type=int, default=1)
        parser.add_argument("--rate", type=float, default=0.0, help="messages per second (with --count)")
        parser.add_argument("--batch", default="", help="message ids are SIM<batch><n> (default: random)")
        parser.add_argument("--disconnect", action="store_true", help="drop the session (the runner reconnects)")
        parser.add_argument("--fail-connects", type=int, default=None, help="fail the next N connect attempts")
        parser.add_argument("--fail-sends", type=int, default=None, help="fail the next N sends")
        parser.add_argument("--logged-out", action="store_true", help="act as if the phone unlinked the device")
        parser.add_argument("--media", choices=sorted(SAMPLES), default=None,
                            help="the customer sends a real sample file (the runner downloads it)")
        parser.add_argument("--caption", default="", help="the caption of --media")
        parser.add_argument("--fail-downloads", type=int, default=None, help="fail the next N media downloads")

    def handle(self, *args, **o):
        conn = Connection.objects.unscoped().filter(pk=o["connection"]).first()
        if conn is None:
            raise CommandError(f"no connection with id {o['connection']}")
        if conn.transport != Connection.Transport.SIMULATOR:
            raise CommandError(f"connection {conn.pk} uses the {conn.transport} transport; only simulator ones can be driven")
        if o["count"] < 1 or o["rate"] < 0:
            raise CommandError("--count must be >= 1 and --rate >= 0")
        if o["text"] is not None:
            queue_inbound(conn.pk, inbound_specs(o["sender"], o["text"], o["count"], o["rate"], name=o["name"],
                                                 batch=o["batch"]))
            heard = nudge(conn.pk, Nudge.SIMULATE, kind="kick")
            self.stdout.write(f"queued {o['count']} message(s) for connection {conn.pk} on the simulated WhatsApp server"
                              + ("" if heard else "; no runner is listening: delivered once the number connects"))
        if o["media"] is not None:
            queue_inbound(conn.pk, media_inbound_specs(o["sender"], o["media"], caption=o["caption"], name=o["name"],
                                                       batch=o["batch"]))
            heard = nudge(conn.pk, Nudge.SIMULATE, kind="kick")
            self.stdout.write(f"queued a {o['media']} from {o['sender']} for connection {conn.pk}"
                              + ("" if heard else "; no runner is listening: delivered once the number connects"))
        commands = []
        if o["fail_downloads"] is not None:
            commands.append({"kind": "fail_downloads", "count": o["fail_downloads"]})
        if o["fail_connects"] is not None:
            commands.append({"kind": "fail_connects", "count": o["fail_connects"]})
        if o["fail_sends"] is not None:
            commands.append({"kind": "fail_sends", "count": o["fail_sends"]})
        if o["disconnect"]:
            commands.append({"kind": "disconnect"})
        if o["logged_out"]:
            commands.append({"kind": "logged_out"})
        if not commands:
            if o["text"] is not None or o["media"] is not None:
                return
            raise CommandError("nothing to do: give --text, --media, --disconnect, --fail-connects, --fail-sends, "
                               "--fail-downloads or --logged-out")
        for command in commands:
            heard = nudge(conn.pk, Nudge.SIMULATE, **command)
            if not heard:
                raise CommandError("no runner is listening (start `python manage.py run_connections`)")
        self.stdout.write(f"sent {len(commands)} simulator command(s) to connection {conn.pk} ({heard} runner(s) heard)")
