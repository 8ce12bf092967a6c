"""Processing the journal: RawEvent rows -> decode -> ingest, one transaction per batch.

``process_pending(connection_id)`` is what the Celery task and the management commands call. It
takes the connection's journal lock (a PostgreSQL advisory lock; an exclusive file lock on SQLite),
then repeatedly takes the oldest pending rows (and failed rows whose retry is due), decodes them,
ingests them and marks them processed in the same transaction. A row that cannot be decoded or
ingested keeps its error and attempt count and is retried with backoff; after ``MAX_ATTEMPTS`` it is
quarantined and an Alert is raised, while later rows keep flowing. An item of a row that fails on its
own (a history message without an id, ...) does not fail the row: it is counted as failed, noted on
the processed row and logged (``sync.item.failed``), like a refused operation
(``sync.operation.refused``).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Length
from django.utils import timezone

from config.backoff import backoff
from connections.models import Connection
from inbox.alerts import do_raise_alert, journal_cause
from inbox.events import publish_connection_on_commit
from inbox.models import Alert
from sync import timing
from sync.decode import Decoded, DecodeError, decode_event
from sync.ingest import ingest
from sync.models import RawEvent, SyncRun
from sync.operations import apply_pending_operations
from sync.results import IngestResult
from sync.statements import batch_settings, journal_lock, locked_journal_rows

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
BATCH_SIZE = 50
BATCH_BYTES = 4_000_000  # about 30,000 history messages per transaction
# The next batch is decoded while this one's messages are COPYed (the server's work) when it carries
# at least this much payload: a history backlog, never live traffic.
DECODE_AHEAD_BYTES = 1_000_000
LIVE_RUN_SPAN = timedelta(hours=1)
IDLE_RUN_TIMEOUT = timedelta(minutes=15)


def retry_delay(attempts: int) -> timedelta:
    """Backoff after the n-th failed attempt: 10 s, 40 s, 2.7 min, 10.7 min (then quarantine)."""
    return timedelta(seconds=backoff(attempts, base=10.0, factor=4.0, cap=3600.0))


@dataclass
class Summary:
    connection_id: int
    busy: bool = False
    batches: int = 0
    processed: int = 0
    failed: int = 0  # journal rows
    quarantined: int = 0
    received: int = 0
    saved: int = 0
    duplicates: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    items_failed: int = 0  # items of processed rows that failed on their own
    refused: dict[str, int] = field(default_factory=dict)
    run_ids: list[int] = field(default_factory=list)
    more: bool = False  # stopped by the time budget with due rows left

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def add(self, rows: int, result, run_id: int) -> None:
        """Count ``rows`` journal rows processed into run ``run_id`` with what ingesting them did."""
        self.processed += rows
        self.received += result.received
        self.saved += result.saved
        self.duplicates += result.duplicates
        self.items_failed += result.failed
        for reason, n in result.skipped.items():
            self.skipped[reason] = self.skipped.get(reason, 0) + n
        for reason, n in result.refused.items():
            self.refused[reason] = self.refused.get(reason, 0) + n
        if run_id not in self.run_ids:
            self.run_ids.append(run_id)


# --- runs ---------------------------------------------------------------------------------------


def start_run(conn: Connection, kind: str, sync_type: str = "") -> SyncRun:
    now = timezone.now()
    run = SyncRun.objects.create(tenant_id=conn.tenant_id, connection=conn, kind=kind, sync_type=sync_type,
                                 started_at=now, last_activity_at=now)
    logger.info("sync.run.started", extra={"run_id": run.pk, "connection_id": conn.pk, "tenant_id": conn.tenant_id,
                                           "kind": kind, "sync_type": sync_type})
    return run


def finish_run(run: SyncRun) -> SyncRun:
    """Close a run, check its books, log the end; a discrepancy is an ERROR and an Alert."""
    run.refresh_from_db()
    if run.finished_at is not None:
        return run
    run.finished_at = timezone.now()
    run.discrepancy = not run.balanced
    run.save(update_fields=["finished_at", "discrepancy"])
    fields = {"run_id": run.pk, "connection_id": run.connection_id, "tenant_id": run.tenant_id, "kind": run.kind,
              "sync_type": run.sync_type, "chunks": run.chunks, "progress": run.progress, "received": run.received,
              "saved": run.saved, "duplicates": run.duplicates, "skipped": run.skipped, "failed": run.failed,
              "refused": run.refused, "discrepancy": run.discrepancy,
              "duration_s": round((run.finished_at - run.started_at).total_seconds(), 3)}
    if run.discrepancy:
        logger.error("sync.run.discrepancy", extra=fields)
        Alert.objects.create(
            tenant_id=run.tenant_id, connection_id=run.connection_id, kind=Alert.Kind.SYNC_DISCREPANCY,
            message=(f"{run} received {run.received} but saved {run.saved} + duplicates {run.duplicates} + "
                     f"skipped {run.skipped_total} + failed {run.failed}"),
        )
    logger.info("sync.run.finished", extra=fields)
    publish_connection_on_commit(run.tenant_id, run.connection_id, background=True)
    return run


def open_run(conn: Connection, kind: str, sync_type: str = "") -> SyncRun:
    run = (SyncRun.objects.unscoped().filter(connection=conn, kind=kind, finished_at__isnull=True)
           .order_by("-started_at").first())
    if run is not None and kind == SyncRun.Kind.LIVE and timezone.now() - run.started_at > LIVE_RUN_SPAN:
        finish_run(run)
        run = None
    return run or start_run(conn, kind, sync_type)


def finish_idle_runs(connection_id: int | None = None) -> int:
    """Close history/catch-up runs that saw nothing for a while and live runs past their span."""
    now = timezone.now()
    qs = SyncRun.objects.unscoped().filter(finished_at__isnull=True).filter(
        Q(kind=SyncRun.Kind.LIVE, started_at__lt=now - LIVE_RUN_SPAN)
        | Q(~Q(kind=SyncRun.Kind.LIVE), last_activity_at__lt=now - IDLE_RUN_TIMEOUT)
    )
    if connection_id is not None:
        qs = qs.filter(connection_id=connection_id)
    n = 0
    for run in qs:
        with transaction.atomic():
            finish_run(run)
        n += 1
    return n


class _RunRouter:
    """Which SyncRun each event is accounted to: the explicit run of a command (import/replay), or
    the open history run for history chunks, the open catch-up run between OfflineSyncPreview and
    OfflineSyncCompleted, else the connection's live run."""

    def __init__(self, conn: Connection, explicit: SyncRun | None):
        self.conn = conn
        self.explicit = explicit
        self.closed: set[int] = set()  # catch-up runs that saw OfflineSyncCompleted in this batch
        self._cache: dict[str, SyncRun | None] = {}

    def begin_batch(self) -> None:
        """Runs are looked up once per batch, not once per journal row."""
        self._cache = {}
        self.closed = set()

    def run_for(self, decoded: Decoded | None) -> SyncRun:
        if self.explicit is not None:
            return self.explicit
        cache = self._cache
        if decoded is not None and decoded.history is not None:
            kind = SyncRun.Kind.ON_DEMAND if decoded.history.sync_type == "ON_DEMAND" else SyncRun.Kind.HISTORY
            if kind not in cache:
                cache[kind] = open_run(self.conn, kind, decoded.history.sync_type)
            return cache[kind]
        if decoded is not None and decoded.catchup_started:
            for old in SyncRun.objects.unscoped().filter(connection=self.conn, kind=SyncRun.Kind.CATCHUP,
                                                         finished_at__isnull=True):
                finish_run(old)
            cache[SyncRun.Kind.CATCHUP] = start_run(self.conn, SyncRun.Kind.CATCHUP)
            return cache[SyncRun.Kind.CATCHUP]
        if SyncRun.Kind.CATCHUP not in cache:
            cache[SyncRun.Kind.CATCHUP] = (SyncRun.objects.unscoped().filter(connection=self.conn, kind=SyncRun.Kind.CATCHUP,
                                                                  finished_at__isnull=True).order_by("-started_at").first())
        catchup = cache[SyncRun.Kind.CATCHUP]
        if catchup is not None and catchup.pk not in self.closed:
            return catchup
        if SyncRun.Kind.LIVE not in cache:
            cache[SyncRun.Kind.LIVE] = open_run(self.conn, SyncRun.Kind.LIVE)
        return cache[SyncRun.Kind.LIVE]


