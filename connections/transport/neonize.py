"""The real WhatsApp transport: one neonize (whatsmeow) client per connection.

Read /work/shared/NEONIZE.md (docs/runner.md summarises it). The rules this module follows:

* Every call into neonize in a process goes through ``NEONIZE_LOCK``: concurrent calls crash the
  Go core with "concurrent map writes", which no Python code can catch. ``connect`` holds it until
  the first outcome (connected, QR shown, failure) so sessions start one at a time.
* The session store is a database of its own (settings.WHATSMEOW_STORE); a JID is resumed only
  after checking it is still in ``whatsmeow_device`` (resuming an unknown JID aborts the process).
* Events reach the journal straight from neonize's dispatcher with the bytes exactly as the Go side
  serialised them: ``Event.execute`` is wrapped (raw bytes first, then neonize's own handling).
* QR codes run out after ~160 s and then ``connect()`` blocks on a dead socket: a watchdog stops the
  client at ``QR_TIMEOUT_SECONDS`` and reports "QR expired" (no reconnect loop).
* On-demand history cannot be sent by neonize 0.5.2 (no peer send): ``request_history`` says so.
"""

from __future__ import annotations

import ctypes
import logging
import sqlite3
import threading
from collections.abc import Sequence
from contextlib import closing
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode, urlsplit

from django.conf import settings
from neonize import events as nev
from neonize.client import NewClient
from neonize.proto.waCompanionReg.WAWebProtobufsCompanionReg_pb2 import DeviceProps
from neonize.utils.enum import ClientName, ReceiptType

from connections.transport.base import MediaGone, NotSupported, SendResult, State, Transport, TransportError
from sync import events_builder as eb

logger = logging.getLogger(__name__)

NEONIZE_LOCK = threading.RLock()
QR_TIMEOUT_SECONDS = 180.0
FIRST_OUTCOME_WAIT_SECONDS = 15.0
HISTORY_NOT_SUPPORTED = (
    "Loading older messages from the phone is not supported by neonize 0.5.2 (it cannot send the "
    "history request); showing what is stored."
)

# neonize event code -> event class name ("MessageEv", ...), for every event neonize can deliver.
EVENT_NAME_BY_CODE = {nev.EVENT_TO_INT[cls]: name for name, cls in eb.EVENT_CLASSES.items() if cls in nev.EVENT_TO_INT}
# Process-global in neonize: the same props for every client (full history at pairing).
DEVICE_PROPS = DeviceProps(
    os="Inbox", platformType=DeviceProps.DESKTOP, requireFullSync=True,
    historySyncConfig=DeviceProps.HistorySyncConfig(fullSyncDaysLimit=3650, fullSyncSizeMbLimit=10240,
                                                    storageQuotaMb=10240),
)


def _subscribe_noop(client, message):  # a plain function: bound methods are held weakly by neonize
    return None


def store_url() -> str:
    return settings.WHATSMEOW_STORE


# Query parameters of the store URL that libpq (our own reads) understands, TLS first; whatsmeow's driver
# (lib/pq) may take others that libpq would refuse.
LIBPQ_PARAMS = frozenset({
    "sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword", "sslcrl", "sslcrldir", "sslsni",
    "sslnegotiation", "ssl_min_protocol_version", "ssl_max_protocol_version", "requiressl",
    "connect_timeout", "application_name", "options", "target_session_attrs", "host", "hostaddr", "port",
    "passfile", "channel_binding", "gssencmode", "krbsrvname", "keepalives", "keepalives_idle",
})


def libpq_url(url: str, path: str | None = None) -> str:
    """The store URL for psycopg: its TLS options kept (session keys never cross a network in clear),
    parameters libpq does not know dropped; ``path`` names another database on the same server."""
    parts = urlsplit(url)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k in LIBPQ_PARAMS])
    return parts._replace(query=query, path=parts.path if path is None else path).geturl()


