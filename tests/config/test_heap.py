"""Long-running processes freeze their startup heap (config/heap.py), so the cyclic collector's full
collections no longer walk Django, the apps and neonize's protobuf classes (~150,000 objects): a runner
session host and the socket server each paused for ~100 ms per full collection in a live flood."""

import json
import subprocess
import sys

import pytest

from connections.models import Connection
from tests import procs
from tests.connections.helpers import start_runner, wait_status
from tests.factories import ConnectionFactory

STARTUP_OBJECTS = 50_000  # well under what Django and the apps alone leave alive


def test_the_socket_servers_application_freezes_the_heap_it_was_built_with():
    code = "import gc, config.asgi; print(gc.get_freeze_count())"
    out = subprocess.run([sys.executable, "-c", code], env=procs.process_env(), capture_output=True, text=True,
                         timeout=120, check=True, cwd=procs.ROOT)
    assert int(out.stdout.strip().splitlines()[-1]) > STARTUP_OBJECTS


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_a_session_host_freezes_its_startup_heap_before_it_takes_sessions():
    conn = ConnectionFactory(jid="5511900000901:1@s.whatsapp.net")
    runner = start_runner("heap")
    try:
        wait_status(conn.pk, Connection.Status.CONNECTED, 20, runner)
        ready = [json.loads(line) for line in runner.output().splitlines() if '"runner.child_ready"' in line]
        assert ready and ready[0]["frozen_objects"] > STARTUP_OBJECTS
    finally:
        runner.stop()
