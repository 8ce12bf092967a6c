"""How a session host (connections/child.py) makes received events durable: the journal, or the spool.

A transport's callback hands every event to ``JournalWriter.submit`` and returns only once the event
is durable, so nothing a callback returned for can be lost by a crash:

* one journal thread with one database connection takes what the callbacks queued and commits it in
  one transaction (a flood costs one commit per batch, not one per event);
* a callback whose event is not committed within ``RUNNER_JOURNAL_WAIT_SECONDS`` (the database is
  down, or hangs in a silent partition) appends it to the spool itself (fsync) and returns;
* once anything of a connection is in this process's spool, that connection's next events go to the
  spool too until the spool has been replayed into the journal, so the journal keeps each connection's
  events in the order they were received (the journal's digest makes an event that reached both a
  no-op the second time);
* no exception ends the thread; the supervisor asks ``health()`` with every heartbeat and replaces a
  child whose thread died or is stuck.

Processing is enqueued by a second thread (``Scheduler``), never by the journal thread, so a Redis or
broker outage cannot slow the journal down (sync/journal.py: the enqueue is best effort, the safety
net covers a failed one).
"""

from __future__ import annotations

import fcntl
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import connection as db_connection
from django.utils import timezone

from config.db import drop_broken_connections
from connections.spool import EVENT_SPOOLED, pending_spool_files, replay_spool, spool_events, spool_owner
from sync.capture import CaptureWriter
from sync.journal import journal_many, schedule_new_events

logger = logging.getLogger(__name__)
SPOOL_REPLAY_FAILED = "child.spool_replay_failed"  # log event: a spool replay failed (the files stay for later)
BATCH_EVENTS = 500
BATCH_BYTES = 8_000_000
# After a failed database write the thread spools without touching the database for this long
# (doubling up to the cap), so an outage costs one timeout per period, not one per event.
RETRY_DB_AFTER = 0.5
RETRY_DB_CAP = 5.0
# A batch waits up to this long for more events before it is written, while events keep coming: in a
# flood each commit then carries the events of many sessions instead of one or two (a commit, its round
# trips and its WAL flush cost more than the rows; docs/measurements.md). The wait adapts: none after a
# batch of one event (a quiet child's event is written at once), LINGER_SECONDS after a batch of several
# (the next ones are on their way). A session's event waits at most this much longer to be durable.
LINGER_SECONDS = 0.010


@dataclass(eq=False)
class Pending:
    """One submitted event and who made it durable: the journal thread or the callback (spool)."""

    connection_id: int
    event_name: str
    payload: bytes
    received_at: datetime
    submitted: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    spooled: bool = False  # guarded by JournalWriter._lock
    taken: bool = False  # the thread is writing it (guarded by JournalWriter._lock)

    @property
    def event(self):
        return self.event_name, self.payload, self.received_at


class Scheduler:
    """Enqueues processing for connections whose events were committed, off the journal's path.
    Coalesces: a connection named many times before the thread runs is enqueued once."""

    def __init__(self):
        self._due: set[int] = set()
        self._cond = threading.Condition()
        threading.Thread(target=self._run, name="journal-scheduler", daemon=True).start()

    def add(self, connection_ids) -> None:
        with self._cond:
            self._due.update(connection_ids)
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._due:
                    self._cond.wait()
                due, self._due = self._due, set()
            schedule_new_events(sorted(due))  # never raises