def _account(run: SyncRun, result: IngestResult | None, decoded: list[Decoded], failed: int) -> None:
    """Add a segment's figures to its run (row locked: several processes may import at once)."""
    run = SyncRun.objects.unscoped().select_for_update().get(pk=run.pk)
    if result is not None:
        run.received += result.received
        run.saved += result.saved
        run.duplicates += result.duplicates
        skipped = dict(run.skipped)
        for reason, n in result.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + n
        run.skipped = skipped
        run.failed += result.failed
        if result.refused:
            refused = dict(run.refused)
            for reason, n in result.refused.items():
                refused[reason] = refused.get(reason, 0) + n
            run.refused = refused
    run.received += failed
    run.failed += failed
    progress_changed = False
    for d in decoded:
        if d.history is not None:
            run.chunks += 1
            run.sync_type = run.sync_type or d.history.sync_type
            if d.history.chunk_order is not None:
                run.last_chunk_order = d.history.chunk_order
            if d.history.progress is not None:
                run.progress = d.history.progress
            progress_changed = True
    run.last_activity_at = timezone.now()
    run.save(update_fields=["received", "saved", "duplicates", "skipped", "failed", "refused", "chunks", "sync_type",
                            "last_chunk_order", "progress", "last_activity_at"])
    if progress_changed:
        publish_connection_on_commit(run.tenant_id, run.connection_id, background=True)


