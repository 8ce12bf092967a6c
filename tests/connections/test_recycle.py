"""Recycling a session host that made too many connect attempts (each neonize attempt leaks a store
connection): only the numbers that are not connected move; a connected number is never disturbed."""

import json
import os

import pytest

from connections.actions import do_set_desired_state
from connections.models import Connection, ConnectionEvent
from connections.nudge import nudge
from tests import procs
from tests.connections.helpers import row, runner_env, start_runner, wait_status
from tests.factories import ConnectionFactory, TenantFactory

pytestmark = [pytest.mark.faults, pytest.mark.processes, pytest.mark.django_db(transaction=True)]


def log_events(runner, name):
    out = []
    for line in runner.output().splitlines():
        if f'"{name}"' in line:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return [e for e in out if e.get("event") == name]


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_leaky_child_moves_only_its_failing_number_and_exits_once_empty():
    tenant = TenantFactory()
    steady = ConnectionFactory(tenant=tenant, jid="5511900000801:1@s.whatsapp.net")
    flaky = ConnectionFactory(tenant=tenant, jid="5511900000802:1@s.whatsapp.net")
    runner = start_runner("recycle", runner_env(RUNNER_CHILD_MAX_CONNECT_ATTEMPTS=4))
    try:
        wait_status(steady.pk, Connection.Status.CONNECTED, 20, runner)
        wait_status(flaky.pk, Connection.Status.CONNECTED, 20, runner)
        [first_child] = log_events(runner, "runner.child_started")
        steady_events = ConnectionEvent.objects.unscoped().filter(connection=steady).count()
        beat_before = row(steady.pk).last_heartbeat_at

        # The flaky number drops and keeps failing to connect: the child reaches its attempt budget.
        nudge(flaky.pk, "simulate", kind="fail_connects", count=50)
        nudge(flaky.pk, "simulate", kind="disconnect")
        procs.wait_for(lambda: log_events(runner, "runner.child_recycled"), 20, 0.1, "child recycled")
        [recycled] = log_events(runner, "runner.child_recycled")
        assert (recycled.get("moved"), recycled.get("staying")) == ([flaky.pk], [steady.pk])
        # In a fresh child (a fresh simulated socket) it connects again.
        wait_status(flaky.pk, Connection.Status.CONNECTED, 20, runner)
        assert len(log_events(runner, "runner.child_started")) == 2

        # The steady number never noticed: no event, still connected in the old child, heartbeats go on.
        procs.wait_for(lambda: row(steady.pk).last_heartbeat_at > beat_before, 5, 0.1, "steady heartbeat")
        assert ConnectionEvent.objects.unscoped().filter(connection=steady).count() == steady_events
        assert row(steady.pk).status == Connection.Status.CONNECTED
        assert pid_alive(first_child["pid"])

        # Once its last number leaves (paused here), the old child exits.
        do_set_desired_state(Connection.objects.unscoped().get(pk=steady.pk), Connection.DesiredState.STOPPED)
        procs.wait_for(lambda: log_events(runner, "runner.child_retired"), 10, 0.1, "old child retired")
        procs.wait_for(lambda: not pid_alive(first_child["pid"]), 5, 0.1, "old child gone")
        assert row(flaky.pk).status == Connection.Status.CONNECTED
        assert runner.alive()
    except Exception:
        print(runner.output()[-8000:])
        raise
    finally:
        runner.stop()
