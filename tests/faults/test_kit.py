"""The fault kit proves each of its faults with real clients: psycopg and redis-py against real servers."""

import gc
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
import redis

from tests import procs
from tests.faults.conftest import database_server
from tests.faults.kit import PgCluster, RedisServer, TcpProxy, fault_env, redis_client_for

pytestmark = pytest.mark.faults


def pg_connect(proxy_or_port, dbname="postgres", timeout=5):
    port = proxy_or_port.port if isinstance(proxy_or_port, TcpProxy) else proxy_or_port
    return psycopg.connect(f"postgres://postgres@127.0.0.1:{port}/{dbname}", connect_timeout=timeout, autocommit=True)


class Background:
    """Run fn in a thread: a query that may hang must not hang the test."""

    def __init__(self, fn):
        self.result = self.error = None
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()

    def _run(self, fn):
        try:
            self.result = fn()
        except Exception as exc:
            self.error = exc

    def finished_within(self, seconds) -> bool:
        self.thread.join(seconds)
        return not self.thread.is_alive()


def elapsed(fn, *exceptions):
    """Seconds until fn raised one of `exceptions` (it must raise)."""
    start = time.monotonic()
    with pytest.raises(exceptions):
        fn()
    return time.monotonic() - start


# --- TcpProxy in front of PostgreSQL ---------------------------------------------------------------

def test_postgres_through_the_proxy_passes_then_is_refused_fast_then_passes_again(db_proxy):
    conn = pg_connect(db_proxy)
    assert conn.execute("SELECT inet_server_port()").fetchone()[0] == db_proxy.target[1]
    assert (db_proxy.connections_opened, db_proxy.active_connections) == (1, 1)
    assert db_proxy.bytes_to_target > 0 and db_proxy.bytes_from_target > 0

    db_proxy.refuse()
    assert db_proxy.active_connections == 0
    # The open session is reset at once (not left to time out), and connecting is refused at once.
    assert elapsed(lambda: conn.execute("SELECT 1"), psycopg.OperationalError) < 2
    start = time.monotonic()
    with pytest.raises(psycopg.OperationalError, match="refused"):
        pg_connect(db_proxy, timeout=10)
    assert time.monotonic() - start < 2
    assert db_proxy.connections_opened == 1  # nothing was accepted while refusing
    conn.close()

    db_proxy.pass_through()
    with pg_connect(db_proxy) as again:
        assert again.execute("SELECT 7").fetchone() == (7,)
    assert db_proxy.connections_opened == 2


def test_a_blackhole_hangs_new_and_open_connections_until_it_heals(db_proxy):
    conn = pg_connect(db_proxy)
    db_proxy.blackhole()

    # A new connect completes at the TCP level and then hears nothing: only the client's timeout ends it.
    start = time.monotonic()
    with pytest.raises(psycopg.OperationalError, match="timeout"):
        pg_connect(db_proxy, timeout=2)
    assert time.monotonic() - start >= 1.5
    assert db_proxy.connections_opened == 2

    # An open session's query hangs, with no error either...
    query = Background(lambda: conn.execute("SELECT 42").fetchone())
    assert not query.finished_within(1.0)
    # ...and completes once the partition heals: the held bytes are delivered, as TCP would.
    db_proxy.pass_through()
    assert query.finished_within(15) and query.error is None and query.result == (42,)
    with pg_connect(db_proxy) as again:
        assert again.execute("SELECT 1").fetchone() == (1,)
    conn.close()


def test_healing_with_reset_frozen_drops_the_connections_frozen_by_the_partition(db_proxy):
    conn = pg_connect(db_proxy)
    with db_proxy.partitioned(reset_on_heal=True):
        query = Background(lambda: conn.execute("SELECT 1").fetchone())
        assert not query.finished_within(0.5)
    assert query.finished_within(10) and isinstance(query.error, psycopg.OperationalError)
    assert db_proxy.active_connections == 0
    with pg_connect(db_proxy) as again:
        assert again.execute("SELECT 1").fetchone() == (1,)

    # reset_connections: a blip that cuts open sessions but keeps accepting new ones.
    assert db_proxy.reset_connections() == 1
    with pg_connect(db_proxy) as third:
        assert third.execute("SELECT 3").fetchone() == (3,)


