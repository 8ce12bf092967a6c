"""Writes of the sync engine that commands, admin and tasks call (``do_*``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from django.db import transaction

from connections.models import Connection
from sync.capture import CaptureError, decode_line
from sync.journal import journal_events
from sync.models import RawEvent, SyncRun
from sync.processor import finish_run, process_pending, requeue, start_run
from sync.search_index import index_search_backlog

logger = logging.getLogger(__name__)

JOURNAL_CHUNK = 500


def do_import_capture(conn: Connection, path: str | Path, *, on_progress: Callable[[int, int], None] | None = None,
                      batch_size: int = 50) -> dict:
    """Journal every event of a capture file, then process the connection's journal.

    Safe to run again and from several processes at once: journaling is idempotent (unique digest)
    and processing is serialised by the journal lock. Lines that are not capture lines are reported
    with their line numbers and journal nothing; every other line is journaled.
    """
    path = Path(path)
    total_lines = sum(1 for line in path.open(encoding="utf-8", errors="replace") if line.strip())
    bad_lines: list[str] = []
    journaled = seen = 0
    chunk: list[tuple[str, bytes, datetime | None]] = []

    def flush():
        nonlocal journaled
        if chunk:
            journaled += journal_events(conn.pk, chunk, schedule=False)
            chunk.clear()

    with path.open(encoding="utf-8", errors="surrogateescape") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            seen += 1
            try:
                ev = decode_line(line, line_no)
            except (CaptureError, UnicodeError) as exc:
                bad_lines.append(str(exc))
                continue
            chunk.append((ev.event_name, ev.payload, ev.received_at))
            if len(chunk) >= JOURNAL_CHUNK:
                flush()
                if on_progress:
                    on_progress(seen, total_lines)
    flush()
    if on_progress:
        on_progress(seen, total_lines)
    with transaction.atomic():
        run = start_run(conn, SyncRun.Kind.IMPORT, sync_type=path.name[:32])
    summary = process_pending(conn.pk, batch_size=batch_size, run=run, wait=True)
    with transaction.atomic():
        run = finish_run(run)
    # Everything imported is searchable when the command returns (history batches wait in the backlog).
    indexed = index_search_backlog(conn.pk, wait=True, yield_to_journal=False)
    out = {
        "connection": conn.pk, "file": str(path), "lines": seen, "bad_lines": bad_lines, "journaled": journaled,
        "already_journaled": seen - len(bad_lines) - journaled, **_summary_fields(summary), "run": run.pk,
        "discrepancy": run.discrepancy, "search_indexed": indexed.indexed,
    }
    logger.info("sync.import.finished", extra={k: v for k, v in out.items() if k != "bad_lines"})
    return out


def do_replay(conn: Connection, *, since: datetime | None = None, until: datetime | None = None,
              failed_only: bool = False, batch_size: int = 50) -> dict:
    """Put a range of the connection's journal back to pending and process it (idempotent)."""
    qs = RawEvent.objects.unscoped().filter(connection=conn)
    if since is not None:
        qs = qs.filter(received_at__gte=since)
    if until is not None:
        qs = qs.filter(received_at__lt=until)
    if failed_only:
        qs = qs.filter(state__in=[RawEvent.State.FAILED, RawEvent.State.QUARANTINED])
    with transaction.atomic():
        requeued = requeue(qs)
        run = start_run(conn, SyncRun.Kind.REPLAY)
    summary = process_pending(conn.pk, batch_size=batch_size, run=run, wait=True)
    with transaction.atomic():
        run = finish_run(run)
    indexed = index_search_backlog(conn.pk, wait=True, yield_to_journal=False)
    return {"connection": conn.pk, "requeued": requeued, **_summary_fields(summary), "run": run.pk,
            "discrepancy": run.discrepancy, "search_indexed": indexed.indexed}


def do_reprocess_events(queryset) -> dict[int, int]:
    """Admin "reprocess": requeue the rows and process each affected connection now."""
    by_connection: dict[int, int] = {}
    for cid in queryset.values_list("connection_id", flat=True).distinct():
        by_connection[cid] = requeue(queryset.filter(connection_id=cid))
    for cid in by_connection:
        process_pending(cid, wait=True)
        index_search_backlog(cid, wait=True, yield_to_journal=False)
    return by_connection


def do_index_search_backlogs(connection_ids) -> int:
    """Admin "index now": work off these connections' search backlogs at once; returns entries added."""
    return sum(index_search_backlog(cid, wait=True, yield_to_journal=False).indexed
               for cid in sorted(set(connection_ids)))


def _summary_fields(summary) -> dict:
    return {k: getattr(summary, k) for k in ("processed", "failed", "quarantined", "received", "saved", "duplicates",
                                             "skipped", "items_failed", "refused")}


def do_record_jid_mappings(conn: Connection, pairs) -> dict:
    """LID <-> phone-number pairs read from whatsmeow's store (``get_pn_from_lid``) by the runner:
    stored, and contacts/conversations already split across the two merged, in one transaction."""
    from sync.identity import is_lid, is_pn, normalize_jid
    from sync.ingest import ingest
    from sync.records import Decoded

    mappings = []
    for pn, lid in pairs:
        pn, lid = normalize_jid(pn), normalize_jid(lid)
        if not (is_pn(pn) and is_lid(lid)):
            raise ValueError(f"not a (phone JID, LID) pair: {pn!r}, {lid!r}")
        mappings.append((pn, lid))
    with transaction.atomic():
        result = ingest(conn, [Decoded("session_store", mappings=mappings)])
    return {"mappings": len(mappings), "merges": result.merges}
