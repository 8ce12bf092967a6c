"""The tenant export file: a zip of gzip'd JSON Lines, one member per kind of row, and a manifest.

```
manifest.json          {"format": "inbox-tenant-export", "version": 2, "tenant": slug, "created_at": ...,
                        "files": {"messages.jsonl.gz": {"rows": n, "bytes": b, "sha256": hex}, ...}}
tenant.jsonl.gz        one JSON object a line, gzip'd; members are stored (not deflated again)
...
```

Writing streams: each member is written through ``ArchiveWriter.member(name)`` as its rows come, with
zipfile's unknown-size (data descriptor, ZIP64) entries, so nothing is held in memory but a gzip window.
The file is written as ``<path>.partial`` and renamed into place when complete (``os.replace``): a
crashed export never leaves a file that looks finished. The manifest is the last member; its sha256 per
member is what ``ArchiveReader.verify`` checks before an import reads a single row.

``FORMAT_VERSION`` goes up when a reader of the old version could not read the new files correctly
(a new required field, a changed meaning, or data it would leave out without a word: version 2 added the
agent tools' and the api app's tables); a new member or field an old reader can do without does not.
Versions 1 and 2 are read (tests/fixtures/snapshots/tenant-export-v1.zip).
A reader refuses a newer version with a message saying which versions it reads.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import zipfile
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

FORMAT_NAME = "inbox-tenant-export"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"


class ArchiveError(Exception):
    """The file is not an export this code can import: named in the message, nothing was written."""


def _default(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | memoryview):
        import base64

        return base64.b64encode(bytes(value)).decode()
    raise TypeError(f"cannot write {type(value).__name__} to an export")


def dumps(row: dict) -> bytes:
    return json.dumps(row, default=_default, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode() + b"\n"


class _HashingWriter(io.RawIOBase):
    """Counts and hashes the bytes gzip writes into the zip member."""

    def __init__(self, target):
        self.target, self.sha256, self.bytes = target, hashlib.sha256(), 0

    def writable(self):
        return True

    def write(self, data):
        self.sha256.update(data)
        self.bytes += len(data)
        return self.target.write(data)


class MemberWriter:
    def __init__(self, zf: zipfile.ZipFile, name: str):
        self.name = name
        self._raw = zf.open(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), mode="w", force_zip64=True)
        self._hash = _HashingWriter(self._raw)
        # mtime=0 and no file name: the same rows give the same bytes (and sha256) on every export.
        self._gz = gzip.GzipFile(fileobj=self._hash, mode="wb", compresslevel=6, mtime=0, filename="")
        self.rows = 0

    def write(self, row: dict) -> None:
        self._gz.write(dumps(row))
        self.rows += 1

    def close(self) -> dict:
        self._gz.close()
        self._raw.close()
        return {"rows": self.rows, "bytes": self._hash.bytes, "sha256": self._hash.sha256.hexdigest()}


class ArchiveWriter:
    """``with ArchiveWriter(path) as out: ...; out.finish(manifest_fields)``: the file appears at ``path``
    only if ``finish`` ran; otherwise the partial file is removed."""

    def __init__(self, path):
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.files: dict[str, dict] = {}
        self._zf = None
        self._done = False

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._zf = zipfile.ZipFile(self.partial, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True)
        return self

    def write_member(self, name: str, rows) -> dict:
        member = MemberWriter(self._zf, name)
        try:
            for row in rows:
                member.write(row)
        finally:
            self.files[name] = member.close()
        return self.files[name]

    def write_stream(self, name: str, source, block: int = 1 << 20) -> dict:
        """A member copied from a readable binary file in ``block``-sized reads (constant memory), with
        its sha256 and size like any other."""
        digest, size = hashlib.sha256(), 0
        with self._zf.open(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), mode="w", force_zip64=True) as out:
            while data := source.read(block):
                digest.update(data)
                size += len(data)
                out.write(data)
        self.files[name] = {"bytes": size, "sha256": digest.hexdigest()}
        return self.files[name]

    def write_blob(self, name: str, data: bytes, **meta) -> dict:
        """A member of raw bytes (the encrypted sessions), with its sha256 like any other."""
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        self._zf.writestr(info, data)
        self.files[name] = {**meta, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        return self.files[name]

    def finish(self, **fields) -> dict:
        manifest = {"format": FORMAT_NAME, "version": FORMAT_VERSION, **fields, "files": self.files}
        info = zipfile.ZipInfo(MANIFEST, date_time=(1980, 1, 1, 0, 0, 0))
        self._zf.writestr(info, json.dumps(manifest, indent=2, sort_keys=True, default=_default))
        self._zf.close()
        with open(self.partial, "rb") as f:
            os.fsync(f.fileno())
        os.replace(self.partial, self.path)
        self._done = True
        return manifest

    def __exit__(self, exc_type, exc, tb):
        if not self._done:
            if self._zf is not None and self._zf.fp is not None:
                self._zf.close()
            self.partial.unlink(missing_ok=True)
        return False


class ArchiveReader:
    """Opens an export; ``verify()`` checks format, version and every member's sha256 (streaming)."""

    def __init__(self, path):
        self.path = Path(path)
        try:
            self._zf = zipfile.ZipFile(self.path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise ArchiveError(f"{self.path}: not a readable export ({exc})") from exc
        try:
            self.manifest = json.loads(self._zf.read(MANIFEST))
        except KeyError as exc:
            raise ArchiveError(f"{self.path}: no {MANIFEST} (not a tenant export, or cut short)") from exc
        except (ValueError, zipfile.BadZipFile, OSError) as exc:
            raise ArchiveError(f"{self.path}: unreadable {MANIFEST} ({exc})") from exc
        if self.manifest.get("format") != FORMAT_NAME:
            raise ArchiveError(f"{self.path}: not a tenant export (format {self.manifest.get('format')!r})")
        version = self.manifest.get("version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ArchiveError(
                f"{self.path}: export format version {version} is newer than this installation reads "
                f"(versions 1 to {FORMAT_VERSION}); upgrade this installation before importing it")

    def close(self):
        self._zf.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    @property
    def files(self) -> dict:
        return self.manifest.get("files", {})

    def verify(self) -> None:
        """Every member named by the manifest is there with its sha256 and size; read in 1 MiB blocks."""
        names = set(self._zf.namelist())
        for name, meta in self.files.items():
            if name not in names:
                raise ArchiveError(f"{self.path}: {name} is missing")
            digest, size = hashlib.sha256(), 0
            try:
                with self._zf.open(name) as f:
                    while block := f.read(1 << 20):
                        digest.update(block)
                        size += len(block)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise ArchiveError(f"{self.path}: {name} is unreadable ({exc})") from exc
            if digest.hexdigest() != meta.get("sha256") or size != meta.get("bytes"):
                raise ArchiveError(f"{self.path}: {name} does not match its checksum (corrupted or altered)")
        # Counting the rows needs reading them: the loader checks each member's count as it reads.

    def open_member(self, name: str):
        """A member named by the manifest, as a binary file to read in blocks (a media file)."""
        if name not in self.files:
            raise ArchiveError(f"{self.path}: {name} is not in this export")
        return self._zf.open(name)

    def blob(self, name: str) -> bytes | None:
        return self._zf.read(name) if name in self.files else None

    def rows(self, name: str) -> Iterator[dict]:
        """The member's rows, one at a time; an absent optional member reads as empty."""
        if name not in self.files:
            return
        count = 0
        with self._zf.open(name) as raw, gzip.GzipFile(fileobj=raw) as gz:
            for line in gz:
                count += 1
                yield json.loads(line)
        if count != self.files[name].get("rows"):
            raise ArchiveError(f"{self.path}: {name} holds {count} rows, the manifest says {self.files[name].get('rows')}")
