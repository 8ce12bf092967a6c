"""The Celery broker transport: kombu's Redis transport, made to survive losing Redis mid-task.

kombu 5.7.0 (and the versions before it we tried) kills the worker on a Redis blip when tasks are in
flight (late acknowledgement keeps them unacked): on connection loss Celery closes the connection, the
channel's close restores the unacked messages, and that restore asks for a new client of a connection
whose client is already gone, `AttributeError: 'NoneType' object has no attribute 'hostname'`, which
Celery treats as unrecoverable. The worker process exits; nothing restarts it.

The same happens when a task that was running through the blip finishes and its late ack goes to the
old, closed channel. Here the restore is skipped when the connection is gone, and any other use of a
closed channel raises a connection error, which Celery logs and survives. Nothing is lost: those
messages stay in Redis's unacked set and come back after the visibility timeout (tasks are idempotent),
and what they stood for is in the journal anyway (pending rows are rescheduled by the next event or the
safety net, docs/runner.md).
The settings select this transport for redis:// and rediss:// broker URLs (config/settings/base.py).
"""

import logging

from kombu.transport import redis
from redis.exceptions import ConnectionError as RedisConnectionError

logger = logging.getLogger(__name__)


class QoS(redis.QoS):
    def restore_unacked(self, client=None):
        if client is None and (self.channel.connection is None or self.channel.connection.client is None):
            logger.warning(
                "celery.broker.restore_skipped",
                extra={"unacked": len(self._delivered), "reason": "connection already closed"},
            )
            self._delivered.clear()
            return
        super().restore_unacked(client)


class Channel(redis.Channel):
    QoS = QoS

    def _connparams(self, asynchronous=False):
        if self.connection is None or self.connection.client is None:
            raise RedisConnectionError("this broker channel's connection is closed")
        return super()._connparams(asynchronous)


class Transport(redis.Transport):
    Channel = Channel
