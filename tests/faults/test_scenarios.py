"""The product under faults: Redis, PostgreSQL and its own processes fail during a burst of messages.

Every scenario runs the real product (runner with its children, Celery worker, beat) against the test
database and a Redis of the test's own, lets the simulated WhatsApp server deliver a paced burst to
three numbers, breaks something in the middle, heals it and then counts:

* lost: messages the server delivered that are not stored (it removes one only after our callback
  returned, so anything it removed is our responsibility); duplicated: a message stored or journaled
  twice — both must be 0;
* never two hosts for one number: the simulated server counts a connect while another live process
  hosts the same number;
* the status is right within one lease after healing: connected, held by a live runner.

The simulated server keeps its state on the suite's Redis (SIMULATOR_REDIS_URL), not on the Redis the
product loses: WhatsApp's servers do not go down with ours.
"""

import os
import signal
import time
from importlib import import_module

import pytest
from django.apps import apps
from django.conf import settings
from django.db import close_old_connections
from django.db.models import Count
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from neonize.events import MessageEv

from config.processes import pid_alive
from connections.models import Connection, ConnectionEvent
from connections.transport.simulator import inbound_specs, overlaps, pending_inbound, queue_inbound
from inbox.models import Message
from sync.models import RawEvent
from tests import procs
from tests.connections.helpers import runner_env, start_runner, wait_runner_let_go
from tests.factories import ConnectionFactory, TenantFactory
from tests.faults.kit import fault_env

pytestmark = [pytest.mark.faults, pytest.mark.processes, pytest.mark.django_db(transaction=True)]
RATE = 10.0  # messages per second per number
NUMBERS = 3
LEASE = 3.0  # runner_env's RUNNER_LEASE_SECONDS


@pytest.fixture
def numbers():
    tenant = TenantFactory()
    return [ConnectionFactory(tenant=tenant, name=f"Fault {i}", jid=f"55119200{i:05d}:1@s.whatsapp.net")
            for i in range(NUMBERS)]