def test_close_leaves_no_thread_no_socket_and_no_listener():
    gc.collect()  # sockets an earlier test left to the collector must not close during this count
    fds_before = len(os.listdir("/proc/self/fd"))
    proxy = TcpProxy(*database_server())
    held = pg_connect(proxy)
    proxy.blackhole()
    with pytest.raises(psycopg.OperationalError):
        pg_connect(proxy, timeout=2)  # leaves a frozen, accepted connection behind in the proxy
    thread = proxy._thread
    proxy.close()
    held.close()
    assert not thread.is_alive()
    gc.collect()  # psycopg keeps a failed connect's socket until its traceback is collected
    assert len(os.listdir("/proc/self/fd")) == fds_before
    with pytest.raises(psycopg.OperationalError, match="refused"):
        pg_connect(proxy)
    proxy.close()  # idempotent


# --- TcpProxy in front of Redis ------------------------------------------------------------------

def test_redis_through_the_proxy_carries_large_values_and_pipelines(redis_server, redis_proxy):
    client = redis.Redis(port=redis_proxy.port, socket_timeout=10)
    value = os.urandom(8 << 20)  # far beyond the proxy's 1 MiB buffer: back-pressure both ways
    client.set("big", value)
    assert client.get("big") == value
    pipe = client.pipeline(transaction=False)
    for _ in range(2000):
        pipe.incr("n")
    assert pipe.execute()[-1] == 2000
    assert redis_proxy.bytes_to_target > 8 << 20 and redis_proxy.bytes_from_target > 8 << 20
    assert redis_server.client().get("n") == b"2000"  # it really went to our server
    client.close()


def test_a_redis_partition_times_out_and_a_stopped_redis_behind_the_proxy_is_a_reset(redis_server, redis_proxy):
    client = redis_client_for(redis_proxy, socket_timeout=1)
    assert client.ping()
    with redis_proxy.partitioned():
        assert 0.8 < elapsed(client.ping, redis.TimeoutError) < 5
    assert client.ping()

    redis_server.stop()
    assert elapsed(client.ping, redis.ConnectionError) < 1  # the proxy resets: no hang behind it
    redis_server.start()
    assert client.ping()


def test_the_proxy_survives_clients_hammering_it_while_its_mode_flaps(redis_server, redis_proxy):
    stop, wrong, done = threading.Event(), [], [0]

    def client_loop(i):
        client = redis_client_for(redis_proxy, socket_timeout=0.5, socket_connect_timeout=0.5)
        while not stop.is_set():
            value = os.urandom((10, 1000, 200_000)[done[0] % 3])
            try:
                client.set(f"k{i}", value)
                if client.get(f"k{i}") != value:
                    wrong.append(i)
                done[0] += 1
            except (redis.ConnectionError, redis.TimeoutError):
                pass
        client.close()

    clients = [threading.Thread(target=client_loop, args=(i,)) for i in range(10)]
    for t in clients:
        t.start()
    for step in range(16):
        redis_proxy.set_mode(("pass", "refuse", "pass", "blackhole")[step % 4], reset_frozen=step % 8 == 7)
        time.sleep(0.1)
    redis_proxy.pass_through()
    time.sleep(0.5)
    stop.set()
    for t in clients:
        t.join(10)
    assert not wrong and done[0] > 0
    assert redis_client_for(redis_proxy).ping()
    assert not redis_proxy.errors


# --- RedisServer -------------------------------------------------------------------------------

def test_a_stopped_redis_refuses_and_comes_back_empty_on_the_same_port(redis_server):
    client, port = redis_server.client(), redis_server.port
    client.set("k", "v")
    redis_server.stop()
    assert elapsed(client.ping, redis.ConnectionError) < 1
    with pytest.raises(redis.ConnectionError, match="refused"):
        redis_server.client().ping()

    redis_server.start()
    assert redis_server.port == port and client.ping() and client.get("k") is None

    client.set("k", "v")
    with redis_server.outage(0.2):
        with pytest.raises(redis.ConnectionError):
            client.ping()
    assert client.ping() and client.get("k") is None


