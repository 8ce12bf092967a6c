"""Liveness of the runner with real processes: frozen children and supervisors, connects that hang,
pairing across a restart, the slow retry, stale statuses, and a child whose journal thread died.

Every test checks the two promises that matter: no number is ever hosted by two processes at once (the
simulated WhatsApp server counts overlaps), and every message the server delivered is journaled once.
"""

import os
import signal
import time

import pytest
from django.db import close_old_connections
from django.utils import timezone
from neonize.events import MessageEv

from config.processes import pid_alive
from connections.actions import claim_connections
from connections.models import Connection, ConnectionEvent
from connections.nudge import nudge
from connections.runner import Held, Runner
from connections.tasks import retry_failed_connections_task
from connections.transport.simulator import inbound_specs, overlaps, queue_inbound
from sync.models import RawEvent
from tests import procs
from tests.connections.helpers import event_kinds, row, runner_env, start_runner, wait_runner_let_go, wait_status
from tests.factories import ConnectionFactory, TenantFactory

pytestmark = [pytest.mark.faults, pytest.mark.processes, pytest.mark.django_db(transaction=True)]
CUSTOMER = "+5511999990042"


def paired(tenant, n, **kw):
    return ConnectionFactory(tenant=tenant, name=f"Live {n}", jid=f"55119100{n:05d}:1@s.whatsapp.net", **kw)


def children_of(proc) -> list[int]:
    with open(f"/proc/{proc.popen.pid}/task/{proc.popen.pid}/children") as fh:
        return [int(p) for p in fh.read().split()]


def journaled_ids(connection_id, prefix):
    close_old_connections()
    ids = [MessageEv.FromString(bytes(p)).Info.ID for p in
           RawEvent.objects.unscoped().filter(connection_id=connection_id, event_name="MessageEv")
           .values_list("payload", flat=True)]
    return [i for i in ids if i.startswith(prefix)]


def wait_all_journaled(connection_id, prefix, count, timeout=30):
    procs.wait_for(lambda: len(set(journaled_ids(connection_id, prefix))) >= count, timeout, 0.2,
                   f"{count} messages {prefix}* journaled")
    ids = journaled_ids(connection_id, prefix)
    assert len(ids) == len(set(ids)) == count  # none lost, none twice


def test_a_frozen_child_is_killed_and_its_number_moves_without_two_hosts():
    conn = paired(TenantFactory(), 1)
    runner = start_runner("freeze", runner_env(RUNNER_CHILD_ANSWER_SECONDS=2))
    try:
        wait_status(conn.pk, Connection.Status.CONNECTED, 40, runner)
        [child] = children_of(runner)
        queue_inbound(conn.pk, inbound_specs(CUSTOMER, "during the freeze", 30, rate=10, batch="FRZ"))
        procs.wait_for(lambda: journaled_ids(conn.pk, "SIMFRZ"), 10, 0.05, "the burst under way")  # freeze mid-burst
        os.kill(child, signal.SIGSTOP)
        procs.wait_for(lambda: not pid_alive(child), 10, 0.1, "frozen child killed")
        procs.wait_for(lambda: event_kinds(conn.pk).count("connected") >= 2, 15, 0.1, "reconnected in a new child")
        detail = ConnectionEvent.objects.unscoped().filter(connection=conn, kind="disconnected").latest("id").detail
        assert "did not answer heartbeats" in detail
        wait_all_journaled(conn.pk, "SIMFRZ", 30)
        assert overlaps(conn.pk) == 0
        assert row(conn.pk).status == Connection.Status.CONNECTED and row(conn.pk).runner_id == "freeze"
    except Exception:
        print(runner.output()[-6000:])
        raise
    finally:
        runner.stop()


def test_a_frozen_supervisors_children_leave_before_its_lease_ends_and_another_runner_takes_over():
    conn = paired(TenantFactory(), 2)
    first = start_runner("sleepy")
    second = None
    try:
        wait_status(conn.pk, Connection.Status.CONNECTED, 40, first)
        [child] = children_of(first)
        queue_inbound(conn.pk, inbound_specs(CUSTOMER, "while frozen", 40, rate=10, batch="SUP"))
        procs.wait_for(lambda: journaled_ids(conn.pk, "SIMSUP"), 10, 0.05, "the burst under way")  # freeze mid-burst
        first.popen.send_signal(signal.SIGSTOP)
        frozen_at = time.monotonic()
        # The child stops hosting before the lease runs out (RUNNER_LEASE_SECONDS = 3 here).
        procs.wait_for(lambda: not pid_alive(child), 5, 0.05, "child exits on its own")
        assert time.monotonic() - frozen_at < 3.0
        second = start_runner("awake")
        procs.wait_for(lambda: ConnectionEvent.objects.unscoped().filter(connection=conn, kind="connected",
                                                                         runner_id="awake").exists(),
                       40, 0.1, "connected by the second runner")
        assert "runner_lost" in event_kinds(conn.pk)
        woke_at = time.time()
        first.popen.send_signal(signal.SIGCONT)  # the first one wakes up: it must let go quietly
        wait_runner_let_go("sleepy", woke_at)
        assert row(conn.pk).runner_id == "awake" and row(conn.pk).status == Connection.Status.CONNECTED
        wait_all_journaled(conn.pk, "SIMSUP", 40)
        assert overlaps(conn.pk) == 0
        assert first.alive()
    except Exception:
        print(first.output()[-5000:])
        if second is not None:
            print(second.output()[-5000:])
        raise
    finally:
        first.popen.send_signal(signal.SIGCONT)
        first.stop()
        if second is not None:
            second.stop()


