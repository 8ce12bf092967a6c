"""Helpers for the connections tests: runner processes with short timings, waiting on the database."""

import json
import tempfile

from django.db import close_old_connections

from config import heartbeats
from config.redis import redis_client
from connections.models import Connection, ConnectionEvent
from tests import procs
from tests.leftovers import scratch_dir

FAST = {
    "RUNNER_HEARTBEAT_SECONDS": 0.5,
    "RUNNER_LEASE_SECONDS": 3,
    "RUNNER_RECONCILE_SECONDS": 1,
    "RUNNER_BACKOFF_BASE_SECONDS": 0.2,
    "RUNNER_BACKOFF_CAP_SECONDS": 1,
    "OUTBOX_MAX_ATTEMPTS": 3,
    "LOG_LEVEL": "INFO",
}


def runner_env(**extra):
    env = dict(FAST, EVENT_SPOOL_DIR=tempfile.mkdtemp(prefix="spool-", dir=scratch_dir()))
    env.update(extra)
    return procs.process_env(**env)


def start_runner(name="r1", env=None, *extra_args):
    return procs.manage(f"runner-{name}", "run_connections", "--runner-id", name, *extra_args, env=env or runner_env())


def status_of(pk):
    close_old_connections()
    return Connection.objects.unscoped().values_list("status", flat=True).get(pk=pk)


def row(pk):
    close_old_connections()
    return Connection.objects.unscoped().get(pk=pk)


def wait_status(pk, status, timeout=10.0, runner=None):
    try:
        return procs.wait_for(lambda: status_of(pk) == status, timeout, 0.1, f"connection {pk} -> {status}")
    except AssertionError:
        if runner is not None:
            print(runner.output()[-6000:])
        raise


def wait_runner_let_go(runner_id, since, redis=None, timeout=10.0):
    """The positive marker that a runner woken from a freeze let its numbers go: a liveness mark it wrote
    after ``since`` (unix time) says it holds no session. A mark follows each reconcile in the same tick,
    so the runner has looked at the rows since waking. ``redis``: the client of the Redis the runner
    marks in (default: the suite's)."""

    def let_go():
        raw = (redis or redis_client()).hget(heartbeats.runners_key(), runner_id)
        mark = json.loads(raw) if raw else {}
        return mark.get("at", 0) > since and mark.get("sessions") == 0

    procs.wait_for(let_go, timeout, 0.05, f"runner {runner_id} marked alive after {since:.1f}, holding no session")


def event_kinds(pk):
    close_old_connections()
    return list(ConnectionEvent.objects.unscoped().filter(connection_id=pk).order_by("id").values_list("kind", flat=True))
