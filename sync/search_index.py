"""Message-text search entries for what the sync inserts (ADR-10).

``index_new_messages`` runs inside each batch's transaction: a batch that inserted at most
``INLINE_LIMIT`` messages (live traffic, small backfills, the row-by-row retry) gets its search entries
at once, so live messages are searchable when they appear; a larger one (a history chunk) only records a
``SearchBacklog`` row with the primary-key range its COPY took, which costs one insert instead of the
trigram indexing of every message on the ingest path (its cost: docs/measurements.md).

``index_search_backlog`` works the backlog off afterwards, ``SLICE`` ids per transaction, under the
connection's journal lock (so it never interleaves with the edits, revokes and merges of that
connection's processor) and giving way to the journal: before each slice it checks for due journal rows
and returns ``more`` so the caller processes them first. ``sync.tasks.process_journal_task`` calls it
after the journal is drained; the beat safety net picks up backlogs older than 30 s.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.db import transaction

from inbox.search import index_connection_messages, index_message_range
from sync.models import SearchBacklog

logger = logging.getLogger(__name__)

INLINE_LIMIT = 500  # a live batch is a handful of messages; a history chunk thousands
SLICE = 20_000  # primary-key ids per transaction: a fraction of a second of trigram indexing (docs/measurements.md)


def index_new_messages(conn, inserted_external_ids: list[str], id_range: tuple[int, int] | None) -> None:
    """Search entries for the messages a batch just inserted (call inside its transaction).

    ``id_range``: ``(after_id, through_id)`` of the batch's COPY when known (PostgreSQL); without it the
    messages are indexed at once whatever their number (SQLite, a laptop's volumes)."""
    if not inserted_external_ids:
        return
    if id_range is None or len(inserted_external_ids) <= INLINE_LIMIT:
        index_connection_messages(conn.pk, inserted_external_ids)
        return
    SearchBacklog.objects.create(tenant_id=conn.tenant_id, connection_id=conn.pk, after_id=id_range[0],
                                 through_id=id_range[1], messages=len(inserted_external_ids))


@dataclass
class IndexSummary:
    connection_id: int
    slices: int = 0
    indexed: int = 0
    busy: bool = False  # another process holds the journal lock (it re-checks before letting go)
    more: bool = False  # journal rows are due, or the time budget ran out: come back

    def as_dict(self) -> dict:
        return {"connection_id": self.connection_id, "slices": self.slices, "indexed": self.indexed,
                "busy": self.busy, "more": self.more}


def has_backlog(connection_id: int) -> bool:
    return SearchBacklog.objects.unscoped().filter(connection_id=connection_id).exists()


def index_search_backlog(connection_id: int, *, wait: bool = False, time_budget: float | None = None,
                         yield_to_journal: bool = True) -> IndexSummary:
    """Add the search entries of the connection's backlog, oldest batch first, one slice per transaction.

    ``wait``: block on the journal lock instead of returning ``busy``. ``yield_to_journal``: stop (with
    ``more``) when journal rows are due, so live messages are not held up behind a history backlog."""
    from sync.processor import has_due_rows
    from sync.statements import journal_lock

    summary = IndexSummary(connection_id)
    deadline = None if time_budget is None else time.monotonic() + time_budget
    started = time.perf_counter()
    while True:
        with journal_lock(connection_id, wait) as got:
            if not got:
                summary.busy = True
                break
            if yield_to_journal and has_due_rows(connection_id):
                summary.more = True
                break
            if deadline is not None and time.monotonic() > deadline:
                summary.more = has_backlog(connection_id)
                break
            with transaction.atomic():
                item = (SearchBacklog.objects.unscoped().select_for_update().filter(connection_id=connection_id)
                        .order_by("id").first())
                if item is None:
                    break
                upto = min(item.through_id, item.after_id + SLICE)
                summary.indexed += index_message_range(connection_id, item.after_id, upto)
                summary.slices += 1
                if upto >= item.through_id:
                    item.delete()
                else:
                    item.after_id = upto
                    item.save(update_fields=["after_id"])
    if summary.slices:
        logger.info("sync.search.indexed", extra={**summary.as_dict(),
                                                  "seconds": round(time.perf_counter() - started, 3)})
    return summary
