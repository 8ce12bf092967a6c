"""CPU priority of a background worker (one that only delivers webhooks, or only runs the per-connection
journal processor: history syncs, catch-ups): below the processes of the live inbox.

On a shared host (2 cores in development) the fan-out's CPU (serializing, signing, HTTP: ~0.2 ms per event,
docs/api.md) competes with the journal processing and the pushes that an agent waits on. A worker started
for ``WEBHOOK_QUEUE`` alone, when that is a queue of its own, lowers its nice value to ``WEBHOOK_WORKER_NICE``
as it starts, before its pool forks (the pool inherits it): the scheduler then runs the live inbox's
processes first whenever both want a core, and delivery takes what is left. On a saturated host delivery
falls behind (its rows wait, in order) instead of the inbox. A worker for ``JOURNAL_QUEUE`` alone does the
same at ``JOURNAL_WORKER_NICE`` (10): a 100,000-message history sync took both cores for ~7 s and held the
live sweep's messages back (p99 2.75 s in bench/flood.py --history, docs/measurements.md). Raising a priority
needs privileges, so a worker already at a lower priority (``nice -n 19 celery ...``) keeps it.

A nice value alone is not enough on Linux with autogroup scheduling (``/proc/sys/kernel/sched_autogroup_enabled``,
on by default in many distributions' kernels, and on this project's machine): the CPU is shared between
sessions first, and a thread's nice value only counts against the threads of its own session. Honcho (``make
run``), systemd and ``setsid`` start each process in a session of its own, so a worker at nice 19 would still
get as much CPU as the live worker. The worker therefore also lowers its session's autogroup
(``/proc/self/autogroup``) when the session is its own (no process in it but the worker and the shell that
started it); in a shared session (a terminal) it leaves the autogroup alone, which would lower its neighbours
too, and logs that its nice value has no effect there. (Under systemd with the cpu controller, a unit's
``CPUWeight=`` is the equivalent.)
"""

from __future__ import annotations

import os
from pathlib import Path


def consumed_queues(options: dict) -> set[str]:
    """The queues a worker was told to consume (``-Q a,b``), as Celery's ``celeryd_init`` options carry them."""
    queues = options.get("queues") or []
    if isinstance(queues, str):
        queues = [queues]
    return {name.strip() for item in queues for name in str(item).split(",") if name.strip()}


def background_nice(queues: set[str], settings) -> int:
    """The nice value a worker consuming ``queues`` gives itself: ``WEBHOOK_WORKER_NICE`` for ``WEBHOOK_QUEUE``
    alone, ``JOURNAL_WORKER_NICE`` for ``JOURNAL_QUEUE`` alone (each when it is a queue of its own, not the
    default queue); 0 (left alone) for any other worker."""
    default = settings.CELERY_TASK_DEFAULT_QUEUE
    for queue, nice in ((settings.WEBHOOK_QUEUE, settings.WEBHOOK_WORKER_NICE),
                        (settings.JOURNAL_QUEUE, settings.JOURNAL_WORKER_NICE)):
        if queues == {queue} and queue != default:
            return nice
    return 0


def lower_priority(nice: int) -> int:
    """Set this process's nice value to ``nice`` unless it is lower already; returns the value now in force.
    Linux: the nice value is per thread, so call this before threads and pool processes are started."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if nice > current:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    return max(nice, current)


AUTOGROUP_SWITCH = Path("/proc/sys/kernel/sched_autogroup_enabled")


def _session_is_own() -> bool:
    """No process in this session but this one, its children and the session leader that started it (``sh -c``)."""
    sid, me, parent = os.getsid(0), os.getpid(), os.getppid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (me, sid):
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[3]) == sid and int(fields[1]) != me:  # session, parent pid
            return False
    return sid in (me, parent)


def lower_autogroup(nice: int) -> str:
    """Lower this session's autogroup to ``nice`` when autogroup scheduling is on and the session is the worker's
    own; returns what was done ("off", "lowered", "shared session", "refused: ...")."""
    try:
        if AUTOGROUP_SWITCH.read_text().strip() != "1":
            return "off"
        current = int(Path("/proc/self/autogroup").read_text().split("nice")[1])
    except (OSError, ValueError, IndexError):
        return "off"
    if current >= nice:
        return "lowered"
    if not _session_is_own():
        return "shared session"
    try:
        Path("/proc/self/autogroup").write_text(str(nice))
    except OSError as exc:
        return f"refused: {exc}"
    return "lowered"
