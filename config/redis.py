"""The one way to get a Redis client: every client has connect and read timeouts, so a Redis that
hangs (frozen, partitioned) costs a caller seconds, never forever."""

import redis
from django.conf import settings

SOCKET_TIMEOUT = 5.0
CONNECT_TIMEOUT = 2.0
_clients: dict[str, redis.Redis] = {}


def redis_client(url: str | None = None) -> redis.Redis:
    """A shared client (a connection pool) for ``url`` (default: settings.REDIS_URL)."""
    url = url or settings.REDIS_URL
    client = _clients.get(url)
    if client is None:
        client = _clients[url] = redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT,
                                                      socket_connect_timeout=CONNECT_TIMEOUT,
                                                      health_check_interval=30)
    return client
