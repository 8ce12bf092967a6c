"""Phase timings of the sync path, for the benchmarks: a no-op unless one switches them on.

``with phase_timings() as totals:`` turns them on for the block and collects seconds per phase
("decode", "identities", "message_copy", "commit"...) into ``totals``; outside such a block ``add()``
does nothing and the processor registers no timestamping hook.
"""

import time
from collections import defaultdict
from contextlib import contextmanager

_totals: dict[str, float] | None = None


def enabled() -> bool:
    return _totals is not None


def add(name: str, seconds: float) -> None:
    if _totals is not None:
        _totals[name] += seconds


@contextmanager
def phase_timings():
    """Collect the phases' seconds while the block runs (benchmarks, a test that checks a phase ran)."""
    global _totals
    previous, _totals = _totals, defaultdict(float)
    try:
        yield _totals
    finally:
        _totals = previous


class Laps:
    """Each call adds the time since the previous one to its phase (no-op when timings are off)."""

    def __init__(self):
        self.since = time.perf_counter()

    def __call__(self, name: str) -> None:
        if _totals is not None:
            now = time.perf_counter()
            _totals[name] += now - self.since
            self.since = now
