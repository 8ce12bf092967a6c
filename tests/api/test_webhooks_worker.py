"""Webhooks through a real Celery worker to a real local HTTP receiver: a burst of events across several
conversations, a receiver that answers 500 at first, and every event arrives once accepted, signed, and
in order per conversation; the writer never waits for the receiver."""

import os
import sys
import time

import pytest

from api import webhooks
from api.models import WebhookDelivery
from inbox import actions
from tests import procs
from tests.api.receiver import Receiver
from tests.factories import ConversationFactory

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("batch_size", [1, 4])
def test_a_real_worker_delivers_signed_in_order_and_retries_500s(acme, acme_connection, settings, batch_size):
    """One event per request, and batches of up to four; the deliveries are spread over the partitions."""
    settings.OUTBOUND_ALLOW_PRIVATE_ADDRESSES = True  # the receiver is on 127.0.0.1
    conversations = [ConversationFactory(connection=acme_connection) for _ in range(3)]
    receiver = Receiver(lambda n, body: 500 if n < 3 else 204)  # the first three requests fail
    worker = procs.celery_worker(procs.process_env(OUTBOUND_ALLOW_PRIVATE_ADDRESSES=True,
                                                   WEBHOOK_RETRY_BASE_SECONDS=0.2, WEBHOOK_RETRY_CAP_SECONDS=1))
    try:
        endpoint = webhooks.check_create_endpoint(acme, url=receiver.url, events=["conversation.status"],
                                                  batch_size=batch_size)
        statuses = ["pending", "resolved", "open", "pending", "resolved"]
        started = time.monotonic()
        for status in statuses:
            for conversation in conversations:
                actions.do_set_conversation_status(conversation, status)
        assert time.monotonic() - started < 5  # recorded and enqueued, never sent by the writer
        total = len(statuses) * len(conversations)

        def accepted_events():
            return [e for body in receiver.accepted() for e in (body if isinstance(body, list) else [body])]

        procs.wait_for(lambda: len(accepted_events()) == total, 60, 0.1, f"{total} accepted deliveries")
        assert receiver.answers[:3] == [500, 500, 500]
        for request in receiver.requests:
            assert webhooks.verify_signature(endpoint.secret, request["headers"]["X-Inbox-Signature"], request["raw"])
            assert isinstance(request["body"], list) == (batch_size > 1)
        accepted = accepted_events()
        for conversation in conversations:
            got = [p["data"]["status"] for p in accepted if p["data"]["conversation"]["id"] == conversation.pk]
            assert got == statuses, conversation.pk
        assert len({p["id"] for p in accepted}) == total  # each event accepted once
        log = WebhookDelivery.objects.for_tenant(acme)
        procs.wait_for(lambda: not log.filter(status="pending").exists(), 10, 0.1, "the log to show all delivered")
        failed_events = sum(len(r["body"]) if batch_size > 1 else 1 for r in receiver.requests[:3])
        assert sum(log.values_list("attempts", flat=True)) == total + failed_events
        assert set(log.values_list("status", "response_code")) == {("succeeded", 204)}
    except BaseException:
        print(worker.output()[-6000:])
        raise
    finally:
        worker.stop()
        receiver.close()


def _group_nice_values(pgid: int) -> list[int]:
    """The nice value of each live process of a process group (a worker and its pool), from /proc; a child
    that has exited (the shells of Celery's start-up, not yet reaped) is not counted."""
    values = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                values.append(int(fields[16]))
    return values


def _autogroup_nice(pid: int) -> int | None:
    """The nice value of a process's autogroup (its session's CPU share), None when autogroup scheduling is off."""
    try:
        if open("/proc/sys/kernel/sched_autogroup_enabled").read().strip() != "1":
            return None
        return int(open(f"/proc/{pid}/autogroup").read().split("nice")[1])
    except (OSError, ValueError, IndexError):
        return None


