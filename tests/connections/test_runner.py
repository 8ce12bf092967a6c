"""The runner as processes: real PostgreSQL, Redis, child session hosts and the simulator transport."""

import os
import signal

import pytest
from django.db import close_old_connections

from connections.models import Connection, ConnectionEvent
from connections.nudge import nudge
from sync.models import RawEvent
from tests import procs
from tests.connections.helpers import event_kinds, row, runner_env, start_runner, wait_status
from tests.factories import ConnectionFactory, TenantFactory

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]


def paired(tenant, n, **kw):
    return ConnectionFactory(tenant=tenant, name=f"Sim {n}", jid=f"55119000{n:05d}:1@s.whatsapp.net", **kw)


@pytest.mark.smoke
def test_runner_connects_journals_simulated_messages_and_reconnects_after_a_drop():
    tenant = TenantFactory()
    conn = paired(tenant, 1)
    runner = start_runner("r1")
    try:
        wait_status(conn.pk, Connection.Status.CONNECTED, 20, runner)
        held = row(conn.pk)
        assert held.runner_id == "r1" and held.lease_expires_at is not None and held.last_heartbeat_at is not None
        # The initial HistorySyncEv reached the journal.
        procs.wait_for(lambda: RawEvent.objects.unscoped().filter(connection=conn, event_name="HistorySyncEv").exists(), 5)

        # manage.py simulate -> Redis -> runner -> child -> simulator -> journal, within a second or so.
        out = procs.manage("simulate", "simulate", "--connection", str(conn.pk), "--from", "+5511999990001",
                           "--text", "hello from the test", env=runner_env())
        out.popen.wait(20)
        assert out.popen.returncode == 0, out.output()
        procs.wait_for(lambda: RawEvent.objects.unscoped().filter(connection=conn, event_name="MessageEv").exists(), 5,
                       message="MessageEv journaled")

        # A simulated drop: recorded, then reconnected with the backoff written down.
        nudge(conn.pk, "simulate", kind="disconnect")
        procs.wait_for(lambda: "disconnected" in event_kinds(conn.pk), 5, message="disconnect recorded")
        wait_status(conn.pk, Connection.Status.CONNECTED, 10, runner)
        kinds = event_kinds(conn.pk)
        assert kinds.index("reconnect_attempt") > kinds.index("disconnected")
        detail = ConnectionEvent.objects.unscoped().filter(connection=conn, kind="disconnected").latest("id").detail
        assert "retry in" in detail and "attempt 1" in detail
        assert row(conn.pk).reconnect_attempts == 0  # reset once connected again
    finally:
        runner.stop()
    # SIGTERM disconnects cleanly and releases the lease for another runner.
    released = row(conn.pk)
    assert released.runner_id == "" and released.lease_expires_at is None
    assert "lease_released" in event_kinds(conn.pk)


def test_killed_child_is_restarted_and_only_its_numbers_reconnect():
    tenant = TenantFactory()
    a, b = paired(tenant, 11), paired(tenant, 12)
    runner = start_runner("r-children", runner_env(RUNNER_SESSIONS_PER_CHILD=1))
    try:
        wait_status(a.pk, "connected", 20, runner)
        wait_status(b.pk, "connected", 20, runner)
        # Find the children: the runner's direct child processes.
        pids = [int(p) for p in open(f"/proc/{runner.popen.pid}/task/{runner.popen.pid}/children").read().split()]
        assert len(pids) == 2
        connected_events_b = event_kinds(b.pk).count("connected")
        # Which child hosts a? The one started first holds the lower connection id (claimed in id order).
        os.kill(min(pids), signal.SIGKILL)
        procs.wait_for(lambda: event_kinds(a.pk).count("connected") >= 2, 15, message="a reconnected")
        assert row(a.pk).status == "connected"
        last = ConnectionEvent.objects.unscoped().filter(connection=a, kind="disconnected").latest("id")
        assert "session host exited" in last.detail
        # b never noticed.
        assert event_kinds(b.pk).count("connected") == connected_events_b
        assert "disconnected" not in event_kinds(b.pk)
        assert runner.alive()
    finally:
        runner.stop()