# --- processing ---------------------------------------------------------------------------------


def _due_rows(connection_id: int):
    now = timezone.now()
    return RawEvent.objects.unscoped().filter(connection_id=connection_id).filter(
        Q(state=RawEvent.State.PENDING) | Q(state=RawEvent.State.FAILED, next_attempt_at__lte=now)
    )


def has_due_rows(connection_id: int) -> bool:
    return _due_rows(connection_id).exists()


def process_pending(connection_id: int, batch_size: int = BATCH_SIZE, *, run: SyncRun | None = None,
                    wait: bool = False, max_batches: int | None = None, time_budget: float | None = None) -> Summary:
    """Process the connection's due journal rows in journal order; returns what happened.

    ``wait``: block until the journal lock is free (commands) instead of returning ``busy`` (tasks:
    whoever holds the lock re-checks for new rows before letting go). ``run``: account everything
    to this SyncRun (import/replay) instead of history/catch-up/live runs. ``time_budget``: stop
    taking new batches after this many seconds (``summary.more`` tells the caller to come back).
    """
    summary = Summary(connection_id)
    conn = Connection.objects.unscoped().get(pk=connection_id)
    deadline = None if time_budget is None else time.monotonic() + time_budget
    while True:
        with journal_lock(connection_id, wait) as got:
            if not got:
                summary.busy = True
                return summary
            with transaction.atomic():
                apply_pending_operations(conn)
            router = _RunRouter(conn, run)
            batches = JournalBatches(connection_id, batch_size)
            while max_batches is None or summary.batches < max_batches:
                if deadline is not None and time.monotonic() > deadline:
                    summary.more = has_due_rows(connection_id)
                    return summary
                last = max_batches is not None and summary.batches + 1 >= max_batches
                batch = batches.take(read_ahead=not last)
                if batch is None:
                    break
                _process_batch(conn, batch, router, summary, batches.beside_copy())
                summary.batches += 1
        # Rows journaled while we held the lock whose task found it busy: pick them up now.
        if (max_batches is not None and summary.batches >= max_batches) or not has_due_rows(connection_id):
            break
    return summary


def _plan_batch(connection_id: int, batch_size: int, after: int | None = None) -> tuple[list[int], int]:
    """The next batch of due rows in journal order (after row ``after`` if given): at most
    ``batch_size`` rows and about ``BATCH_BYTES`` of payload (a history chunk can carry thousands of
    messages). Returns the ids and their payload bytes."""
    due = _due_rows(connection_id)
    if after is not None:
        due = due.filter(pk__gt=after)
    planned = due.order_by("id").annotate(size=Length("payload")).values_list("id", "size")[:batch_size]
    batch, size = [], 0
    for row_id, n in planned:
        if batch and size + (n or 0) > BATCH_BYTES:
            break
        batch.append(row_id)
        size += n or 0
    return batch, size


