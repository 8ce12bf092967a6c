"""A Celery worker keeps its database connection between tasks (config/celery.py), but never one that could
carry a failed task's session state (an advisory lock) into the next task."""

import time

import pytest
from django.db import connection

from config.celery import _end_task_database_connections, _keep_database_connections
from sync.statements import LOCK_NAMESPACE
from sync.tasks import journal_safety_net_task
from tests import procs

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's sessions")


def _worker_sessions() -> list[tuple[int, object]]:
    """(pid, start of its last query) of the other sessions on this database: the worker's, idle."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid, query_start FROM pg_stat_activity WHERE datname = current_database() "
                       "AND pid <> pg_backend_pid() AND state = 'idle' ORDER BY pid")
        return cursor.fetchall()


def _settled_worker_sessions():
    """The worker's sessions once its task is done (idle and no new query for half a second), else None."""
    before = _worker_sessions()
    time.sleep(0.5)
    return before if before and _worker_sessions() == before else None


@pytest.mark.django_db(transaction=True)
@pytest.mark.processes
def test_the_worker_keeps_its_connection_between_tasks():
    worker = procs.celery_worker(concurrency=1)
    try:
        journal_safety_net_task.delay()
        first = procs.wait_for(_settled_worker_sessions, timeout=60, message="the task's session kept after it\n"
                               + worker.output())  # (Celery's Django fixup closed it after every task)
        journal_safety_net_task.delay()
        second = procs.wait_for(lambda: [s for s in _worker_sessions() if s not in first], timeout=60,
                                message="the second task's queries\n" + worker.output())
        assert [pid for pid, _at in second] == [pid for pid, _at in first]  # the same backend ran it
    finally:
        worker.stop()


@pytest.fixture
def worker_connection(transactional_db):
    """This process's connection set up as a worker process's (restored after)."""
    kept = connection.settings_dict["CONN_MAX_AGE"]
    _keep_database_connections()
    connection.close()
    yield connection
    connection.settings_dict["CONN_MAX_AGE"] = kept
    connection.close()


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _advisory_locks_of(pid: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = %s", [pid])
        return cursor.fetchone()[0]


def test_a_failed_tasks_session_is_ended_with_its_locks(worker_connection):
    pid = _backend_pid()
    _end_task_database_connections(sender=journal_safety_net_task, state="SUCCESS")
    assert _backend_pid() == pid  # a task that succeeded: kept

    with connection.cursor() as cursor:  # a lock a failed task's finally could not release
        cursor.execute("SELECT pg_advisory_lock(%s, 424242)", [LOCK_NAMESPACE])
    _end_task_database_connections(sender=journal_safety_net_task, state="FAILURE")
    assert connection.connection is None and _backend_pid() != pid
    procs.wait_for(lambda: _advisory_locks_of(pid) == 0, timeout=5, message="the old session's lock released")


def test_a_connection_that_saw_a_database_error_is_closed(worker_connection):
    from django.db import DatabaseError

    pid = _backend_pid()
    with pytest.raises(DatabaseError), connection.cursor() as cursor:
        cursor.execute("SELECT no_such_column FROM pg_class")
    _end_task_database_connections(sender=journal_safety_net_task, state="SUCCESS")  # the task caught it
    assert connection.connection is None and _backend_pid() != pid