@pytest.mark.faults
def test_runner_killed_by_sigkill_is_replaced_within_a_lease_and_children_die_with_it():
    tenant = TenantFactory()
    conns = [paired(tenant, 20 + i) for i in range(3)]
    first = start_runner("r-a")
    second = None
    try:
        for c in conns:
            wait_status(c.pk, "connected", 20, first)
        children = [int(p) for p in open(f"/proc/{first.popen.pid}/task/{first.popen.pid}/children").read().split()]
        first.kill()  # SIGKILL the supervisor alone
        # Its session hosts exit too (PR_SET_PDEATHSIG): a number is never connected from two places.
        procs.wait_for(lambda: not any(os.path.exists(f"/proc/{p}") and "Z" not in _state(p) for p in children), 5,
                       message="children gone")
        second = start_runner("r-b")
        # Within one lease period (3 s) plus start-up, r-b holds and connects them all.
        procs.wait_for(lambda: all(row(c.pk).runner_id == "r-b" and row(c.pk).status == "connected" for c in conns),
                       15, message="r-b holds everything")
        second.stop()
        # Restarting the runner reconnects everything it held.
        second = start_runner("r-b2")
        procs.wait_for(lambda: all(row(c.pk).runner_id == "r-b2" and row(c.pk).status == "connected" for c in conns),
                       15, message="restart reconnects all")
    finally:
        first.stop()
        if second is not None:
            second.stop()


def _state(pid):
    try:
        return open(f"/proc/{pid}/stat").read().split(")")[1].split()[0]
    except OSError:
        return "Z"


def test_two_runners_started_together_never_hold_the_same_connection():
    tenant = TenantFactory()
    conns = [paired(tenant, 40 + i) for i in range(6)]
    r1, r2 = start_runner("twin-1"), start_runner("twin-2")
    try:
        procs.wait_for(lambda: all(row(c.pk).status == "connected" for c in conns), 25, message="all connected")
        close_old_connections()
        acquired = ConnectionEvent.objects.unscoped().filter(connection__in=conns, kind="lease_acquired")
        holders = {}
        for ev in acquired:
            holders.setdefault(ev.connection_id, set()).add(ev.runner_id)
        # Each connection was acquired by exactly one runner, once, and is held by it now.
        assert all(len(h) == 1 for h in holders.values()), holders
        assert acquired.count() == len(conns)
        for c in conns:
            assert row(c.pk).runner_id in holders[c.pk]
    finally:
        r1.stop()
        r2.stop()


def test_simulated_message_reaches_the_inbox_through_runner_journal_and_worker():
    from inbox.models import Message

    tenant = TenantFactory()
    conn = paired(tenant, 60)
    runner, worker = start_runner("e2e"), procs.celery_worker(runner_env(), concurrency=1)
    try:
        wait_status(conn.pk, "connected", 20, runner)
        nudge(conn.pk, "simulate", kind="text", **{"from": "+5511999990077"}, text="end to end")
        try:
            found = procs.wait_for(
                lambda: close_old_connections() or Message.objects.unscoped().filter(connection=conn, body="end to end").first(),
                15, message="the message row")
        except AssertionError:
            print(worker.output()[-4000:])
            raise
        assert found.direction == Message.Direction.INBOUND
        assert found.conversation.chat_jid == "5511999990077@s.whatsapp.net"
    finally:
        worker.stop()
        runner.stop()


def test_an_archived_number_is_logged_out_and_no_longer_hosted_even_when_restored():
    from connections.actions import do_archive_connection
    from inbox.deletion import check_restore_connection

    tenant = TenantFactory()
    conn, other = paired(tenant, 7), paired(tenant, 8)
    runner = start_runner("r1")
    try:
        wait_status(conn.pk, Connection.Status.CONNECTED, 20, runner)
        wait_status(other.pk, Connection.Status.CONNECTED, 20, runner)
        do_archive_connection(row(conn.pk))  # what the admin's and the numbers page's delete do
        wait_status(conn.pk, Connection.Status.LOGGED_OUT, 10, runner)
        procs.wait_for(lambda: row(conn.pk).runner_id == "", 5, message="the archived number's lease released")
        assert row(conn.pk).jid is None and "logged_out" in event_kinds(conn.pk)
        check_restore_connection(row(conn.pk))
        close_old_connections()
        runner_sees = row(conn.pk)
        assert runner_sees.archived_at is None and runner_sees.desired_state == "logged_out"
        # Restored, it waits to be paired again: the runner does not claim it meanwhile. The marker that
        # a reconcile ran after the restore: a number added after it is claimed (one claim takes every
        # claimable row, so that claim would have taken the restored one too).
        marker = paired(tenant, 9)
        nudge(conn.pk, "reconcile")
        procs.wait_for(lambda: row(marker.pk).runner_id == "r1", 10, 0.05, "a number added after the restore claimed")
        assert row(conn.pk).runner_id == "" and row(conn.pk).status == Connection.Status.LOGGED_OUT
        assert row(other.pk).status == Connection.Status.CONNECTED  # the other number never noticed
    finally:
        runner.stop()