@dataclass
class Batch:
    """One transaction's journal rows (ids, in journal order) and those of them decoded ahead:
    row id -> its records, or the error text that fails it (rows missing are decoded inline)."""

    ids: list[int]
    decoded: dict[int, Decoded | str] = field(default_factory=dict)


class JournalBatches:
    """The processor's batch source: a connection's due rows, batch after batch, in journal order.

    When the batch after the one taken carries at least ``DECODE_AHEAD_BYTES`` of payload (a history
    backlog, never live traffic), its rows are read with the one taken, before its transaction, and
    ``beside_copy()`` is the work of decoding them: ``sync.ingest`` runs it while this batch's messages
    are COPYed (the server works, this process decodes; ADR-9). The next ``take`` hands those records
    over. Rows are immutable once journaled; their state is checked again when their batch is locked."""

    def __init__(self, connection_id: int, batch_size: int):
        self.connection_id = connection_id
        self.batch_size = batch_size
        self._ahead_rows: list[tuple] = []  # (id, event name, payload, received_at) of the next batch
        self._ahead: dict[int, Decoded | str] = {}

    def take(self, *, read_ahead: bool = True) -> Batch | None:
        """The next batch (None when no row is due), with what was decoded of it ahead."""
        ids, _ = _plan_batch(self.connection_id, self.batch_size)
        if not ids:
            return None
        batch = Batch(ids, self._ahead)
        self._ahead, self._ahead_rows = {}, []
        if read_ahead:
            nxt, size = _plan_batch(self.connection_id, self.batch_size, after=ids[-1])
            if nxt and size >= DECODE_AHEAD_BYTES:
                self._ahead_rows = list(RawEvent.objects.unscoped().filter(pk__in=nxt).order_by("id")
                                        .values_list("id", "event_name", "payload", "received_at"))
        return batch

    def beside_copy(self) -> Callable[[], None] | None:
        """The decoding of the next batch's rows, to run beside this batch's COPY (None: nothing to decode)."""
        return self._decode_ahead if self._ahead_rows else None

    def _decode_ahead(self) -> None:
        """Pure CPU, no database access. A row whose decoding raises something unexpected is left out:
        decoded again inline, where the failure is recorded."""
        started = time.perf_counter()
        for row_id, event_name, payload, received_at in self._ahead_rows:
            try:
                self._ahead[row_id] = decode_row(event_name, payload, received_at)
            except Exception:  # noqa: BLE001, S112 - decoded again inline
                continue
        self._ahead_rows = []
        timing.add("decode_beside_copy", time.perf_counter() - started)


def decode_row(event_name: str, payload: bytes, received_at) -> Decoded | str:
    """A journal row's records, or the ``DecodeError`` text that fails the row (both decode paths: ahead
    and inline)."""
    try:
        return decode_event(event_name, payload, received_at)
    except DecodeError as exc:
        return str(exc)


