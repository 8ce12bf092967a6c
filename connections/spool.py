"""The spool: where received events go when the database is unreachable, until it is back.

One append-only file per (connection, process) in settings.EVENT_SPOOL_DIR, in the capture format
(sync/capture.py), fsync'ed per line. ``replay_spool`` journals files (the journal's digest makes a
replay of already-journaled lines a no-op) and deletes each only after the journal committed. A file
being replayed is first renamed, so appends that happen meanwhile go to a fresh file.

Who replays what, so a connection's events reach the journal in the order they were received:

* a child replays its own files before it journals anything new for a connection it spooled for
  (``connections.journal_writer``), and the files a dead process left for a connection before it
  starts that connection's session;
* the supervisor replays only files of processes that are gone (a child that died or was killed),
  never the files of a live child, which replays them itself in order.
"""

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist

from config.processes import pid_alive
from sync.capture import CaptureError, decode_line, encode_line

logger = logging.getLogger(__name__)
EVENT_SPOOLED = "connections.event_spooled"  # log event: events written to the spool, not the journal
_lock = threading.Lock()


def spool_dir() -> Path:
    path = Path(settings.EVENT_SPOOL_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def spool_events(connection_id: int, events: Iterable[tuple[str, bytes, object]]) -> Path:
    """Append events of one connection durably (one fsync for all); raises only if the disk fails."""
    path = spool_dir() / f"conn-{connection_id}.{os.getpid()}.jsonl"
    data = "".join(encode_line(name, payload, received_at) for name, payload, received_at in events).encode("utf-8")
    with _lock:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    return path


def spool_event(connection_id: int, event_name: str, payload: bytes, received_at) -> Path:
    """Append one event durably; raises only if the disk itself fails."""
    path = spool_events(connection_id, [(event_name, payload, received_at)])
    logger.warning(EVENT_SPOOLED, extra={"connection_id": connection_id, "event_name": event_name,
                                                       "spool_file": str(path)})
    return path


def spool_owner(path: Path) -> tuple[int, int]:
    """(connection id, pid) from ``conn-<id>.<pid>.jsonl[.<ms>.replaying]``."""
    parts = path.name.split(".")
    return int(parts[0].removeprefix("conn-")), int(parts[1])


def pending_spool_files(connection_id: int | None = None) -> list[Path]:
    directory = Path(settings.EVENT_SPOOL_DIR)
    if not directory.exists():
        return []
    files = [p for p in directory.iterdir() if p.name.startswith("conn-") and p.suffix in (".jsonl", ".replaying")]
    if connection_id is not None:
        files = [p for p in files if spool_owner(p)[0] == connection_id]
    # Oldest first: a ".replaying" file left by an interrupted replay holds earlier events than a fresh
    # ".jsonl" of the same owner; between owners, the modification time orders them.
    return sorted(files, key=lambda p: (p.stat().st_mtime if p.exists() else 0, p.suffix != ".replaying", p.name))


def _read(path: Path) -> tuple[list, str]:
    """The readable events of a spool file, and the error of its first unreadable line ("" if none)."""
    events = []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                e = decode_line(line, line_no)
            except CaptureError as exc:
                return events, str(exc)
            events.append((e.event_name, e.payload, e.received_at))
    return events, ""


def orphaned(path: Path) -> bool:
    """A file whose writer is gone (or is this process): safe to replay without racing its writer's order."""
    pid = spool_owner(path)[1]
    return pid == os.getpid() or not pid_alive(pid)


def replay_spool(journal=None, *, connection_id: int | None = None,
                 which: Callable[[Path], bool] = orphaned) -> int:
    """Journal the spooled events of the files ``which`` selects (by default those of this process and
    of processes that are gone); returns how many lines were replayed. A database error propagates
    with the file kept (renamed to ``.replaying``), to be replayed again later."""
    if journal is None:
        from sync.journal import journal_events as journal
    total = 0
    for path in pending_spool_files(connection_id):
        if not which(path):
            continue
        cid = spool_owner(path)[0]
        if path.suffix == ".jsonl":
            target = path.with_name(f"{path.name}.{int(time.time() * 1000)}.replaying")
            with _lock:
                try:
                    fd = os.open(path, os.O_RDONLY)
                except FileNotFoundError:
                    continue  # another process is replaying it
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)  # wait for an append in progress
                    try:
                        os.rename(path, target)
                    except FileNotFoundError:
                        continue
                finally:
                    os.close(fd)
            path = target
        try:
            events, error = _read(path)
        except FileNotFoundError:
            continue
        try:
            journal(cid, events)
        except ObjectDoesNotExist:
            # The connection was deleted: its events cannot be journaled. Kept aside for an operator
            # (never deleted), so they do not block the replay of every other file.
            kept = path.with_name(f"{path.name}.orphaned")
            path.rename(kept)
            logger.error("connections.spool_orphaned", extra={"connection_id": cid, "spool_file": str(kept),
                                                              "events": len(events)})
            continue
        if error:
            # A torn line (a crash mid-write): the readable lines are journaled, the file is kept for an
            # operator under a name no replay picks up again. Events are never deleted.
            kept = path.with_name(f"{path.name}.torn")
            path.rename(kept)
            logger.error("connections.spool_unreadable", extra={"connection_id": cid, "spool_file": str(kept),
                                                                "error": error, "journaled": len(events)})
        else:
            path.unlink(missing_ok=True)
        total += len(events)
        logger.info("connections.spool_replayed", extra={"connection_id": cid, "events": len(events),
                                                         "spool_file": str(path)})
    return total
