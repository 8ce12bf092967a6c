"""Phase timings of the sync path, for the benchmarks: a no-op unless one switches them on.

``with phase_timings() as totals:`` turns them on for the block, in this thread's context, and
collects seconds per phase ("decode", "identities", "message_copy", "commit"...) into ``totals``;
outside such a block ``add()`` and ``Laps`` do nothing. The totals live in a context variable, not in
a module-wide dict: other threads and contexts (a worker's other tasks) are not timed.
"""

import time
from collections import defaultdict
from contextlib import contextmanager
from contextvars import ContextVar

_totals: ContextVar[dict[str, float] | None] = ContextVar("sync_phase_timings", default=None)


def add(name: str, seconds: float) -> None:
    totals = _totals.get()
    if totals is not None:
        totals[name] += seconds


@contextmanager
def phase_timings():
    """Collect the phases' seconds while the block runs (benchmarks, a test that checks a phase ran)."""
    totals: dict[str, float] = defaultdict(float)
    token = _totals.set(totals)
    try:
        yield totals
    finally:
        _totals.reset(token)


class Laps:
    """Each call adds the time since the previous one to its phase (no-op when timings are off)."""

    def __init__(self):
        self.totals = _totals.get()
        self.since = time.perf_counter()

    def __call__(self, name: str) -> None:
        if self.totals is not None:
            now = time.perf_counter()
            self.totals[name] += now - self.since
            self.since = now
