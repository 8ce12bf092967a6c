"""Database connections of long-running processes (the runner, its children, the journal thread)."""

from django.db import connections


def drop_broken_connections() -> None:
    """Close this thread's connections that saw a database error, so the next query reconnects.

    Long-running loops call this instead of ``close_old_connections``: with CONN_MAX_AGE = 0 that one
    closes every connection on every call, and a loop that runs many times a second would reconnect
    each time (docs/measurements.md), and a backend started per loop on the server. A healthy connection stays
    open; a broken one (server restarted, partition timed out) is replaced once it has failed.
    """
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and conn.errors_occurred:
            conn.close()
            conn.errors_occurred = False
