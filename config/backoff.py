"""Retry delays: one formula for every retry schedule (reconnects, outbox sends, journal rows)."""

import random


def backoff(attempt: int, *, base: float, cap: float, factor: float = 2.0, jitter: bool = False) -> float:
    """Seconds before retry number ``attempt`` (1: the first): ``base * factor ** (attempt - 1)``, at most
    ``cap``. With ``jitter``, times a random 0.5-1.0, so that many clients that failed together do not all
    come back together."""
    delay = min(cap, base * factor ** max(0, attempt - 1))
    return delay * random.uniform(0.5, 1.0) if jitter else delay  # noqa: S311 - jitter, not security