@pytest.fixture
def fast_beat():
    """Beat's schedules every 2 s, so the safety net and the supervision act within the test.

    The schedules are the migrations' rows: an earlier transactional test's flush removed them."""
    import_module("connections.migrations.0002_initial").create_schedules(apps, None)
    import_module("sync.migrations.0001_initial").create_schedules(apps, None)
    every, _ = IntervalSchedule.objects.get_or_create(every=2, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.filter(task__in=["sync.tasks.journal_safety_net_task",
                                          "connections.tasks.supervise_connections_task"]).update(interval=every)


def env_for(redis, *, db_proxy=None, base=None, **extra):
    """A product process: its Redis is the test's, the simulated WhatsApp server stays on the suite's."""
    return fault_env(base if base is not None else runner_env(), db_proxy=db_proxy, redis=redis,
                     SIMULATOR_REDIS_URL=settings.REDIS_URL, JOURNAL_SAFETY_NET_SECONDS=3, **extra)


class Product:
    """The processes of one scenario; everything is stopped at the end, and their logs printed on failure."""

    def __init__(self):
        self.procs: list[procs.Proc] = []

    def add(self, proc):
        self.procs.append(proc)
        return proc

    def runner(self, name, env):
        return self.add(start_runner(name, env))

    def worker(self, env):
        return self.add(procs.celery_worker(env, concurrency=2))

    def beat(self, env):
        return self.add(procs.celery_beat(env))

    def dump(self):
        """Warnings and errors of every process (the INFO lines of a burst would bury them)."""
        for p in self.procs:
            lines = [line for line in p.output().splitlines() if '"level": "INFO"' not in line]
            print(f"===== {p.name} =====\n" + "\n".join(line[:600] for line in lines[-60:]))

    def stop(self):
        for p in self.procs:
            p.signal(signal.SIGCONT)
            p.stop()


@pytest.fixture
def product(request):
    p = Product()
    yield p
    p.stop()
    report = getattr(request.node, "rep_call", None)
    if report is None or report.failed:
        p.dump()


def all_connected(conns, timeout=60, runners=None):
    """Every number connected, by one of ``runners`` if given (its own "connected" event, not a status
    left by the previous holder)."""
    def ok():
        close_old_connections()
        for c in Connection.objects.unscoped().filter(pk__in=[c.pk for c in conns]):
            if c.status != Connection.Status.CONNECTED:
                return False
            if runners is not None:
                last = ConnectionEvent.objects.unscoped().filter(connection=c, kind="connected").order_by("-id").first()
                if c.runner_id not in runners or last is None or last.runner_id not in runners:
                    return False
        return True

    procs.wait_for(ok, timeout, 0.2, "every number connected" + (f" by {sorted(runners)}" if runners else ""))


def burst(conns, tag, seconds):
    """The server accepts a paced burst for each number, starting in a second; returns the count each."""
    count = int(RATE * seconds)
    start = time.time() + 1.0
    for i, c in enumerate(conns):
        queue_inbound(c.pk, inbound_specs(f"+55119876500{i:02d}", f"fault {tag}", count, RATE, batch=f"{tag}{i}",
                                          start=start))
    return count


def stored(conn, tag, i):
    close_old_connections()
    return Message.objects.unscoped().filter(connection_id=conn.pk, external_id__startswith=f"SIM{tag}{i}").count()


def state_of(conns, tag):
    """What the books look like now, for a failure message."""
    close_old_connections()
    out = []
    for i, c in enumerate(conns):
        row = Connection.objects.unscoped().get(pk=c.pk)
        states = dict(RawEvent.objects.unscoped().filter(connection_id=c.pk).values_list("state").annotate(n=Count("id")))
        out.append(f"number {i}: stored {stored(c, tag, i)}, on the server {pending_inbound(c.pk)}, journal {states}, "
                   f"{row.status} by {row.runner_id or '-'}")
    return "; ".join(out)


def check_books(conns, tag, count, timeout=90):
    """0 lost, 0 duplicated, the server's inbox empty, never two hosts."""
    for i, c in enumerate(conns):
        try:
            procs.wait_for(lambda c=c, i=i: stored(c, tag, i) >= count and pending_inbound(c.pk) == 0, timeout, 0.5,
                           f"all {count} messages of number {i} stored")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {state_of(conns, tag)}") from None
        assert stored(c, tag, i) == count
        ids = [MessageEv.FromString(bytes(p)).Info.ID for p in
               RawEvent.objects.unscoped().filter(connection_id=c.pk, event_name="MessageEv").values_list("payload", flat=True)]
        ours = [x for x in ids if x.startswith(f"SIM{tag}{i}")]
        assert len(ours) == len(set(ours)) == count  # journaled once each
        assert overlaps(c.pk) == 0


def test_redis_stopped_for_two_seconds_during_a_burst(numbers, redis_server, fast_beat, product):
    env = env_for(redis_server)
    product.runner("redis-2", env)
    product.worker(env)
    product.beat(env)
    all_connected(numbers)
    count = burst(numbers, "RTWO", 8)
    time.sleep(3)
    with redis_server.outage(2):
        pass
    check_books(numbers, "RTWO", count)
    all_connected(numbers, LEASE * 2)


@pytest.mark.slow_faults
def test_redis_stopped_for_thirty_seconds_during_a_burst(numbers, redis_server, fast_beat, product):
    env = env_for(redis_server)
    product.runner("redis-30", env)
    product.worker(env)
    product.beat(env)
    all_connected(numbers)
    count = burst(numbers, "RTHIRTY", 40)
    time.sleep(4)
    with redis_server.outage(30):
        pass
    check_books(numbers, "RTHIRTY", count)
    all_connected(numbers, LEASE * 2)


@pytest.mark.slow_faults
def test_postgresql_refusing_connections_for_twenty_seconds(numbers, redis_server, db_proxy, fast_beat, product):
    env = env_for(redis_server, db_proxy=db_proxy)  # runner, worker and beat all lose the database
    runner = product.runner("pg-refused", env)
    product.worker(env)
    product.beat(env)
    all_connected(numbers)
    count = burst(numbers, "PGREF", 30)
    time.sleep(4)
    with db_proxy.refused():
        time.sleep(20)
    check_books(numbers, "PGREF", count)
    all_connected(numbers, LEASE * 3)
    assert runner.alive()


@pytest.mark.slow_faults
def test_postgresql_silently_partitioned_for_sixty_seconds_hands_the_numbers_over(numbers, redis_server, db_proxy,
                                                                                   fast_beat, product):
    cut_off = product.runner("pg-cut", env_for(redis_server, db_proxy=db_proxy))
    all_connected(numbers, runners={"pg-cut"})
    direct = env_for(redis_server)
    product.worker(direct)
    product.beat(direct)
    product.runner("pg-ok", direct)  # a second runner with a working database, idle while the first holds all
    count = burst(numbers, "PGCUT", 70)
    time.sleep(4)
    children = [int(p) for p in open(f"/proc/{cut_off.popen.pid}/task/{cut_off.popen.pid}/children").read().split()]
    with db_proxy.partitioned():
        # The cut-off runner's children leave before its leases end; the other runner takes the numbers.
        procs.wait_for(lambda: not any(pid_alive(p) for p in children), LEASE + 5, 0.1, "cut-off children gone")
        all_connected(numbers, 30, runners={"pg-ok"})
        time.sleep(45)
    check_books(numbers, "PGCUT", count)
    time.sleep(LEASE)  # the first runner is back: it must let go without writing
    all_connected(numbers, LEASE * 2, runners={"pg-ok"})
    assert cut_off.alive()


def children_of(proc):
    with open(f"/proc/{proc.popen.pid}/task/{proc.popen.pid}/children") as fh:
        return [int(p) for p in fh.read().split()]


def test_a_child_killed_mid_burst(numbers, redis_server, fast_beat, product):
    env = env_for(redis_server, RUNNER_SESSIONS_PER_CHILD=2)
    runner = product.runner("kill-child", env)
    product.worker(env)
    product.beat(env)  # as deployed: a process killed mid-enqueue is covered by the safety net
    all_connected(numbers)
    count = burst(numbers, "KCHILD", 8)
    time.sleep(3)
    os.kill(children_of(runner)[0], signal.SIGKILL)
    check_books(numbers, "KCHILD", count)
    all_connected(numbers, LEASE * 2)


def test_the_supervisor_killed_mid_burst_and_another_runner_takes_over(numbers, redis_server, fast_beat, product):
    env = env_for(redis_server)
    first = product.runner("kill-sup-1", env)
    product.worker(env)
    product.beat(env)  # as deployed: a process killed mid-enqueue is covered by the safety net
    all_connected(numbers, runners={"kill-sup-1"})
    count = burst(numbers, "KSUP", 10)
    time.sleep(3)
    first.kill()  # SIGKILL of the supervisor alone: its children die with it (PDEATHSIG)
    product.runner("kill-sup-2", env)
    check_books(numbers, "KSUP", count)
    all_connected(numbers, LEASE * 2, runners={"kill-sup-2"})


def test_a_worker_killed_mid_burst(numbers, redis_server, fast_beat, product):
    env = env_for(redis_server)
    product.runner("kill-worker", env)
    worker = product.worker(env)
    product.beat(env)
    all_connected(numbers)
    count = burst(numbers, "KWORK", 8)
    time.sleep(3)
    worker.signal(signal.SIGKILL)  # the whole worker: main process and its pool
    time.sleep(2)
    product.worker(env)
    check_books(numbers, "KWORK", count)


def test_a_child_frozen_mid_burst(numbers, redis_server, fast_beat, product):
    env = env_for(redis_server, RUNNER_CHILD_ANSWER_SECONDS=2)
    runner = product.runner("stop-child", env)
    product.worker(env)
    product.beat(env)  # as deployed: a process killed mid-enqueue is covered by the safety net
    all_connected(numbers)
    count = burst(numbers, "SCHILD", 10)
    time.sleep(3)
    frozen = children_of(runner)[0]
    os.kill(frozen, signal.SIGSTOP)
    procs.wait_for(lambda: not pid_alive(frozen), 15, 0.1, "the frozen child replaced")
    check_books(numbers, "SCHILD", count)
    all_connected(numbers, LEASE * 2)


def test_a_supervisor_frozen_mid_burst(numbers, redis_server, fast_beat, product):
    env = env_for(redis_server)
    first = product.runner("stop-sup-1", env)
    product.worker(env)
    product.beat(env)  # as deployed: a process killed mid-enqueue is covered by the safety net
    all_connected(numbers, runners={"stop-sup-1"})
    product.runner("stop-sup-2", env)
    count = burst(numbers, "SSUP", 12)
    time.sleep(3)
    first.popen.send_signal(signal.SIGSTOP)
    all_connected(numbers, 30, runners={"stop-sup-2"})
    woke_at = time.time()
    first.popen.send_signal(signal.SIGCONT)
    wait_runner_let_go("stop-sup-1", woke_at, redis_server.client())
    check_books(numbers, "SSUP", count)
    all_connected(numbers, LEASE * 2, runners={"stop-sup-2"})
    assert first.alive()