def test_a_connect_that_hangs_times_out_and_is_retried():
    conn = paired(TenantFactory(), 3)
    runner = start_runner("hang", runner_env(RUNNER_CONNECT_TIMEOUT_SECONDS=2))
    try:
        wait_status(conn.pk, Connection.Status.CONNECTED, 40, runner)
        nudge(conn.pk, "simulate", kind="hang_connects", count=1)
        nudge(conn.pk, "simulate", kind="disconnect")
        procs.wait_for(lambda: ConnectionEvent.objects.unscoped().filter(connection=conn,
                                                                         detail__contains="connect timed out").exists(),
                       15, 0.1, "the hung connect timed out")
        procs.wait_for(lambda: event_kinds(conn.pk).count("connected") >= 2, 15, 0.1, "connected again")
    except Exception:
        print(runner.output()[-6000:])
        raise
    finally:
        runner.stop()


def test_pairing_resumes_after_a_clean_runner_restart():
    conn = ConnectionFactory(tenant=TenantFactory(), status=Connection.Status.PAIRING)  # not paired yet
    env = runner_env(SIMULATOR_QR_SECONDS=120)  # nobody scans: it stays at the QR stage
    first = start_runner("pair-1", env)
    try:
        procs.wait_for(lambda: row(conn.pk).pairing_code, 20, 0.1, "a QR code shown")
        old_code = row(conn.pk).pairing_code
    finally:
        first.stop()
    stopped = row(conn.pk)
    assert stopped.status == Connection.Status.PAIRING and stopped.runner_id == ""
    second = start_runner("pair-2", env)
    try:
        procs.wait_for(lambda: row(conn.pk).runner_id == "pair-2" and row(conn.pk).pairing_code not in ("", old_code),
                       20, 0.1, "a fresh QR code from the next runner")
    finally:
        second.stop()


def test_numbers_that_gave_up_are_retried_by_a_runner_paired_or_not():
    tenant = TenantFactory()
    # What a runner leaves behind after the last attempt: failed, lease released, the slow retry due.
    gave_up = dict(status=Connection.Status.FAILED, reconnect_attempts=30, next_retry_at=timezone.now())
    paired_one = paired(tenant, 4, **gave_up)
    unpaired = ConnectionFactory(tenant=tenant, **gave_up)
    marker = paired(tenant, 7)  # claimable: once it is claimed, that claim saw (and left) the failed rows
    runner = start_runner("slow")
    try:
        procs.wait_for(lambda: row(marker.pk).runner_id == "slow", 20, 0.05, "the runner's first claim")
        assert row(paired_one.pk).runner_id == ""  # runners leave failed rows to the slow retry ...
        assert sorted(retry_failed_connections_task()) == sorted([paired_one.pk, unpaired.pk])  # ... which beat runs
        wait_status(paired_one.pk, Connection.Status.CONNECTED, 40, runner)
        wait_status(unpaired.pk, Connection.Status.CONNECTED, 40, runner)  # shown a QR, paired, connected
        for c in (paired_one, unpaired):
            kinds = event_kinds(c.pk)
            assert kinds[0] == "reconnect_attempt" and "lease_acquired" in kinds[1:]
            assert row(c.pk).reconnect_attempts == 0
    except Exception:
        print(runner.output()[-6000:])
        raise
    finally:
        runner.stop()


def test_a_stale_status_is_corrected_by_the_holder_of_a_live_session():
    conn = paired(TenantFactory(), 5)
    runner = start_runner("correct")
    try:
        wait_status(conn.pk, Connection.Status.CONNECTED, 40, runner)
        Connection.objects.unscoped().filter(pk=conn.pk).update(status=Connection.Status.DISCONNECTED)  # what beat writes
        wait_status(conn.pk, Connection.Status.CONNECTED, 10, runner)
        assert ConnectionEvent.objects.unscoped().filter(connection=conn, detail__startswith="status corrected").exists()
    finally:
        runner.stop()


def test_a_child_reporting_a_dead_journal_thread_is_killed_and_its_sessions_rescheduled(settings):
    settings.RUNNER_LEASE_SECONDS = 30
    conn = paired(TenantFactory(), 6)
    supervisor = Runner(runner_id="judge")
    [claimed] = claim_connections("judge", 1)
    child = supervisor.spawn_child()
    try:
        held = supervisor.held[conn.pk] = Held(conn.pk, "simulator", conn.jid, "", child=child, state="connected",
                                                lease_until=claimed.lease_expires_at.timestamp())
        child.sessions.add(conn.pk)
        child.ready = True
        supervisor.on_child_message(child, {"type": "heartbeat", "seq": 1, "alive": [conn.pk], "attempts": 0,
                                            "busy": 0.0, "journal": {"alive": False, "busy": 0.0}})
        assert child.popen.poll() is not None and child.index not in supervisor.children
        assert held.state == "waiting" and held.child is None
        last = ConnectionEvent.objects.unscoped().filter(connection=conn, kind="disconnected").latest("id")
        assert "journal thread died" in last.detail
        # Stuck is judged the same way.
        other = supervisor.spawn_child()
        other.ready = True
        supervisor.on_child_message(other, {"type": "heartbeat", "seq": 2, "alive": [], "attempts": 0,
                                            "busy": settings.RUNNER_CHILD_STUCK_SECONDS + 1, "busy_op": "start",
                                            "journal": {"alive": True, "busy": 0.0}})
        assert other.popen.poll() is not None
    finally:
        for c in list(supervisor.children.values()):
            c.popen.kill()