@contextmanager
def _gc_paused():
    """No cyclic garbage collection while a batch is decoded and written: a history batch allocates
    hundreds of thousands of short-lived, acyclic objects (records, row tuples), each allocation burst
    triggered full-generation scans of the whole heap (docs/measurements.md). Whatever cycles the
    batch leaves are collected once it is done."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _process_batch(conn: Connection, batch: Batch, router: _RunRouter, summary: Summary,
                   beside_copy: Callable[[], None] | None = None) -> None:
    with _gc_paused():
        _process_batch_inner(conn, batch, router, summary, beside_copy)


def _process_batch_inner(conn: Connection, batch: Batch, router: _RunRouter, summary: Summary,
                         beside_copy: Callable[[], None] | None) -> None:
    try:
        with transaction.atomic():
            batch_settings()
            _process_rows(conn, batch.ids, router, summary, isolate=False, predecoded=batch.decoded,
                          beside_copy=beside_copy)
            committing = time.perf_counter()
        timing.add("commit", time.perf_counter() - committing)  # COMMIT, then the on-commit publishing
    except Exception as exc:
        if _is_time_limit(exc):
            raise  # the worker is being stopped: the batch rolled back and stays pending, not failed
        logger.exception("sync.batch.failed", extra={"connection_id": conn.pk, "rows": len(batch.ids)})
        # Something in the batch broke ingestion: process row by row so only the culprit fails.
        for row_id in batch.ids:
            try:
                with transaction.atomic():
                    _process_rows(conn, [row_id], router, summary, isolate=True)
            except Exception as exc:  # the row itself cannot be ingested: keep it for retry
                if _is_time_limit(exc):
                    raise
                with transaction.atomic():
                    router.begin_batch()  # runs cached by the rolled-back attempt may not exist
                    row = RawEvent.objects.unscoped().select_for_update().get(pk=row_id)
                    _fail_rows(conn, [(row, f"ingest error: {type(exc).__name__}: {exc}")], router, summary)


def _is_time_limit(exc: BaseException) -> bool:
    # Celery's SoftTimeLimitExceeded derives from Exception; matched by name so this module stays
    # free of Celery.
    return type(exc).__name__ in ("SoftTimeLimitExceeded", "TimeLimitExceeded")


def _process_rows(conn, ids, router, summary, *, isolate: bool, predecoded: dict | None = None,
                  beside_copy: Callable[[], None] | None = None) -> None:
    """``predecoded``: this batch's rows decoded during the previous batch's COPY (rows missing are
    decoded here); ``beside_copy``: the next batch's decoding, run during this one's COPY. The
    row-by-row retry after a failed batch passes neither."""
    predecoded = predecoded or {}
    rows = locked_journal_rows(ids, without_payload=bool(predecoded) and all(i in predecoded for i in ids))
    rows = [r for r in rows if r.state in (RawEvent.State.PENDING, RawEvent.State.FAILED)]
    if not rows:
        return
    router.begin_batch()
    failures = []
    segments: list[tuple[SyncRun, list[tuple[RawEvent, Decoded]]]] = []
    finish_after: list[SyncRun] = []
    for row in rows:
        decoded = _decoded(row, predecoded.get(row.pk), failures)
        if decoded is None:
            continue
        run = router.run_for(decoded)
        if segments and segments[-1][0].pk == run.pk:
            segments[-1][1].append((row, decoded))
        else:
            segments.append((run, [(row, decoded)]))
        if decoded.catchup_finished and run.kind == SyncRun.Kind.CATCHUP:
            finish_after.append(run)
            router.closed.add(run.pk)
    now = timezone.now()
    for run, items in segments:
        result = ingest(conn, [d for _, d in items], beside_copy=beside_copy)
        _account(run, result, [d for _, d in items], 0)
        for row, decoded in items:
            row.state = RawEvent.State.PROCESSED
            row.processed_at = now
            row.sync_run_id = run.pk
            row.error = row_note(decoded, result.notes.get(row.pk))
            if decoded.failures:
                log_item_failures(conn, row, decoded)
        _mark_processed(run, [r for r, _ in items], now)
        summary.add(len(items), result, run.pk)
        refreshed = SyncRun.objects.unscoped().get(pk=run.pk)
        if (router.explicit is None and refreshed.kind in (SyncRun.Kind.HISTORY, SyncRun.Kind.ON_DEMAND)
                and refreshed.progress is not None and refreshed.progress >= 100):
            finish_after.append(refreshed)
    if failures:
        _fail_rows(conn, failures, router, summary)
    for run in finish_after:
        finish_run(run)


def _decoded(row: RawEvent, pre: Decoded | str | None, failures: list) -> Decoded | None:
    """The row's records: decoded ahead (``pre``: its records, or the error that fails it) or now; None
    (and the row with its error in ``failures``) when it cannot be decoded."""
    if pre is None:
        started = time.perf_counter()
        pre = decode_row(row.event_name, row.payload, row.received_at)
        timing.add("decode", time.perf_counter() - started)
    if isinstance(pre, str):
        failures.append((row, pre))
        return None
    pre.raw_event_id = row.pk
    return pre


ROW_NOTE_LIMIT = 5000


def row_note(decoded: Decoded, notes: list[str] | None) -> str:
    """What a processed row keeps in ``error``: items that failed (each with its reason), refused
    operations, then non-fatal problems (bad UTF-8 replaced, an over-long body cut). Cut at
    ``ROW_NOTE_LIMIT`` characters with the number of notes left out; the logs have each one."""
    parts = [f.describe() for f in decoded.failures]
    if notes:
        parts.extend(notes)
    parts.extend(decoded.problems)
    if not parts:
        return ""
    text = "; ".join(parts)
    if len(text) <= ROW_NOTE_LIMIT:
        return text
    kept, size = [], 0
    for part in parts:
        if size + len(part) + 2 > ROW_NOTE_LIMIT - 40:
            break
        kept.append(part)
        size += len(part) + 2
    return "; ".join(kept) + f"; ... and {len(parts) - len(kept)} more"


def log_item_failures(conn, row, decoded: Decoded) -> None:
    """One structured WARNING per failed item (``sync.item.failed``) of ``row`` (a ``RawEvent``, or the sweep's
    tuple of its columns). (Should the batch roll back, its rows are processed again one by one and log again.)"""
    for f in decoded.failures:
        logger.warning("sync.item.failed", extra={
            "connection_id": conn.pk, "tenant_id": conn.tenant_id, "raw_event_id": row.pk,
            "event_name": row.event_name, "reason": f.reason, "chat": f.chat_jid, "external_id": f.external_id,
            "position": f.position, "count": f.count})


def _mark_processed(run: SyncRun, rows: list[RawEvent], now) -> None:
    """Rows processed into ``run``: one UPDATE for all (Django's bulk_update builds a CASE per row and
    column: docs/measurements.md), plus one for the few rows that carry a note."""
    RawEvent.objects.unscoped().filter(pk__in=[r.pk for r in rows]).update(
        state=RawEvent.State.PROCESSED, processed_at=now, sync_run=run, error="")
    noted = [r for r in rows if r.error]
    if noted:
        RawEvent.objects.bulk_update(noted, ["error"])


def _fail_rows(conn, failures, router: _RunRouter, summary: Summary) -> None:
    now = timezone.now()
    quarantined = []
    first_failures = 0
    for row, error in failures:
        if row.attempts == 0:
            first_failures += 1
        row.attempts += 1
        row.error = error[:5000]
        if row.attempts >= MAX_ATTEMPTS:
            row.state = RawEvent.State.QUARANTINED
            row.next_attempt_at = None
            quarantined.append(row)
        else:
            row.state = RawEvent.State.FAILED
            row.next_attempt_at = now + retry_delay(row.attempts)
        logger.warning("sync.event.failed", extra={"raw_event_id": row.pk, "connection_id": conn.pk,
                                                   "event_name": row.event_name, "attempts": row.attempts,
                                                   "state": row.state, "error": row.error[:500]})
    run = router.run_for(None)
    for row, _ in failures:
        row.sync_run_id = row.sync_run_id or run.pk
    RawEvent.objects.bulk_update([r for r, _ in failures], ["attempts", "error", "state", "next_attempt_at", "sync_run"])
    if first_failures:
        _account(run, None, [], first_failures)
    if run.pk not in summary.run_ids:
        summary.run_ids.append(run.pk)
    summary.failed += len(failures)
    summary.quarantined += len(quarantined)
    for row in quarantined:  # one open journal alert per number, updated with the latest row (inbox.alerts)
        do_raise_alert(journal_cause(conn.pk), kind=Alert.Kind.JOURNAL_QUARANTINE, tenant_id=conn.tenant_id,
                       connection_id=conn.pk, message=f"Journal event #{row.pk} ({row.event_name}) quarantined after "
                                                      f"{row.attempts} attempts: {row.error[:300]}")


def requeue(queryset) -> int:
    """Put journal rows back to pending (replay / admin "reprocess"); attempts restart for quarantined rows
    (otherwise a requeued row, already at the limit, would be quarantined again at its first failure)."""
    return queryset.update(
        state=RawEvent.State.PENDING, next_attempt_at=None,
        attempts=Case(When(state=RawEvent.State.QUARANTINED, then=Value(0)), default=F("attempts"),
                      output_field=RawEvent._meta.get_field("attempts")),
    )
