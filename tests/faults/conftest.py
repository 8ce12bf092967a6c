"""Fixtures of the fault kit: each server or proxy is closed after its test, whether it passed or not."""

import threading

import pytest
from django.db import connection as django_connection

from tests.faults.kit import PgCluster, RedisServer, TcpProxy, postgres_bindir


@pytest.fixture(autouse=True)
def no_leaked_proxy_threads():
    """Fail a test that leaves a proxy thread running (set up first, so it checks after every other teardown)."""
    before = {t for t in threading.enumerate() if t.name.startswith("TcpProxy")}
    yield
    leaked = [t.name for t in threading.enumerate() if t.name.startswith("TcpProxy") and t not in before]
    assert not leaked, f"proxy threads still running after the test: {leaked}"


@pytest.fixture
def redis_server():
    """A redis-server of this test's own (see RedisServer); point product processes at it with fault_env."""
    server = RedisServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def redis_proxy(redis_server):
    """A TcpProxy in front of `redis_server`: for partitions (blackhole) of Redis."""
    with TcpProxy("127.0.0.1", redis_server.port) as proxy:
        yield proxy


def database_server() -> tuple[str, int]:
    db = django_connection.settings_dict
    if not db["ENGINE"].endswith("postgresql"):
        pytest.skip("a database proxy needs PostgreSQL (SQLite has no network)")
    return db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)


@pytest.fixture
def db_proxy():
    """A TcpProxy in front of the test database's PostgreSQL server (the shared one: it only forwards)."""
    with TcpProxy(*database_server()) as proxy:
        yield proxy


@pytest.fixture
def pg_cluster():
    """A PostgreSQL cluster of this test's own, running (see PgCluster)."""
    if postgres_bindir() is None:
        pytest.skip("PostgreSQL server binaries not found (set PG_BINDIR)")
    cluster = PgCluster()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can tell whether the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
