"""The live sweep: a flood of small live events from many numbers, processed in one transaction.

The per-connection processor (sync/processor.py) costs a fixed ~30 statements per batch around the
ingest itself (locks, row planning, runs, accounting, marking, publishing). At a few messages per
number per batch that fixed cost is the whole bill: with 100 busy numbers it meant ~100 tasks and
~3,000 statements where a few dozen do. ``sweep_live`` does the bookkeeping for every connection with
due live rows at once (PostgreSQL):

1. the oldest pending rows of any connection, in journal order, up to ``SWEEP_ROWS``;
2. in one transaction from here on: the journal locks of their connections in one statement
   (``pg_try_advisory_xact_lock``, released by the commit or the rollback: a connection that another
   processor holds, e.g. in a history sync, is left to it);
3. their open runs in one query; the rows decoded; each connection's rows up to the first one that is
   not a plain live event (a history chunk, a catch-up boundary, a row that does not decode, or any row
   while the connection has an open catch-up run) — those connections are handed to the
   per-connection processor, which keeps their order;
4. ``ingest_many`` per tenant (one set of statements for all its numbers, one publish), then the
   runs' figures and the rows' state in one message, and one commit. After the commit the sweep sends
   the thread fragments and, when the tenant's list gate is free, the conversation-list rows itself.

Any error rolls the whole sweep back and hands its connections to the per-connection processor, whose
row-by-row retry isolates the culprit. The journal stays the source of truth either way.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from django.conf import settings
from django.db import connection as db
from django.db import transaction
from django.utils import timezone

from connections.models import Connection
from sync.decode import Decoded
from sync.ingest import ingest_many
from sync.models import RawEvent, SyncRun
from sync.processor import DECODE_AHEAD_BYTES, LIVE_RUN_SPAN, decode_row, log_item_failures, open_run, row_note
from sync.statements import BATCH_SETTINGS, LOCK_NAMESPACE, pg_array

logger = logging.getLogger(__name__)
SWEEP_ROWS = 2000  # pending rows looked at per sweep (oldest first)
PER_CONNECTION = 200
SMALL_ROUND = SWEEP_ROWS // 10  # rows: a round with fewer is followed by a pause (sweep_live)


class _Row(NamedTuple):
    """A journal row as the sweep reads it (the names of ``RawEvent``'s columns, for ``log_item_failures``)."""

    pk: int
    connection_id: int
    event_name: str
    payload: bytes
    received_at: datetime


@dataclass
class SweepSummary:
    sweeps: int = 0
    connections: int = 0
    processed: int = 0
    saved: int = 0
    duplicates: int = 0
    handed_over: set[int] = field(default_factory=set)  # connections left to the per-connection processor
    more: bool = False

    def as_dict(self) -> dict:
        return {"sweeps": self.sweeps, "connections": self.connections, "processed": self.processed,
                "saved": self.saved, "duplicates": self.duplicates, "handed_over": sorted(self.handed_over),
                "more": self.more}


def sweep_live(time_budget: float = 30.0, shard: int = 0, shards: int = 1, pause: float | None = None) -> SweepSummary:
    """Sweep the connections of one shard (``connection_id % shards == shard``; by default all of them)
    until no plain live row is due or the time budget is spent (``more`` says which).

    After a round of fewer than ``SMALL_ROUND`` rows the sweep waits ``pause`` seconds
    (``LIVE_SWEEP_PAUSE_SECONDS``) before it looks again. Back to back, small rounds cost their fixed share (about 20
    statements, a commit, a publish) again and again: in a flood of 2,000 msg/s the rounds kept the machine's
    two cores busy whatever they cost, and the runner's children and the socket server waited for them. With a
    30 ms pause the same flood took 0.84-0.88 ms of CPU per message instead of 0.91 and its p99 fell in 6 of 7
    pairs (docs/measurements.md). A message that comes during the pause waits for it; a quiet number's message
    is not held (it starts a sweep whose round takes it at once; the pause comes after)."""
    pause = settings.LIVE_SWEEP_PAUSE_SECONDS if pause is None else pause
    summary = SweepSummary()
    deadline = time.monotonic() + time_budget
    while True:
        before = summary.processed
        did = _sweep_once(summary, shard, shards)
        summary.sweeps += 1
        if not did:
            return summary
        if time.monotonic() > deadline:
            summary.more = True
            return summary
        if pause > 0 and summary.processed - before < SMALL_ROUND:
            time.sleep(pause)


def _due_rows(shard: int, shards: int) -> dict[int, list[tuple[int, int]]]:
    """connection id -> [(row id, payload size)] of the shard's oldest pending rows, in journal order, at
    most ``PER_CONNECTION`` per connection (so one number's backlog never hides the others'). Read through
    the partial index of due rows (``rawevent_due``) by a plain index scan: on statistics taken while most
    rows were pending, the planner read the whole journal (growing by 2,000 rows a second in bench/flood.py:
    12-23 ms a sweep, and more each second), then, with sequential scans off, a bitmap scan of the index, which
    visits the heap for every entry of a row processed since the last vacuum (6.6 ms a sweep); a plain index
    scan skips the entries it has found dead before (docs/measurements.md).

    The settings and the query go in one round trip: statements sent together run as one transaction, so
    ``SET LOCAL`` holds for the query and ends with it (one message instead of BEGIN, two SETs, the query and
    COMMIT: a flood's sweep comes here dozens of times a second)."""
    with db.cursor() as cursor:
        cursor.execute(
            "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; "  # noqa: S608
            "SELECT id, connection_id, size FROM (SELECT id, connection_id, octet_length(payload) AS size, "
            "row_number() OVER (PARTITION BY connection_id ORDER BY id) AS n "
            f"FROM {RawEvent._meta.db_table} WHERE state = %s AND connection_id %% %s = %s) AS t "
            "WHERE n <= %s ORDER BY id LIMIT %s",
            [RawEvent.State.PENDING, shards, shard, PER_CONNECTION, SWEEP_ROWS])
        rows = _rows_after_settings(cursor)
    by_connection: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for row_id, cid, size in rows:
        by_connection[cid].append((row_id, size or 0))
    return by_connection


def _rows_after_settings(cursor) -> list[tuple]:
    """The rows of a message whose ``SET LOCAL`` statements came before its query: past their empty results."""
    while cursor.description is None and cursor.nextset():
        pass
    return cursor.fetchall()


def _lock_for_this_transaction(connection_ids: list[int]) -> list[int]:
    """Of these connections, the ones whose journal lock is free, locked until this transaction ends
    (``pg_try_advisory_xact_lock``: the commit or the rollback lets go, no unlock statement; it conflicts
    with the per-connection processor's session lock on the same key as a session lock would). The
    batch's settings (``batch_settings``) go in the same message."""
    with db.cursor() as cursor:
        cursor.execute(f"{BATCH_SETTINGS}; "  # noqa: S608 - a constant
                       "SELECT c FROM unnest(%s::bigint[]) AS c WHERE pg_try_advisory_xact_lock(%s, c::int)",
                       [pg_array(connection_ids), LOCK_NAMESPACE])
        return [row[0] for row in _rows_after_settings(cursor)]


def _sweep_once(summary: SweepSummary, shard: int, shards: int) -> bool:
    """One transaction over every lockable connection's plain live rows; True if it processed any."""
    due = _due_rows(shard, shards)
    if not due:
        return False
    plain: dict[int, list[int]] = {}
    for cid, rows in due.items():
        ids = []
        for row_id, size in rows:
            if size >= DECODE_AHEAD_BYTES:  # a history chunk: the per-connection processor's job
                break
            ids.append(row_id)
        if len(ids) < len(rows):
            summary.handed_over.add(cid)
        if ids:
            plain[cid] = ids
    if not plain:
        _hand_over(summary.handed_over)
        return False
    locked: list[int] = []  # filled by _sweep_locked once it holds their locks
    try:
        processed = _sweep_locked(locked, plain, summary)
    except Exception:
        logger.exception("sync.sweep.failed", extra={"connection_ids": locked})
        summary.handed_over.update(locked)
        processed = 0
    _hand_over(summary.handed_over)
    return processed > 0


def _hand_over(connection_ids: set[int]) -> None:
    if connection_ids:
        from sync.journal import schedule_processing_many

        schedule_processing_many(sorted(connection_ids))


def _sweep_locked(locked: list[int], plain: dict[int, list[int]], summary: SweepSummary) -> int:
    """One transaction: the journal locks of ``plain``'s connections that are free (added to ``locked``),
    then their rows. Every lock ends with the transaction, whatever happens."""
    now = timezone.now()
    with transaction.atomic():
        locked.extend(_lock_for_this_transaction(sorted(plain)))
        if not locked:
            return 0
        conns = {c.pk: c for c in Connection.objects.unscoped().filter(pk__any=locked)}
        # (connection, kind, started, id) of the open runs, oldest first: a later live run of a connection wins
        open_runs = sorted(SyncRun.objects.unscoped().filter(
            connection_id__any=locked, finished_at__isnull=True, kind__in=[SyncRun.Kind.LIVE, SyncRun.Kind.CATCHUP],
        ).values_list("connection_id", "kind", "started_at", "id"), key=lambda r: r[2])
        in_catchup = {cid for cid, kind, _, _ in open_runs if kind == SyncRun.Kind.CATCHUP}
        live_run = {cid: run_id for cid, kind, started, run_id in open_runs
                    if kind == SyncRun.Kind.LIVE and now - started <= LIVE_RUN_SPAN}
        ids = [i for cid in locked if cid in conns and cid not in in_catchup for i in plain[cid]]
        summary.handed_over.update(cid for cid in locked if cid in in_catchup)
        # Tuples, not model instances: a round reads up to SWEEP_ROWS rows and needs five of their columns.
        rows = map(_Row._make, RawEvent.objects.unscoped().select_for_update(skip_locked=True)
                   .filter(pk__any=ids, state=RawEvent.State.PENDING).order_by("id").values_list(*_Row._fields))
        work: dict[int, list[tuple[_Row, Decoded]]] = defaultdict(list)
        stopped: set[int] = set()
        for row in rows:
            cid = row.connection_id
            if cid in stopped:
                continue
            decoded = decode_row(row.event_name, row.payload, row.received_at)
            if isinstance(decoded, str) or decoded.history is not None or decoded.catchup_started or decoded.catchup_finished:
                stopped.add(cid)  # from here on, in order, the per-connection processor's job
                continue
            decoded.raw_event_id = row.pk
            work[cid].append((row, decoded))
        summary.handed_over.update(stopped)
        run_rows: list[tuple] = []  # (run id, received, saved, duplicates, failed)
        marks: list[tuple[int, int, str]] = []  # (row id, run id, note)
        by_tenant: dict[int, list[int]] = defaultdict(list)
        for cid in work:
            by_tenant[conns[cid].tenant_id].append(cid)
        for tenant_id, cids in by_tenant.items():
            # The list rows are flushed here after the commit (at most every LIST_FLUSH_INTERVAL per tenant):
            # as Celery tasks they waited for a sweep task to end, every ~2 s in a flood (ADR-7 amended).
            results = ingest_many(tenant_id, [(conns[cid], [d for _, d in work[cid]]) for cid in cids],
                                  list_rows_here=True)
            for cid, result in zip(cids, results, strict=True):
                conn = conns[cid]
                run_id = live_run.get(cid) or open_run(conn, SyncRun.Kind.LIVE).pk
                if result.skipped or result.refused:
                    _account_dicts(run_id, result)
                run_rows.append((run_id, result.received, result.saved, result.duplicates,
                                 result.failed))
                for row, decoded in work[cid]:
                    marks.append((row.pk, run_id, row_note(decoded, result.notes.get(row.pk))))
                    if decoded.failures:
                        log_item_failures(conn, row, decoded)
                summary.saved += result.saved
                summary.duplicates += result.duplicates
        _account_and_mark(run_rows, marks, now)
    summary.connections += len(work)
    summary.processed += len(marks)
    return len(marks)


def _account_and_mark(run_rows: list[tuple], marks: list[tuple[int, int, str]], now) -> None:
    """Add each run's figures and mark the rows processed: two UPDATEs, sent as one message (the per-connection
    processor locks and saves each run)."""
    statements, params = [], []
    if run_rows:
        statements.append(
            f"UPDATE {SyncRun._meta.db_table} AS r SET received = r.received + v.received, "  # noqa: S608
            "saved = r.saved + v.saved, duplicates = r.duplicates + v.duplicates, failed = r.failed + v.failed, "
            "last_activity_at = %s "
            "FROM (SELECT unnest(%s::bigint[]) AS id, unnest(%s::int[]) AS received, unnest(%s::int[]) AS saved, "
            "unnest(%s::int[]) AS duplicates, unnest(%s::int[]) AS failed) AS v WHERE r.id = v.id")
        params += [now, *map(pg_array, zip(*run_rows, strict=True))]
    if marks:
        statements.append(
            f"UPDATE {RawEvent._meta.db_table} AS e SET state = %s, processed_at = %s, sync_run_id = v.run, "  # noqa: S608
            "error = v.note FROM (SELECT unnest(%s::bigint[]) AS id, unnest(%s::bigint[]) AS run, "
            "unnest(%s::text[]) AS note) AS v WHERE e.id = v.id")
        params += [RawEvent.State.PROCESSED, now, *map(pg_array, zip(*marks, strict=True))]
    if statements:
        with db.cursor() as cursor:
            cursor.execute("; ".join(statements), params)


def _account_dicts(run_id: int, result) -> None:
    """The per-reason counters (skipped, refused) of one run, merged under its row lock (rare in live
    traffic: a status broadcast, a refused operation)."""
    run = SyncRun.objects.unscoped().select_for_update().get(pk=run_id)
    for name in ("skipped", "refused"):
        merged = dict(getattr(run, name))
        for reason, n in getattr(result, name).items():
            merged[reason] = merged.get(reason, 0) + n
        setattr(run, name, merged)
    run.save(update_fields=["skipped", "refused"])
