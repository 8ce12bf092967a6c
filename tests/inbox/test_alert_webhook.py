"""The tenant's alert webhook, sent by a real Celery worker to a real local HTTP receiver: a failing
receiver is retried, the caller never waits for it, and the resolution is sent too."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from inbox import alerts
from tests import procs
from tests.factories import TenantFactory

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]


class Receiver:
    """Answers 500 to the first ``fail_first`` requests, then 204; keeps every JSON body."""

    def __init__(self, fail_first: int = 1, delay: float = 0.0):
        self.bodies, self.answers = [], []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                time.sleep(delay)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = 500 if len(receiver.bodies) < fail_first else 204
                receiver.bodies.append(body)
                receiver.answers.append(status)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_webhook_is_retried_by_the_worker_until_the_receiver_accepts(settings):
    receiver = Receiver(fail_first=1, delay=0.5)
    worker = procs.celery_worker(procs.process_env(ALERT_WEBHOOK_RETRY_SECONDS=0.2, OUTBOUND_ALLOW_PRIVATE_ADDRESSES=True))
    try:
        tenant = TenantFactory(alert_webhook_url=receiver.url)
        started = time.monotonic()
        alert, created = alerts.do_raise_alert("connection:77:down", kind="number_down", message="Sales: banned",
                                               tenant_id=tenant.pk)
        assert created and time.monotonic() - started < 0.5  # queued, not sent by the caller
        procs.wait_for(lambda: receiver.answers == [500, 204], 30, 0.1, "a failed POST, then an accepted retry")
        assert receiver.bodies[1] == receiver.bodies[0]
        assert receiver.bodies[1]["event"] == "alert.raised"
        assert receiver.bodies[1]["alert"]["cause"] == "connection:77:down"
        assert receiver.bodies[1]["alert"]["tenant_id"] == tenant.pk

        alerts.do_raise_alert("connection:77:down", kind="number_down", message="still", tenant_id=tenant.pk)
        alerts.do_resolve_alert("connection:77:down")
        procs.wait_for(lambda: len(receiver.bodies) == 3, 15, 0.1, "the resolution")
        assert receiver.bodies[2]["event"] == "alert.resolved" and receiver.bodies[2]["alert"]["resolved_at"]
    except BaseException:
        print(worker.output()[-4000:])
        raise
    finally:
        worker.stop()
        receiver.close()
