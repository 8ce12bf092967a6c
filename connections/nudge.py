"""Nudges: tell the runner holding a connection to act now (it reacts within a second).

``nudge(connection_id, action, **payload)`` publishes one JSON message on a Redis channel that every
runner of this database subscribes to. A nudge is a hint, never the source of truth: desired state
lives in the database and the runner's periodic reconcile catches a nudge nobody heard. Callers
inside a transaction use ``nudge_on_commit`` so the runner never acts on an uncommitted row.
"""

import json
import logging

import redis
from django.db import transaction

from config.redis import redis_client
from config.scope import database_scope
from connections.protocol import NUDGE_ACTIONS

logger = logging.getLogger(__name__)

ACTIONS = NUDGE_ACTIONS  # connections.protocol.Nudge


def nudge_channel(database_name: str | None = None) -> str:
    """Redis pub/sub ignores the db number, so the channel is named after the project's database."""
    return f"connections.nudge.{database_scope(database_name)}"


def nudge(connection_id: int, action: str, **payload) -> int:
    """Publish a nudge; returns how many runners heard it (0 = none running; the outbox/DB keeps the work)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown nudge action {action!r}; expected one of {sorted(ACTIONS)}")
    message = json.dumps({"connection_id": int(connection_id), "action": action, "payload": payload}, default=str)
    try:
        return redis_client().publish(nudge_channel(), message)
    except redis.RedisError as exc:
        # Losing a nudge only delays the work until the next reconcile; never fail the caller's write.
        logger.warning("connections.nudge_failed", extra={"connection_id": connection_id, "action": action,
                                                          "error": str(exc)})
        return 0


def nudge_on_commit(connection_id: int, action: str, **payload) -> None:
    if action not in ACTIONS:
        raise ValueError(f"unknown nudge action {action!r}")
    transaction.on_commit(lambda: nudge(connection_id, action, **payload))
