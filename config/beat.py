"""Beat's scheduler: django-celery-beat's database scheduler that also marks each tick in Redis, so
``/health/detailed`` and the watchdog can tell a running beat from a dead one (config/heartbeats.py)."""

import logging
import time

from django_celery_beat.schedulers import DatabaseScheduler

from config import heartbeats

logger = logging.getLogger(__name__)
MARK_EVERY = 5.0  # seconds between two marks; beat may tick much more often


class Scheduler(DatabaseScheduler):
    _last_mark = 0.0

    def tick(self, *args, **kwargs):
        now = time.monotonic()
        if now - self._last_mark >= MARK_EVERY:
            try:
                heartbeats.mark_beat_tick()
                self._last_mark = now
            except Exception as exc:  # noqa: BLE001 - Redis down: beat keeps scheduling (its broker is down anyway)
                logger.warning("beat.mark_failed", extra={"error": exc.__class__.__name__})
        # Tick at least every MARK_EVERY seconds, so a quiet schedule still shows beat alive.
        return min(super().tick(*args, **kwargs), MARK_EVERY)