class JournalWriter:
    def __init__(self, record_path: str = "", wait_seconds: float | None = None):
        self.wait_seconds = settings.RUNNER_JOURNAL_WAIT_SECONDS if wait_seconds is None else wait_seconds
        self.q: queue.Queue[Pending | None] = queue.Queue()
        self._lock = threading.Lock()
        self._spooled: set[int] = set()  # connections with events in this process's spool
        self._db_retry_at = 0.0
        self._db_backoff = RETRY_DB_AFTER
        self._current: list[Pending] = []
        self._tenants: dict[int, int] = {}  # connection id -> tenant id, for journal_many
        self._current_since = 0.0
        self.spooled_total = 0
        self.recorder = CaptureWriter(record_path) if record_path else None
        self.scheduler = Scheduler()
        self._thread = threading.Thread(target=self._run, name="journal", daemon=True)
        self._thread.start()

    # --- callbacks' side ---------------------------------------------------------------------------
    def submit(self, connection_id: int, event_name: str, payload: bytes) -> None:
        """Return once the event is committed to the journal or appended (fsync) to the spool."""
        self.submit_many(connection_id, [(event_name, payload)])

    def submit_many(self, connection_id: int, events: list[tuple[str, bytes]]) -> None:
        """``submit`` for several events of one connection, in order: return once every one is durable
        (one wait for all: a session that has several due events hands them over together)."""
        now = timezone.now()
        items = [Pending(connection_id, name, payload, now) for name, payload in events]
        for item in items:
            self.q.put(item)
        deadline = time.monotonic() + self.wait_seconds
        if all(item.done.wait(max(0.0, deadline - time.monotonic())) for item in items):
            return
        with self._lock:
            late = [item for item in items if not item.done.is_set()]
            if late:
                self._spool_locked(connection_id, late, "journal slow" if late[0].taken else "journal busy")
        for item in late:
            item.done.set()

    # --- the journal thread ------------------------------------------------------------------------
    def _run(self) -> None:
        linger = 0.0  # adapts: LINGER_SECONDS while events come several per batch, 0 once one comes alone
        while True:
            try:
                # While something is owed from the spool, wake up now and then to replay it even if
                # no new event arrives.
                first = self.q.get(timeout=1.0 if self._spooled else None)
            except queue.Empty:
                self._replay_owed()
                continue
            if first is None:
                self._close_db()
                return
            batch, size = [first], len(first.payload)
            linger_until = time.monotonic() + linger
            while len(batch) < BATCH_EVENTS and size < BATCH_BYTES:
                try:
                    item = self.q.get(timeout=max(0.0, linger_until - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    self.q.put(None)  # stop after this batch
                    break
                batch.append(item)
                size += len(item.payload)
            linger = LINGER_SECONDS if len(batch) > 1 else 0.0
            try:
                self._write(batch)
            except BaseException:  # noqa: BLE001 - nothing may end this thread; the events are spooled
                logger.exception("child.journal_thread_error", extra={"events": len(batch)})
                self._spool_unfinished(batch, "thread error")
            finally:
                with self._lock:
                    self._current = []
                for item in batch:
                    item.done.set()

    def _write(self, batch: list[Pending]) -> None:
        with self._lock:
            batch[:] = [i for i in batch if not i.spooled]
            for item in batch:
                item.taken = True
            self._current, self._current_since = list(batch), time.monotonic()
        if not batch:
            return
        self._record(batch)
        if time.monotonic() < self._db_retry_at:
            self._spool_unfinished(batch, "database unavailable")
            return
        try:
            drop_broken_connections()
            if self._spooled:
                # Events already spooled go first: the journal keeps each connection's order.
                self.replay()
            by_connection: dict[int, list] = {}
            for item in batch:
                by_connection.setdefault(item.connection_id, []).append(item.event)
            with self._lock:
                # A connection whose earlier event a callback spooled meanwhile stays in the spool.
                late = {i.connection_id for i in batch if i.spooled} | (self._spooled & set(by_connection))
                for cid in late:
                    by_connection.pop(cid, None)
                    items = [i for i in batch if i.connection_id == cid and not i.spooled]
                    if items:
                        self._spool_locked(cid, items, "after a spooled event")
            journal_many(by_connection, schedule=False, tenants=self._tenants)
        except Exception as exc:  # noqa: BLE001 - database down/hung (timeouts): spool, retry later
            logger.error("child.journal_failed", extra={"events": len(batch), "error": repr(exc)[:500]})
            self._close_db()
            self._db_retry_at = time.monotonic() + self._db_backoff
            self._db_backoff = min(RETRY_DB_CAP, self._db_backoff * 2)
            self._spool_unfinished(batch, "database error")
            return
        self._db_backoff = RETRY_DB_AFTER
        self.scheduler.add({i.connection_id for i in batch})

    def _replay_owed(self) -> None:
        if time.monotonic() < self._db_retry_at:
            return
        try:
            drop_broken_connections()
            self.replay()
            self._db_backoff = RETRY_DB_AFTER
        except Exception as exc:  # noqa: BLE001 - still down: try again later
            logger.warning(SPOOL_REPLAY_FAILED, extra={"error": repr(exc)[:500]})
            self._close_db()
            self._db_retry_at = time.monotonic() + self._db_backoff
            self._db_backoff = min(RETRY_DB_CAP, self._db_backoff * 2)

    def replay(self, connection_id: int | None = None) -> int:
        """Journal this process's spool (and files of processes that are gone); enqueue processing
        through the scheduler, never on this thread. Raises on database errors (files are kept)."""
        replayed: set[int] = set()

        def journal(cid, events):
            replayed.add(cid)
            return journal_many({cid: events}, schedule=False)

        n = replay_spool(journal, connection_id=connection_id)
        with self._lock:
            # Spool appends happen under this lock, so the files left now are exactly what is still owed.
            self._spooled = {cid for cid, pid in map(spool_owner, pending_spool_files()) if pid == os.getpid()}
        if replayed:
            self.scheduler.add(replayed)
        return n

    def _spool_unfinished(self, batch: list[Pending], reason: str) -> None:
        with self._lock:
            by_connection: dict[int, list[Pending]] = {}
            for item in batch:
                if not item.spooled and not item.done.is_set():
                    by_connection.setdefault(item.connection_id, []).append(item)
            for cid, items in by_connection.items():
                self._spool_locked(cid, items, reason)

    def _spool_locked(self, connection_id: int, items: list[Pending], reason: str) -> None:
        """Append to the spool (fsync). Called with ``_lock`` held: the set of connections owed to the
        journal and the files on disk change together."""
        for item in items:
            item.spooled = True
        self._spooled.add(connection_id)
        path = spool_events(connection_id, [i.event for i in items])
        self.spooled_total += len(items)
        logger.warning(EVENT_SPOOLED, extra={"connection_id": connection_id, "events": len(items),
                                                           "reason": reason, "spool_file": str(path)})

    def _record(self, batch: list[Pending]) -> None:
        if self.recorder is None:
            return
        fd = self.recorder._fh.fileno()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            for item in batch:
                self.recorder.write(item.event_name, item.payload, item.received_at)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    @staticmethod
    def _close_db() -> None:
        try:
            db_connection.close()
        except Exception:  # noqa: BLE001, S110 - a broken connection may fail to close; it is dropped anyway
            pass

    def spool_pending(self, reason: str) -> int:
        """Spool (fsync) everything submitted and not yet durable: the process is about to exit."""
        items = []
        while True:
            try:
                item = self.q.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                items.append(item)
        with self._lock:
            items = [i for i in [*self._current, *items] if not i.spooled and not i.done.is_set()]
            by_connection: dict[int, list[Pending]] = {}
            for item in items:
                by_connection.setdefault(item.connection_id, []).append(item)
            for cid, owed in by_connection.items():
                self._spool_locked(cid, owed, reason)
        for item in items:
            item.done.set()
        return len(items)

    # --- supervision -------------------------------------------------------------------------------
    def health(self) -> dict:
        """For the heartbeat: is the thread alive, how long has its current batch taken, how much waits."""
        with self._lock:
            busy = time.monotonic() - self._current_since if self._current else 0.0
        return {"alive": self._thread.is_alive(), "busy": round(busy, 3), "queued": self.q.qsize(),
                "spooled": self.spooled_total}

    def stop(self) -> None:
        """Finish what was submitted, close the thread's database connection and end the thread."""
        self.q.put(None)
        self._thread.join(max(5.0, self.wait_seconds * 2))
