"""The positive marker of "it waits for a lock": the session shows up in pg_stat_activity waiting on one.
A test that checks a writer is blocked waits for this instead of sleeping and checking it has not finished."""

from django.db import connection

from tests import procs


def backend_pid() -> int:
    """This thread's Django connection's server process id (opened if need be)."""
    connection.ensure_connection()
    return connection.connection.info.backend_pid


def wait_blocked_on_lock(pid: int, timeout: float = 10.0) -> None:
    """Wait until the PostgreSQL session ``pid`` waits on a lock (a row, a table, a transaction's end).

    Reads pg_stat_activity through this thread's Django connection, which must not be inside a transaction:
    the view is a snapshot taken once per transaction."""

    def blocked() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
            found = cursor.fetchone()
        return bool(found) and found[0] == "Lock"

    procs.wait_for(blocked, timeout, 0.02, f"session {pid} waiting on a lock")
