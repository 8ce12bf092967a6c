"""HTTP Range requests (RFC 9110 section 14) for the media view: what a browser's audio and video
players send to seek. One range per request; a multi-range request gets the whole file (which the RFC
allows), a malformed header is ignored (the whole file), and a well-formed range that starts past the end
is unsatisfiable (416)."""

from __future__ import annotations

import re

UNSATISFIABLE = "unsatisfiable"
_SPEC = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


def byte_range(header: str, size: int):
    """``(first, last)`` (inclusive) of a ``Range: bytes=...`` header against a file of ``size`` bytes;
    None to send the whole file; ``UNSATISFIABLE`` for a range that no byte of the file satisfies."""
    if not header or "," in header:
        return None
    match = _SPEC.match(header)
    if not match or (not match[1] and not match[2]):
        return None
    first, last = match[1], match[2]
    if not first:  # "-N": the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            return UNSATISFIABLE
        return max(0, size - suffix), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # syntactically invalid: ignored
    if start >= size:
        return UNSATISFIABLE
    return start, min(int(last), size - 1) if last else size - 1


def read_chunks(f, length: int, chunk_size: int = 64 * 1024):
    """At most ``length`` bytes of the open stream ``f`` from where it stands, in chunks; closes ``f`` at
    the end (``inbox.media.open_stored`` opens a stored file at the range's first byte)."""
    try:
        left = length
        while left > 0:
            chunk = f.read(min(chunk_size, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk
    finally:
        f.close()