def test_a_worker_for_a_background_queue_alone_lowers_its_cpu_priority(settings):
    """config/priority.py: a worker started for WEBHOOK_QUEUE or JOURNAL_QUEUE (each a queue of its own) gives
    itself and its pool that queue's nice value as it starts, and its session's autogroup too when it is alone
    in it; a worker of the default queue keeps the priority it was started with."""
    hooks_queue = f"{settings.CELERY_TASK_DEFAULT_QUEUE}.hooks"
    journal_queue = f"{settings.CELERY_TASK_DEFAULT_QUEUE}.journal"
    env = procs.process_env(WEBHOOK_QUEUE=hooks_queue, WEBHOOK_WORKER_NICE=17,
                            JOURNAL_QUEUE=journal_queue, JOURNAL_WORKER_NICE=12)

    def background(name, queue):
        return procs.Proc(name, [
            sys.executable, "-m", "celery", "-A", "config", "worker", "-l", "INFO", "-Q", queue,
            "--concurrency", "2", "--without-gossip", "--without-mingle", "-n", f"{name}-{os.getpid()}@%h"], env)

    hooks, journal = background("webhook-worker", hooks_queue), background("journal-worker", journal_queue)
    default = procs.celery_worker(env, concurrency=1)
    try:
        for proc, size in ((hooks, 3), (journal, 3), (default, 2)):
            procs.wait_for(lambda proc=proc, size=size: len(_group_nice_values(proc.popen.pid)) >= size, 60, 0.2,
                           f"the pool of {proc.name}")
        mine = os.getpriority(os.PRIO_PROCESS, 0)  # what a child starts with
        assert set(_group_nice_values(hooks.popen.pid)) == {max(17, mine)}
        assert set(_group_nice_values(journal.popen.pid)) == {max(12, mine)}
        assert set(_group_nice_values(default.popen.pid)) == {mine}
        if _autogroup_nice(os.getpid()) is not None:  # autogroup scheduling on: the session's share counts too
            assert _autogroup_nice(hooks.popen.pid) == 17  # a session of its own (start_new_session, as honcho)
            assert _autogroup_nice(journal.popen.pid) == 12
            assert _autogroup_nice(default.popen.pid) == 0
        # What it did is logged (the operator's way to tell; config's logger was not configured at INFO).
        for proc, nice in ((hooks, 17), (journal, 12)):
            procs.wait_for(lambda proc=proc: '"worker.priority_lowered"' in proc.output(), 10, 0.1,
                           f"{proc.name}'s worker.priority_lowered line")
            assert f'"nice": {max(nice, mine)}' in proc.output()
        assert '"worker.priority_lowered"' not in default.output()
    except BaseException:
        print(hooks.output()[-4000:], journal.output()[-4000:], default.output()[-2000:])
        raise
    finally:
        for proc in (hooks, journal, default):
            proc.stop()


def test_journal_processing_and_replays_go_to_the_journal_queue(settings):
    """With JOURNAL_QUEUE set, the per-connection processor's tasks and replays are sent there (the live
    sweep and everything else stay on the default queue), as the settings a process starts with route them."""
    import subprocess

    env = procs.process_env(JOURNAL_QUEUE="inbox.journal-routed", WEBHOOK_QUEUE="inbox.hooks-routed")
    script = ("import django; django.setup(); from config.celery import app; "
              "print(*[app.amqp.router.route({}, name)['queue'].name for name in ("
              "'sync.tasks.process_journal_task', 'sync.tasks.replay_journal_task', 'sync.tasks.sweep_live_task', "
              "'api.tasks.deliver_webhooks_task')])")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["inbox.journal-routed", "inbox.journal-routed", env["CELERY_QUEUE"],
                                  "inbox.hooks-routed"]


def test_consumed_queues_and_the_background_worker_rule():
    from types import SimpleNamespace

    from config.priority import background_nice, consumed_queues

    assert consumed_queues({"queues": "a, b"}) == {"a", "b"}
    assert consumed_queues({"queues": ["hooks"]}) == {"hooks"}
    assert consumed_queues({}) == set()
    conf = SimpleNamespace(CELERY_TASK_DEFAULT_QUEUE="celery", WEBHOOK_QUEUE="hooks", WEBHOOK_WORKER_NICE=19,
                           JOURNAL_QUEUE="journal", JOURNAL_WORKER_NICE=10)
    assert background_nice({"hooks"}, conf) == 19
    assert background_nice({"journal"}, conf) == 10
    assert background_nice({"hooks", "celery"}, conf) == 0  # it also runs the live inbox's tasks
    assert background_nice({"hooks", "journal"}, conf) == 0  # which of the two: left alone
    assert background_nice(set(), conf) == 0  # no -Q: every queue
    same = SimpleNamespace(**{**vars(conf), "WEBHOOK_QUEUE": "celery", "JOURNAL_QUEUE": "celery"})
    assert background_nice({"celery"}, same) == 0  # no queue of its own: one worker for everything