def ensure_store() -> None:
    """Create the whatsmeow PostgreSQL database if missing (SQLite files are created by the store)."""
    url = store_url()
    if not url.startswith("postgres"):
        return
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = libpq_url(url, path="/postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')  # name comes from our own settings
            logger.info("neonize.store_created", extra={"database": name})


def read_store(sql: str, params=()) -> list[tuple]:
    """A plain read of whatsmeow's store ("?" placeholders), PostgreSQL or SQLite, never through neonize.

    A store whose tables do not exist yet (no session ever started) reads as empty.
    """
    url = store_url()
    if url.startswith("postgres"):
        import psycopg

        try:
            with psycopg.connect(libpq_url(url), connect_timeout=10) as conn:
                return conn.execute(sql.replace("?", "%s"), list(params)).fetchall()
        except psycopg.errors.UndefinedTable:
            return []
    try:
        with closing(sqlite3.connect(url, timeout=10)) as conn:  # the Go side may be writing: wait, don't fail
            return conn.execute(sql, list(params)).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise


def jid_in_store(jid: str) -> bool:
    """Is this device still in whatsmeow's store? (A logout deletes it; resuming it would abort.)"""
    return bool(read_store("SELECT 1 FROM whatsmeow_device WHERE jid = ?", [jid]))


def store_lid_mappings() -> list[tuple[str, str]]:
    """Every (phone JID, LID) pair in ``whatsmeow_lid_map``.

    whatsmeow keeps the bare user parts (``lid``, ``pn``) and appends ``@lid`` / ``@s.whatsapp.net``
    when it answers ``get_pn_from_lid``; so do we. The table is shared by every number in the store.
    """
    rows = read_store("SELECT pn, lid FROM whatsmeow_lid_map ORDER BY lid")
    return [(f"{pn}@s.whatsapp.net", f"{lid}@lid") for pn, lid in rows if pn and lid]


class NeonizeTransport(Transport):
    name = "neonize"
    can_tell_sent = False

    def __init__(self, config, callbacks):
        super().__init__(config, callbacks)
        self.client: NewClient | None = None
        self._thread: threading.Thread | None = None
        self._outcome = threading.Event()
        self._qr_seen = threading.Event()
        self._connected = False
        self._stopping = False
        self._watchdog: threading.Timer | None = None
        self.connect_attempts = 0

    # --- raw event path ---------------------------------------------------------------------------
    def _execute(self, uuid, binary, size, code):
        """Wraps neonize's dispatcher: journal the exact bytes, then let neonize do its own work."""
        name = EVENT_NAME_BY_CODE.get(code)
        if name is not None:
            payload = ctypes.string_at(binary, size)
            if name == "ConnectedEv":
                self._connected = True
            self.emit(name, payload)
            if name in ("ConnectedEv", "LoggedOutEv", "StreamReplacedEv", "TemporaryBanEv", "ConnectFailureEv",
                        "ClientOutdatedEv", "PairStatusEv"):
                self._outcome.set()
        try:
            self._orig_execute(uuid, binary, size, code)
        except Exception:  # noqa: BLE001 - neonize's own bookkeeping must not lose us the event
            logger.exception("neonize.dispatch_failed", extra={"connection_id": self.config.connection_id})

    def _on_qr(self, client, code: bytes):
        first = not self._qr_seen.is_set()
        self._qr_seen.set()
        self._outcome.set()
        self.callbacks.on_state(State.QR, "scan the QR code", code=code.decode(errors="replace"), expires_in=60)
        if first:
            self._watchdog = threading.Timer(QR_TIMEOUT_SECONDS, self._qr_expired)
            self._watchdog.daemon = True
            self._watchdog.start()

    def _qr_expired(self):
        if self._connected:
            return
        self.disconnect()
        self.callbacks.on_state(State.QR_EXPIRED, f"nobody scanned the QR code within {int(QR_TIMEOUT_SECONDS)} s")

    def build_client(self) -> NewClient:
        """A client with our raw-event hook and every event subscribed (handlers must exist before connect)."""
        jid = eb.jid(self.config.jid) if self.config.jid else None
        client = NewClient(store_url(), jid=jid, props=DEVICE_PROPS, uuid=f"conn-{self.config.connection_id}",
                           new_device=jid is None)
        self._orig_execute = client.event.execute
        client.event.execute = self._execute  # instance attribute: neonize wraps self.event.execute at connect
        for cls in nev.EVENT_TO_INT:
            if nev.EVENT_TO_INT[cls] != 0:
                client.event(cls)(_subscribe_noop)
        client.event.qr(self._on_qr)
        return client

    # --- interface --------------------------------------------------------------------------------
    def connect(self) -> None:
        with NEONIZE_LOCK:
            if self.config.jid and not jid_in_store(self.config.jid):
                self.callbacks.on_state(State.LOGGED_OUT, "the session is no longer in the whatsmeow store; pair again")
                return
            self._outcome.clear()
            self._qr_seen.clear()
            self._connected = False
            self._stopping = False
            self.connect_attempts += 1
            self.client = self.build_client()
            client = self.client
            self._thread = threading.Thread(target=self._run, args=(client,), daemon=True,
                                            name=f"neonize-{self.config.connection_id}")
            self._thread.start()
            # Sessions start one at a time: wait for the first outcome before the next call into neonize.
            self._outcome.wait(FIRST_OUTCOME_WAIT_SECONDS)

    def _run(self, client: NewClient):
        try:
            client.connect()
        except Exception as exc:  # noqa: BLE001 - NeonizeError: the dial failed
            self._outcome.set()
            if not self._stopping:
                self.callbacks.on_state(State.CONNECT_FAILED, str(exc)[:480])
            return
        self._outcome.set()
        if not self._stopping:
            self.callbacks.on_state(State.DISCONNECTED, "the session ended")

    def disconnect(self) -> None:
        self._stopping = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        with NEONIZE_LOCK:
            if self.client is not None:
                self.client.stop()
        self._connected = False

    def logout(self) -> None:
        with NEONIZE_LOCK:
            if self.client is None or not self._connected:
                raise TransportError("not connected: cannot log out")
            try:
                self.client.logout()
            except Exception as exc:  # noqa: BLE001
                raise TransportError(f"logout failed: {exc}")
        self.disconnect()

    def pair_phone(self, phone: str) -> str:
        if not self._qr_seen.wait(FIRST_OUTCOME_WAIT_SECONDS):
            raise TransportError("pairing by phone needs a running pairing session (no QR stage reached)")
        with NEONIZE_LOCK:
            try:
                return self.client.PairPhone(phone.lstrip("+"), True, client_name=ClientName.CHROME)
            except Exception as exc:  # noqa: BLE001
                raise TransportError(f"pairing by phone failed: {exc}")

    def is_alive(self) -> bool:
        with NEONIZE_LOCK:
            if self.client is None or self._stopping or not self._connected:
                return False
            return bool(self.client.is_connected)

    def send_text(self, chat_jid: str, text: str, *, local_id: str = "") -> SendResult:
        with NEONIZE_LOCK:
            if self.client is None or not self._connected:
                raise TransportError("not connected")
            try:
                resp = self.client.send_message(eb.jid(chat_jid), text)
            except Exception as exc:  # noqa: BLE001
                raise TransportError(str(exc)[:480])
        return SendResult(resp.ID, datetime.fromtimestamp(resp.Timestamp, UTC))

    def send_media(self, chat_jid, data, mimetype, *, filename="", caption="", local_id="") -> SendResult:
        kind = mimetype.split("/", 1)[0]
        with NEONIZE_LOCK:
            if self.client is None or not self._connected:
                raise TransportError("not connected")
            try:
                to = eb.jid(chat_jid)
                if kind == "image":
                    resp = self.client.send_image(to, data, caption=caption or None)
                elif kind == "video":
                    resp = self.client.send_video(to, data, caption=caption or None)
                elif kind == "audio":
                    # OGG/Opus is WhatsApp's voice-note format (attachments are converted to it when
                    # ffmpeg is installed: inbox.media.voice_note_of); it goes as a voice note (ptt).
                    resp = self.client.send_audio(to, data, ptt=mimetype == "audio/ogg")
                else:
                    resp = self.client.send_document(to, data, caption=caption or None, filename=filename or None,
                                                     mimetype=mimetype)
            except Exception as exc:  # noqa: BLE001
                raise TransportError(str(exc)[:480])
        return SendResult(resp.ID, datetime.fromtimestamp(resp.Timestamp, UTC))

    def download_media(self, ref: bytes) -> bytes:
        """whatsmeow's download (it checks the file's hashes); its 404/410 mean the file is gone."""
        from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message

        message = Message.FromString(ref)
        with NEONIZE_LOCK:
            if self.client is None or not self._connected:
                raise TransportError("not connected")
            try:
                return self.client.download_any(message)
            except Exception as exc:  # noqa: BLE001
                text = str(exc)[:480]
                if "status code 404" in text or "status code 410" in text:
                    raise MediaGone(f"the file is no longer on WhatsApp ({text})") from None
                raise TransportError(text) from None

    def mark_read(self, chat_jid: str, external_ids: Sequence[str], sender_jid: str = "") -> None:
        with NEONIZE_LOCK:
            if self.client is None or not self._connected:
                raise TransportError("not connected")
            try:
                self.client.mark_read(*external_ids, chat=eb.jid(chat_jid), sender=eb.jid(sender_jid or chat_jid),
                                      receipt=ReceiptType.READ)
            except Exception as exc:  # noqa: BLE001
                raise TransportError(str(exc)[:480])

    def request_history(self, chat_jid: str, before: datetime) -> None:
        raise NotSupported(HISTORY_NOT_SUPPORTED)

    def stored_jid_mappings(self) -> list[tuple[str, str]]:
        # A SQL read of the store, not get_pn_from_lid: that aborts the process on a client that is
        # not connected, and would need one call per JID.
        return store_lid_mappings()