def test_a_frozen_redis_hangs_until_thawed_and_keeps_its_data(redis_server):
    client = redis_server.client(socket_timeout=1)
    client.set("k", "v")
    with redis_server.frozen():
        assert 0.8 < elapsed(client.ping, redis.TimeoutError) < 5
    assert client.get("k") == b"v"
    # Stopping a frozen server must not wait for it to wake up.
    redis_server.freeze()
    start = time.monotonic()
    redis_server.stop()
    assert time.monotonic() - start < 5 and not redis_server.running()


def test_a_server_on_a_taken_port_fails_instead_of_adopting_the_one_already_there(redis_server, pg_cluster):
    # Whoever answers on the port must be the process we started: never, say, the shared Redis on 6379.
    with pytest.raises(RuntimeError, match="did not come up"):
        RedisServer(port=redis_server.port)
    with pytest.raises(RuntimeError, match="did not come up"):
        PgCluster(port=pg_cluster.port)
    assert redis_server.client().ping() and pg_cluster.execute("SELECT 1") == [(1,)]


# --- PgCluster ---------------------------------------------------------------------------------

def test_an_own_postgres_cluster_goes_down_for_real_and_comes_back_with_its_data(pg_cluster):
    pg_cluster.create_database("app")
    pg_cluster.execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1)", dbname="app")
    conn = pg_connect(pg_cluster.port, "app")

    pg_cluster.crash()
    assert elapsed(lambda: conn.execute("SELECT 1"), psycopg.OperationalError) < 2
    with pytest.raises(psycopg.OperationalError, match="refused"):
        pg_connect(pg_cluster.port, "app")

    start = time.monotonic()
    pg_cluster.start()
    assert time.monotonic() - start < 10
    assert pg_cluster.execute("SELECT x FROM t", dbname="app") == [(1,)]

    copy = pg_cluster.copy_database(pg_cluster.url("app"), "app_copy")
    with psycopg.connect(copy) as c:
        assert c.execute("SELECT x FROM t").fetchall() == [(1,)]
    conn.close()


# --- fault_env: a real product process under the kit ----------------------------------------------

def test_fault_env_sends_a_product_process_through_the_proxy_to_its_own_redis(db_proxy, redis_server):
    host, port = database_server()
    base = procs.process_env(DATABASE_URL=f"postgres://postgres@{host}:{port}/postgres")
    env = fault_env(base, db_proxy=db_proxy, redis=redis_server)
    assert env["DATABASE_URL"] == f"postgres://postgres@127.0.0.1:{db_proxy.port}/postgres"

    # The product's own settings and nudge client, in a fresh process with that environment.
    code = ("import django; django.setup(); from django.conf import settings; from django.db import connection; "
            "from connections.nudge import redis_client; "
            "print('seen:', connection.cursor().execute('SELECT inet_server_port()').fetchone()[0], "
            "connection.settings_dict['PORT'], settings.CELERY_BROKER_URL); redis_client().set('faults-kit', 'reached')")
    out = subprocess.run([sys.executable, "-c", code], cwd=procs.ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    seen = next(line for line in out.stdout.splitlines() if line.startswith("seen: "))
    server_port, django_port, broker = seen.split()[1:]
    assert (int(server_port), int(django_port)) == (port, db_proxy.port)
    assert broker == redis_server.url
    assert db_proxy.connections_opened >= 1
    assert redis_server.client().get("faults-kit") == b"reached"

    with TcpProxy("127.0.0.1", port + 1) as elsewhere, pytest.raises(ValueError, match="does not forward"):
        fault_env(base, db_proxy=elsewhere)
    sqlite = dict(base, DATABASE_URL=f"sqlite:///{Path(procs.ROOT) / 'x.sqlite3'}")
    with pytest.raises(ValueError, match="SQLite"):
        fault_env(sqlite, db_proxy=db_proxy)
