"""Fault-injection kit: take Redis or PostgreSQL away from the product's real processes, then give it back.

    from tests.faults.kit import PgCluster, RedisServer, TcpProxy, fault_env

* `RedisServer`: a redis-server of the test's own (stop/start = refused, freeze/thaw = hangs).
* `TcpProxy(host, port)`: a proxy whose mode switches at runtime: "pass", "refuse" (down: connects
  refused, open connections reset), "blackhole" (silent partition: everything hangs).
* `PgCluster`: a PostgreSQL cluster of the test's own, for a server that really goes down.
* `fault_env(...)`: the environment for runner / worker / web (tests/procs.py) so they reach the
  database through a proxy and use a Redis of their own, while the test process keeps reading the
  test database directly (and reaches the product's Redis through `redis_server.client()`).

The fixtures in tests/faults/conftest.py (`redis_server`, `redis_proxy`, `db_proxy`, `pg_cluster`) close
everything even when a test fails. How to write a fault test: docs/faults.md.

Nothing here touches the machine's shared PostgreSQL or Redis: the proxy only forwards to them, and
every process stopped or frozen is one the kit started.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from tests import procs
from tests.faults.proxy import BLACKHOLE, MODES, PASS, REFUSE, TcpProxy
from tests.faults.servers import PgCluster, RedisServer, postgres_bindir, quick_redis_client

__all__ = ["BLACKHOLE", "MODES", "PASS", "REFUSE", "PgCluster", "RedisServer", "TcpProxy", "fault_env",
           "postgres_bindir", "redis_client_for", "redis_url"]


def redis_url(redis: str | RedisServer | TcpProxy, db: int = 0) -> str:
    """The URL a client should use for a RedisServer, a proxy in front of one, or a URL as is."""
    if isinstance(redis, str):
        return redis
    if isinstance(redis, RedisServer):
        return f"redis://127.0.0.1:{redis.port}/{db}"
    if isinstance(redis, TcpProxy):
        return f"redis://{redis.host}:{redis.port}/{db}"
    raise TypeError(f"expected a URL, RedisServer or TcpProxy, not {type(redis).__name__}")


def redis_client_for(redis: str | RedisServer | TcpProxy, **kwargs):
    """A redis-py client for the test itself (short timeouts, no retries) of a server, proxy or URL."""
    return quick_redis_client(redis_url(redis), **kwargs)


def _through_proxy(url: str, proxy: TcpProxy) -> str:
    """The same PostgreSQL URL with host:port replaced by the proxy's (the proxy must target that port)."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        raise ValueError(f"a database proxy needs a PostgreSQL URL, not {url!r} (SQLite has no network)")
    if (parts.port or 5432) != proxy.target[1]:
        raise ValueError(f"{proxy!r} does not forward to the server of {url!r}")
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{proxy.host}:{proxy.port}" if userinfo else f"{proxy.host}:{proxy.port}"
    return parts._replace(netloc=netloc).geturl()


def fault_env(base: dict | None = None, *, database_url: str | None = None, db_proxy: TcpProxy | None = None,
              redis: str | RedisServer | TcpProxy | None = None, **extra) -> dict:
    """Environment for a product process (runner, worker, web) under the test's control.

    base: an env to start from (default `procs.process_env()`: the test database, the suite's Redis,
    queue and settings); e.g. `tests.connections.helpers.runner_env()` for a runner with short timings.
    database_url: use this database instead (e.g. `pg_cluster.url("inbox")`); the whatsmeow store is then
    derived from it (on that server, gone with it), not the session's (procs.process_env).
    db_proxy: reach the database through this proxy (it must target the URL's server); WHATSMEOW_STORE,
    when set and on the same server, goes through it too (unset, the product derives it from DATABASE_URL).
    redis: a RedisServer, a TcpProxy in front of one, or a URL: REDIS_URL and CELERY_BROKER_URL (the
    broker and the Channels layer) point there.
    extra: more variables (stringified), applied last.
    """
    env = dict(base if base is not None else procs.process_env())
    if database_url:
        env["DATABASE_URL"] = database_url
        env.pop("WHATSMEOW_STORE", None)
    if db_proxy is not None:
        env["DATABASE_URL"] = _through_proxy(env["DATABASE_URL"], db_proxy)
        store = env.get("WHATSMEOW_STORE", "")
        if store.startswith("postgres") and (urlsplit(store).port or 5432) == db_proxy.target[1]:
            env["WHATSMEOW_STORE"] = _through_proxy(store, db_proxy)
    if redis is not None:
        env["REDIS_URL"] = env["CELERY_BROKER_URL"] = redis_url(redis)
    env.update({k: str(v) for k, v in extra.items()})
    return env
