"""Journal retention: processed raw events older than ``JOURNAL_RETENTION_DAYS`` are deleted, in batches.

The journal is what makes loss impossible while an event waits to be processed; once processed, its rows
are kept for replays (``replay_events``, "replay the journal with the new filters") and then pruned so the
table does not grow forever. Only ``processed`` rows go, by ``processed_at``: pending, failed and
quarantined rows are kept whatever their age (they are someone's work still to do).

What pruning costs: a replay reaches back ``JOURNAL_RETENTION_DAYS`` at most (messages already stored
stay stored; a replay with new filters cannot bring back what an old filter skipped beyond that), and an
event WhatsApp delivers again after its row was pruned is journaled and processed again, which ingestion's
idempotence makes a no-op. ``JOURNAL_RETENTION_DAYS=0`` keeps everything.

Batches: one connection at a time, at most ``JOURNAL_PRUNE_BATCH`` rows a statement, each in its own
transaction (short locks, no long-running delete beside the ingest), until the time budget runs out;
beat's next run carries on.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from sync.models import RawEvent

logger = logging.getLogger(__name__)


@dataclass
class PruneSummary:
    deleted: int = 0
    connections: dict = field(default_factory=dict)
    more: bool = False
    cutoff: str = ""

    def as_dict(self) -> dict:
        return {"deleted": self.deleted, "connections": self.connections, "more": self.more, "cutoff": self.cutoff}


def retention_cutoff():
    days = settings.JOURNAL_RETENTION_DAYS
    return None if days <= 0 else timezone.now() - timedelta(days=days)


def prune_processed_events(*, cutoff=None, batch: int | None = None, time_budget: float | None = None) -> PruneSummary:
    """Delete processed journal rows whose ``processed_at`` is before ``cutoff`` (default: the setting)."""
    cutoff = cutoff or retention_cutoff()
    summary = PruneSummary(cutoff=cutoff.isoformat() if cutoff else "")
    if cutoff is None:
        return summary
    batch = batch or settings.JOURNAL_PRUNE_BATCH
    started = time.monotonic()
    old = RawEvent.objects.unscoped().filter(state=RawEvent.State.PROCESSED, processed_at__lt=cutoff)
    for connection_id in old.values_list("connection_id", flat=True).distinct().order_by("connection_id"):
        while True:
            if time_budget is not None and time.monotonic() - started > time_budget:
                summary.more = True
                break
            with transaction.atomic():
                ids = list(old.filter(connection_id=connection_id).order_by("id").values_list("id", flat=True)[:batch])
                if ids:
                    # The ORM's delete: pending operations naming these rows get raw_event = NULL (SET_NULL).
                    RawEvent.objects.unscoped().filter(pk__in=ids).delete()
            summary.deleted += len(ids)
            if ids:
                summary.connections[connection_id] = summary.connections.get(connection_id, 0) + len(ids)
            if len(ids) < batch:
                break
        if summary.more:
            break
    if summary.deleted:
        logger.info("sync.journal.pruned", extra=summary.as_dict())
    return summary
