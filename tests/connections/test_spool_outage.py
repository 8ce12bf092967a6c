"""The spool with a real runner while its PostgreSQL database really goes away, then comes back.

The runner gets a database of its own (a copy of the test database made with CREATE DATABASE ...
TEMPLATE), so making it unreachable (ALLOW_CONNECTIONS false + its backends terminated) never
touches the shared test database.
"""

import json
from pathlib import Path

import psycopg
import pytest
from django.db import connection as django_connection
from neonize.events import MessageEv

from connections.nudge import nudge_channel, redis_client
from tests import procs
from tests.connections.helpers import runner_env, start_runner
from tests.factories import ConnectionFactory, TenantFactory

pytestmark = [
    pytest.mark.processes,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not django_connection.settings_dict["ENGINE"].endswith("postgresql"),
                       reason="takes a PostgreSQL database offline (ALLOW_CONNECTIONS); SQLite has no equivalent"),
]


class OwnDatabase:
    """A copy of the test database for one runner, reachable or not at the test's will."""

    def __init__(self):
        db = django_connection.settings_dict
        self.source = db["NAME"]
        self.name = f"{self.source}_outage"
        self.server = f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
        self.url = f"{self.server}/{self.name}"

    def admin(self, sql, params=()):
        with psycopg.connect(f"{self.server}/postgres", autocommit=True) as c:
            return c.execute(sql, params).fetchall() if sql.lstrip().upper().startswith("SELECT") else c.execute(sql, params)

    def create_from_test_database(self):
        django_connection.close()  # TEMPLATE needs the source database without sessions
        self.admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self.admin(f'CREATE DATABASE "{self.name}" TEMPLATE "{self.source}"')

    def go_offline(self):
        self.admin(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false')
        self.admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                   [self.name])

    def come_back(self):
        self.admin(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')

    def drop(self):
        self.admin(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')
        self.admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def query(self, sql, params=()):
        with psycopg.connect(self.url) as c:
            return c.execute(sql, params).fetchall()


def nudge_runner_of(database_name, connection_id, action, **payload):
    """connections.nudge.nudge for a runner on another database (the channel is named after the database)."""
    return redis_client().publish(nudge_channel(database_name), json.dumps({"connection_id": connection_id, "action": action,
                                                       "payload": payload}))


def journaled_bodies(db, connection_id):
    rows = db.query("SELECT payload FROM sync_rawevent WHERE connection_id = %s AND event_name = 'MessageEv'",
                    [connection_id])
    return sorted(MessageEv.FromString(bytes(p)).Message.conversation or
                  MessageEv.FromString(bytes(p)).Message.extendedTextMessage.text for (p,) in rows)


def spooled_lines(spool_dir):
    return sum(len(p.read_text().splitlines()) for p in Path(spool_dir).glob("conn-*"))


def test_events_received_while_the_database_is_down_are_spooled_and_journaled_when_it_is_back():
    conn = ConnectionFactory(tenant=TenantFactory(), jid="5511900000701:1@s.whatsapp.net")
    db = OwnDatabase()
    db.create_from_test_database()
    # An outage shorter than a lease, as in production (30 s): with the 3 s lease of the other runner tests
    # the child fences itself (exits before its lease runs out unrenewed) before a loaded machine has even
    # delivered the five events, and a session that is not running spools nothing.
    env = runner_env(DATABASE_URL=db.url, RUNNER_LEASE_SECONDS=30)
    spool_dir = env["EVENT_SPOOL_DIR"]
    runner = start_runner("outage", env)
    try:
        procs.wait_for(lambda: db.query("SELECT status FROM connections_connection WHERE id = %s", [conn.pk])[0][0]
                       == "connected", 20, 0.1, "connected")
        db.go_offline()
        with pytest.raises(psycopg.OperationalError, match="not currently accepting connections"):
            db.query("SELECT 1")

        # Five customers' messages arrive while nothing can be written to the database.
        assert nudge_runner_of(db.name, conn.pk, "simulate", kind="text", text="while down", count=5) == 1
        procs.wait_for(lambda: spooled_lines(spool_dir) == 5, 15, 0.1, "5 events spooled")
        assert runner.alive()

        db.come_back()
        # The runner replays its spool: every event journaled once, the spool emptied.
        procs.wait_for(lambda: spooled_lines(spool_dir) == 0 and len(journaled_bodies(db, conn.pk)) == 5, 20, 0.2,
                       "spool replayed")
        assert journaled_bodies(db, conn.pk) == [f"while down #{i}" for i in range(1, 6)]
        assert not list(Path(spool_dir).iterdir())

        # The session rode through the outage: still held by this runner, new events go straight in.
        row = db.query("SELECT status, runner_id FROM connections_connection WHERE id = %s", [conn.pk])[0]
        assert row == ("connected", "outage")
        nudge_runner_of(db.name, conn.pk, "simulate", kind="text", text="after", count=1)
        procs.wait_for(lambda: "after" in journaled_bodies(db, conn.pk), 10, 0.1, "live again")
        assert spooled_lines(spool_dir) == 0 and len(journaled_bodies(db, conn.pk)) == 6
    except AssertionError:
        print(runner.output()[-8000:])
        raise
    finally:
        runner.stop()
        db.drop()
