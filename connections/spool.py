"""The spool: where received events go when the database is unreachable, until it is back.

One append-only file per (connection, process) in settings.EVENT_SPOOL_DIR, in the capture format
(sync/capture.py), fsync'ed per line. ``replay_spool`` journals every file (the journal's digest makes
a replay of already-journaled lines a no-op) and deletes it only after the journal committed.
A file being replayed is first renamed, so appends that happen meanwhile go to a fresh file.
"""

import fcntl
import logging
import os
import threading
import time
from pathlib import Path

from django.conf import settings

from sync.capture import CaptureError, encode_line, read_capture

logger = logging.getLogger(__name__)
_lock = threading.Lock()


def spool_dir() -> Path:
    path = Path(settings.EVENT_SPOOL_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def spool_event(connection_id: int, event_name: str, payload: bytes, received_at) -> Path:
    """Append one event durably; raises only if the disk itself fails."""
    path = spool_dir() / f"conn-{connection_id}.{os.getpid()}.jsonl"
    line = encode_line(event_name, payload, received_at)
    with _lock:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
    logger.warning("connections.event_spooled", extra={"connection_id": connection_id, "event_name": event_name,
                                                       "spool_file": str(path)})
    return path


def pending_spool_files() -> list[Path]:
    directory = Path(settings.EVENT_SPOOL_DIR)
    if not directory.exists():
        return []
    return sorted(p for p in directory.iterdir() if p.name.startswith("conn-") and p.suffix in (".jsonl", ".replaying"))


def replay_spool(journal=None) -> int:
    """Journal every spooled event; returns how many lines were replayed. Leaves files on DB errors."""
    if journal is None:
        from sync.journal import journal_events as journal
    total = 0
    for path in pending_spool_files():
        connection_id = int(path.name.split(".")[0].removeprefix("conn-"))
        if path.suffix == ".jsonl":
            target = path.with_name(f"{path.name}.{int(time.time() * 1000)}.replaying")
            with _lock:
                fd = os.open(path, os.O_RDONLY)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)  # wait for an append in progress
                    os.rename(path, target)
                finally:
                    os.close(fd)
            path = target
        try:
            events = [(e.event_name, e.payload, e.received_at) for e in read_capture(path)]
        except CaptureError as exc:
            # A torn last line (crash mid-write): keep the file for an operator, never delete events.
            logger.error("connections.spool_unreadable", extra={"spool_file": str(path), "error": str(exc)})
            continue
        journal(connection_id, events)
        path.unlink()
        total += len(events)
        logger.info("connections.spool_replayed", extra={"connection_id": connection_id, "events": len(events)})
    return total
