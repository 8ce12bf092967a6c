"""Cutting work into batches: one helper for every "at most n at a time" loop."""

from itertools import islice


def chunks(items, n: int):
    """Lists of at most ``n`` items of ``items`` (any iterable, read once), in order."""
    it = iter(items)
    while chunk := list(islice(it, n)):
        yield chunk
