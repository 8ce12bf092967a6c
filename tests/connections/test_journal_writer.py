"""The child's journal writer against a real PostgreSQL that hangs, and a Redis that is not there.

What a transport callback is promised: ``submit`` returns only once the event is durable (committed,
or appended to the spool with fsync), within RUNNER_JOURNAL_WAIT_SECONDS whatever the database does;
a connection's events reach the journal in the order they were received; Redis is never on the path.
"""

import logging
import threading
import time

import psycopg
import pytest
from django.db import connection as django_connection

from connections.spool import pending_spool_files
from sync import events_builder as eb
from sync.models import RawEvent
from tests import procs

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not django_connection.settings_dict["ENGINE"].endswith("postgresql"),
                       reason="holds a PostgreSQL table lock to make the journal hang"),
]
PN = "5511987654321@s.whatsapp.net"


def event(n):
    return eb.serialize(eb.message_ev(PN, PN, f"WRITER{n:04d}", f"message {n}", 1_760_000_000_000 + n))


def dsn():
    db = django_connection.settings_dict
    return f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def journaled_ids(connection_id):
    return list(RawEvent.objects.unscoped().filter(connection_id=connection_id).order_by("id").values_list("payload", flat=True))


@pytest.fixture
def writer(journal_writer):
    return journal_writer(wait_seconds=0.5)


def timed_submit(writer, connection_id, name, payload):
    started = time.monotonic()
    writer.submit(connection_id, name, payload)
    return time.monotonic() - started


def test_a_burst_from_many_sessions_is_journaled_in_batches(journal_writer, acme_connection, globex):
    from tests.factories import ConnectionFactory

    writer = journal_writer(wait_seconds=30)  # a healthy database: nothing may need the spool
    other = ConnectionFactory(tenant=globex)
    threads = [threading.Thread(target=lambda cid=cid, k=k: [writer.submit(cid, *event(k * 100 + i)) for i in range(25)])
               for k, cid in enumerate([acme_connection.pk, other.pk, acme_connection.pk, other.pk])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert RawEvent.objects.unscoped().filter(connection=acme_connection).count() == 50
    assert RawEvent.objects.unscoped().filter(connection=other).count() == 50
    assert {r.tenant_id for r in RawEvent.objects.unscoped().filter(connection=other)} == {globex.pk}
    assert pending_spool_files() == [] and writer.spooled_total == 0


def test_a_hung_database_spools_within_the_wait_and_keeps_each_connections_order(writer, acme_connection):
    writer.submit(acme_connection.pk, *event(1))  # the writer's connection is open and warm
    with psycopg.connect(dsn()) as blocker:
        blocker.execute("LOCK TABLE sync_rawevent IN ACCESS EXCLUSIVE MODE")  # every INSERT now hangs
        assert timed_submit(writer, acme_connection.pk, *event(2)) < 2.0
        assert timed_submit(writer, acme_connection.pk, *event(3)) < 2.0
        spooled = [line for p in pending_spool_files() for line in p.read_text().splitlines()]
        assert len(spooled) == 2  # both made durable in the spool while the journal hung
        blocker.rollback()  # the database answers again
    writer.submit(acme_connection.pk, *event(4))
    procs.wait_for(lambda: RawEvent.objects.unscoped().filter(connection=acme_connection).count() == 4, 10,
                   message="all four journaled")
    bodies = [eb.EVENT_CLASSES["MessageEv"].FromString(bytes(p)).Message.conversation for p in journaled_ids(acme_connection.pk)]
    assert bodies == ["message 1", "message 2", "message 3", "message 4"]  # once each, in order
    procs.wait_for(lambda: pending_spool_files() == [], 5, message="spool emptied")


def test_redis_being_down_never_touches_the_journal(writer, acme_connection, settings, caplog):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there: every enqueue fails
    caplog.set_level(logging.WARNING, logger="sync.journal")
    for n in range(5):
        assert timed_submit(writer, acme_connection.pk, *event(10 + n)) < 1.0
    assert RawEvent.objects.unscoped().filter(connection=acme_connection, state=RawEvent.State.PENDING).count() == 5
    procs.wait_for(lambda: any(r.getMessage() == "sync.journal.enqueue_failed" for r in caplog.records), 10,
                   message="the failed enqueue is logged")
    assert writer.health()["alive"] and pending_spool_files() == []


def test_events_of_a_deleted_connection_are_set_aside_and_do_not_block_the_others(writer, acme_connection, globex):
    from tests.factories import ConnectionFactory

    gone = ConnectionFactory(tenant=globex)
    gone_id = gone.pk
    gone.delete()
    writer.submit(gone_id, *event(30))  # cannot be journaled: spooled, then set aside on replay
    writer.submit(acme_connection.pk, *event(31))
    writer.submit(acme_connection.pk, *event(32))
    procs.wait_for(lambda: RawEvent.objects.unscoped().filter(connection=acme_connection).count() == 2, 10,
                   message="others journaled")
    procs.wait_for(lambda: pending_spool_files() == [], 10, message="nothing left to replay")
    from pathlib import Path

    from django.conf import settings

    assert len(list(Path(settings.EVENT_SPOOL_DIR).glob(f"conn-{gone_id}.*.orphaned"))) == 1  # kept for an operator
