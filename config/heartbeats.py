"""Liveness marks of the processes that have no row of their own: beat and the runners.

Each writes a timestamp to Redis (keys named after the database, config/scope.py) while it runs;
``/health/detailed`` and the platform watchdog read them. A mark is a hint of life, never state: losing
Redis loses them, and the health check then reports Redis down anyway.

* beat: ``health.beat.<scope>`` = unix time of its last tick (written at most every few seconds);
* runners: hash ``health.runners.<scope>``, field = runner id, value = JSON {at, pid, host, children,
  sessions, hosts: {child index: [connection ids]}}; a runner that stops cleanly removes its field, a
  killed one leaves it to go stale.
"""

import json
import logging
import os
import socket
import time

from config.redis import redis_client
from config.scope import database_scope

logger = logging.getLogger(__name__)
# A runner's field this much older than its last mark is dropped by readers (a long-dead runner).
FORGET_SECONDS = 3600


def beat_key() -> str:
    return f"health.beat.{database_scope()}"


def runners_key() -> str:
    return f"health.runners.{database_scope()}"


def mark_beat_tick() -> None:
    redis_client().set(beat_key(), f"{time.time():.3f}", ex=FORGET_SECONDS)


def last_beat_tick() -> float | None:
    value = redis_client().get(beat_key())
    return float(value) if value else None


def mark_runner(runner_id: str, *, children: int, sessions: int, hosts: dict | None = None) -> None:
    """``hosts``: {child index: [connection ids]}, so pages can say which child hosts a number."""
    value = json.dumps({"at": time.time(), "pid": os.getpid(), "host": socket.gethostname(),
                        "children": children, "sessions": sessions, "hosts": hosts or {}})
    redis_client().hset(runners_key(), runner_id, value)


def forget_runner(runner_id: str) -> None:
    redis_client().hdel(runners_key(), runner_id)


def runner_marks() -> dict[str, dict]:
    """{runner_id: {at, pid, host, children, sessions}}; fields older than FORGET_SECONDS are removed."""
    client = redis_client()
    marks, now = {}, time.time()
    for field, raw in client.hgetall(runners_key()).items():
        runner_id = field.decode()
        try:
            mark = json.loads(raw)
        except ValueError:
            mark = {"at": 0}
        if now - float(mark.get("at", 0)) > FORGET_SECONDS:
            client.hdel(runners_key(), runner_id)
            continue
        marks[runner_id] = mark
    return marks
