"""The journal is processed by real Celery workers; one processor per connection at a time."""

import json
from contextlib import contextmanager
from datetime import timedelta

import psycopg
import pytest
from django.db import connection as db
from django.utils import timezone

from inbox.models import Message
from sync import events_builder as b
from sync.journal import journal_events
from sync.models import RawEvent
from sync.processor import process_pending
from sync.statements import LOCK_NAMESPACE, journal_lock
from sync.tasks import journal_safety_net_task
from tests import procs
from tests.factories import ConnectionFactory
from tests.sync.helpers import feed, incoming


@pytest.mark.django_db(transaction=True)
@pytest.mark.processes
def test_worker_processes_journal_on_commit_and_safety_net_picks_up_stragglers(acme):
    conn = ConnectionFactory(tenant=acme)
    worker = procs.celery_worker(concurrency=2)
    try:
        # The runner's path: journal, and the task is enqueued when the row is committed.
        journal_events(conn.pk, [b.serialize(incoming("W1", "pelo worker")) + (None,)])
        procs.wait_for(lambda: Message.objects.unscoped().filter(external_id="W1").exists(), timeout=60,
                       message="worker processing W1\n" + worker.output())
        # A row journaled without scheduling (say the broker was down) and older than 30 s.
        old = timezone.now() - timedelta(minutes=2)
        journal_events(conn.pk, [b.serialize(incoming("W2", "atrasada")) + (old,)], schedule=False)
        RawEvent.objects.unscoped().filter(connection=conn, state="pending").update(created_at=old)
        assert journal_safety_net_task()["connections"] == [conn.pk]
        procs.wait_for(lambda: Message.objects.unscoped().filter(external_id="W2").exists(), timeout=60,
                       message="safety net processing W2\n" + worker.output())
        assert not RawEvent.objects.unscoped().filter(connection=conn).exclude(state="processed").exists()
    finally:
        worker.stop()


@pytest.mark.django_db(transaction=True)
@pytest.mark.processes
@pytest.mark.skipif(not db.settings_dict["ENGINE"].endswith("postgresql"), reason="the live sweep is PostgreSQL's")
def test_events_committed_while_a_sweep_runs_start_no_second_sweep_and_are_swept_after_it(acme, settings):
    import redis as redis_lib

    from sync.journal import sweep_finished, sweep_shard, sweep_started
    from sync.tasks import sweep_live_task

    conn = ConnectionFactory(tenant=acme)
    shard = sweep_shard(conn.pk)
    broker = redis_lib.Redis.from_url(settings.CELERY_BROKER_URL)
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    broker.delete(queue)
    sweep_started(shard)  # a sweep runs (this test plays it): commits leave a mark instead of queueing one
    journal_events(conn.pk, [b.serialize(incoming("S1", "durante a varredura")) + (None,)])
    queued = [json.loads(raw)["headers"]["task"] for raw in broker.lrange(queue, 0, -1)]
    assert sweep_live_task.name not in queued  # no second sweep started (none queued, no worker yet to take one)
    assert not Message.objects.unscoped().filter(external_id="S1").exists()
    worker = procs.celery_worker(concurrency=2)
    try:
        assert sweep_finished(shard) is True  # the sweep ends and is told; sweep_live_task then comes back
        assert sweep_finished(shard) is False
        journal_events(conn.pk, [b.serialize(incoming("S2", "depois")) + (None,)])  # none runs: queued at once
        procs.wait_for(lambda: Message.objects.unscoped().filter(external_id__in=["S1", "S2"]).count() == 2,
                       timeout=60, message="the next sweep\n" + worker.output())
    finally:
        worker.stop()


@pytest.mark.django_db
@pytest.mark.smoke
def test_only_one_processor_per_connection(acme_connection):
    feed(acme_connection, incoming("L1"), process=False)
    with _held_elsewhere(acme_connection.pk):
        busy = process_pending(acme_connection.pk)
        assert busy.busy and busy.processed == 0
        assert not Message.objects.unscoped().exists()
    done = process_pending(acme_connection.pk)
    assert not done.busy and done.processed == 1


@contextmanager
def _held_elsewhere(connection_id):
    """Hold the connection's journal lock the way another worker would."""
    if db.vendor == "postgresql":
        s = db.settings_dict
        with psycopg.connect(host=s["HOST"] or "127.0.0.1", port=s["PORT"] or 5432, user=s["USER"] or "postgres",
                             dbname=s["NAME"], autocommit=True) as other:
            other.execute("SELECT pg_advisory_lock(%s, %s)", [LOCK_NAMESPACE, connection_id])
            yield
            other.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_NAMESPACE, connection_id])
    else:
        # flock() locks belong to the open file: a second open in this process conflicts like another process.
        with journal_lock(connection_id, wait=True) as got:
            assert got
            yield
