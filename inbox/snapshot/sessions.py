"""Session keys in a tenant export, only when asked (``--with-sessions``) and only encrypted.

whatsmeow keeps each linked device's keys in its own database (``WHATSMEOW_STORE``): tables named
``whatsmeow_*`` whose rows name the device by ``our_jid`` or ``jid`` (the device JID we keep as
``Connection.jid``). The export reads every such table's rows of the tenant's paired numbers, generically
(columns as the store has them; bytes as base64), gzips them as JSON Lines and encrypts the result:
AES-256-GCM with a key derived from a passphrase by scrypt (n=2**15, r=8, p=1, a random 16-byte salt),
stored as the member ``sessions.bin`` = ``IBXS1`` + salt + 12-byte nonce + ciphertext. A wrong passphrase
or an altered member fails the GCM tag: the import refuses before writing anything.

Restoring writes the rows into this install's store with "insert unless present" (a device already there
keeps its own keys), after the project's rows are committed (two databases, two transactions: a failure
here leaves the tenant imported without sessions, and running the import again adds them). The store's
tables are whatsmeow's: they exist once a runner has started a session against the store; until then
the import says so. ``whatsmeow_lid_map`` (shared by every number) is not exported: numbers relearn it.

Keys are as sensitive as a logged-in phone: restoring them on a second install while the first still
runs makes the two replace each other's session (``stream_replaced``).
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import sqlite3

from inbox.snapshot.archive import ArchiveError

MAGIC = b"IBXS1"
SALT_BYTES, NONCE_BYTES = 16, 12
KEY_COLUMNS = ("our_jid", "jid")
SHARED_TABLES = {"whatsmeow_lid_map", "whatsmeow_version"}


def _kdf(passphrase: str, salt: bytes) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(passphrase.encode())


def encrypt(data: bytes, passphrase: str) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if not passphrase:
        raise ArchiveError("session keys are only exported encrypted: a passphrase is required")
    salt, nonce = os.urandom(SALT_BYTES), os.urandom(NONCE_BYTES)
    return MAGIC + salt + nonce + AESGCM(_kdf(passphrase, salt)).encrypt(nonce, data, MAGIC)


def decrypt(blob: bytes, passphrase: str, *, member: str = "sessions.bin", what: str = "session keys") -> bytes:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if not blob.startswith(MAGIC):
        raise ArchiveError(f"{member} is not an encrypted member")
    salt = blob[len(MAGIC):len(MAGIC) + SALT_BYTES]
    nonce = blob[len(MAGIC) + SALT_BYTES:len(MAGIC) + SALT_BYTES + NONCE_BYTES]
    try:
        return AESGCM(_kdf(passphrase, salt)).decrypt(nonce, blob[len(MAGIC) + SALT_BYTES + NONCE_BYTES:], MAGIC)
    except InvalidTag as exc:
        raise ArchiveError(f"the {what} do not open with this passphrase (wrong passphrase, or altered)") from exc


class SessionsNotRestored(ArchiveError):
    """The tenant's rows were imported; its session keys could not be written to the store."""


class Store:
    """A plain DB-API connection to whatsmeow's store (SQLite file or PostgreSQL), never through neonize."""

    def __init__(self, url: str):
        self.url = url
        self.postgres = url.startswith("postgres")

    def __enter__(self):
        if self.postgres:
            import psycopg

            from connections.transport.neonize import libpq_url

            self.conn = psycopg.connect(libpq_url(self.url), connect_timeout=10)
        else:
            self.conn = sqlite3.connect(self.url, timeout=30)
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.conn.commit()
        else:
            self.conn.rollback()
        self.conn.close()
        return False

    def q(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    def tables(self) -> dict[str, list[str]]:
        """whatsmeow's tables that name a device (our_jid / jid), with their columns in order."""
        if self.postgres:
            rows = self.conn.execute(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() "
                "AND table_name LIKE 'whatsmeow\\_%' ORDER BY table_name, ordinal_position").fetchall()
        else:
            names = [r[0] for r in self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'whatsmeow\\_%' ESCAPE '\\'")]
            rows = [(t, c[1]) for t in sorted(names) for c in self.conn.execute(f'PRAGMA table_info("{t}")')]
        out: dict[str, list[str]] = {}
        for table, column in rows:
            out.setdefault(table, []).append(column)
        return {t: cols for t, cols in out.items() if t not in SHARED_TABLES and any(k in cols for k in KEY_COLUMNS)}

    def rows(self, table: str, columns: list[str], jids: list[str]):
        key = next(k for k in KEY_COLUMNS if k in columns)
        marks = ", ".join("?" for _ in jids)
        cols = ", ".join(f'"{c}"' for c in columns)
        cursor = self.conn.execute(self.q(f'SELECT {cols} FROM "{table}" WHERE "{key}" IN ({marks})'), jids)  # noqa: S608
        for values in cursor.fetchall():
            yield dict(zip(columns, values, strict=True))

    def insert_missing(self, table: str, row: dict) -> int:
        cols = list(row)
        sql = (f'INSERT INTO "{table}" ({", ".join(chr(34) + c + chr(34) for c in cols)}) '  # noqa: S608
               f'VALUES ({", ".join("?" for _ in cols)}) ON CONFLICT DO NOTHING')
        cursor = self.conn.execute(self.q(sql), [row[c] for c in cols])
        return max(cursor.rowcount, 0)


def _encode(value):
    if isinstance(value, bytes | memoryview | bytearray):
        return {"b64": base64.b64encode(bytes(value)).decode()}
    return value


def _decode(value):
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    return value


def export_sessions(jids: list[str], passphrase: str, store_url: str) -> tuple[bytes, int]:
    """(encrypted member, rows) for these device JIDs. The rows are held in memory: a device's keys are a
    few hundred kilobytes, not a history."""
    lines = []
    if jids:
        with Store(store_url) as store:
            for table, columns in sorted(store.tables().items()):
                for row in store.rows(table, columns, jids):
                    lines.append(json.dumps({"table": table, "row": {k: _encode(v) for k, v in row.items()}},
                                            sort_keys=True))
    payload = gzip.compress(("\n".join(lines) + "\n").encode() if lines else b"", mtime=0)
    return encrypt(payload, passphrase), len(lines)


def open_sessions(blob: bytes, passphrase: str) -> list[dict]:
    """The decrypted rows (checked before anything is written)."""
    data = gzip.decompress(decrypt(blob, passphrase))
    return [json.loads(line) for line in data.decode().splitlines() if line]


def restore_sessions(rows: list[dict], store_url: str) -> dict:
    """Insert the rows whose keys are not in the store yet; {table: inserted}. Raises ArchiveError if the
    store has no whatsmeow tables (no runner has started a session against it yet)."""
    if not rows:
        return {}
    with Store(store_url) as store:
        tables = store.tables()
        missing = sorted({r["table"] for r in rows} - set(tables))
        if missing:
            raise SessionsNotRestored(
                f"the whatsmeow store has no {', '.join(missing)} table(s) yet: start the runner once (whatsmeow "
                "creates them), then run import_tenant again with --with-sessions (the rows already imported stay "
                "as they are; only the sessions are added)")
        inserted: dict[str, int] = {}
        for r in rows:
            row = {k: _decode(v) for k, v in r["row"].items() if k in tables[r["table"]]}
            inserted[r["table"]] = inserted.get(r["table"], 0) + store.insert_missing(r["table"], row)
    return inserted
