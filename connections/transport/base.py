"""The WhatsApp boundary: one interface, two implementations (``neonize`` and ``simulator``).

How to add a transport: subclass ``Transport``, implement every abstract method, hand every event
you receive to ``self.emit(event_name, payload_bytes)`` (the neonize event class name and the
serialized protobuf, exactly as received) and register the class in ``connections.transport``.

A transport imports no models and nothing of sync: it hands (event name, bytes) to its caller and
reports lifecycle changes through ``SessionCallbacks.on_state``. Callers (the runner's child
process) serialise calls into one transport instance; a transport may call back from its own
threads.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from neonize.proto import Neonize_pb2 as N

logger = logging.getLogger(__name__)


class TransportError(Exception):
    """A call into WhatsApp failed; the message is meant to be shown to people."""


class NotSupported(TransportError):
    """The transport cannot do this at all (e.g. on-demand history with neonize 0.5.2)."""


class MediaGone(TransportError):
    """WhatsApp no longer has this file (expired or deleted on its servers): retrying will not help."""


@dataclass(frozen=True)
class SendResult:
    """What WhatsApp answered to a send: its message id and the server timestamp."""

    external_id: str
    timestamp: datetime


class State:
    """Lifecycle kinds a transport reports (``on_state(kind, detail, **data)``)."""

    CONNECTED = "connected"  # data: jid, push_name
    DISCONNECTED = "disconnected"  # an unexpected drop: the runner reconnects with backoff
    CONNECT_FAILED = "connect_failed"  # an attempt failed (dial error, ...): backoff
    QR = "qr"  # data: code, expires_in
    PAIR_CODE = "pair_code"  # data: code
    PAIRED = "paired"  # data: jid, push_name
    QR_EXPIRED = "qr_expired"  # nobody scanned: stop, no reconnect loop
    LOGGED_OUT = "logged_out"  # terminal: pair again
    BANNED = "banned"  # terminal until the ban expires; data: expire_seconds
    STREAM_REPLACED = "stream_replaced"  # terminal: the keys are used elsewhere
    STOPPED = "stopped"  # we stopped it

    TERMINAL = frozenset({QR_EXPIRED, LOGGED_OUT, BANNED, STREAM_REPLACED})


@dataclass
class SessionCallbacks:
    """How a transport talks back. ``on_event`` must be fast and must not raise (journal, return).
    ``on_events``: the same for several events of the session at once, in order (one wait for all)."""

    on_event: Callable[[str, bytes], None]
    on_state: Callable[..., None]
    on_events: Callable[[list[tuple[str, bytes]]], None] | None = None


@dataclass
class SessionConfig:
    connection_id: int
    jid: str = ""  # empty: not paired yet (connect starts pairing)
    phone_number: str = ""
    options: dict = field(default_factory=dict)


# Lifecycle events every transport understands the same way (neonize event class names).
_LIFECYCLE = {
    "ConnectedEv": N.Connected,
    "PairStatusEv": N.PairStatus,
    "LoggedOutEv": N.LoggedOut,
    "StreamReplacedEv": N.StreamReplaced,
    "TemporaryBanEv": N.TemporaryBan,
    "ConnectFailureEv": N.ConnectFailure,
    "ClientOutdatedEv": N.ClientOutdated,
    "DisconnectedEv": N.Disconnected,
}


_PAIR_SUCCESS = N.PairStatus.PStatus.Value("SUCCESS")
_LOGOUT_REASONS = {v.number: v.name for v in N.LoggedOut.DESCRIPTOR.fields_by_name["Reason"].enum_type.values}
LOGGED_OUT_REASON = N.LoggedOut.DESCRIPTOR.fields_by_name["Reason"].enum_type.values_by_name["LOGGED_OUT"].number


def jid_to_str(j) -> str:
    if not j.User and not j.Server:
        return ""
    user = f"{j.User}:{j.Device}" if j.Device else j.User
    return f"{user}@{j.Server}"


class Transport(abc.ABC):
    name: str = ""

    def __init__(self, config: SessionConfig, callbacks: SessionCallbacks):
        self.config = config
        self.callbacks = callbacks

    # --- what a transport hands over ------------------------------------------------------------
    def emit(self, event_name: str, payload: bytes) -> None:
        """Journal first, then interpret lifecycle events. Never raises (a raising handler loses the event)."""
        try:
            self.callbacks.on_event(event_name, payload)
        except Exception:  # noqa: BLE001 - the caller spools; this is the last resort
            logger.exception("transport.emit_failed", extra={"connection_id": self.config.connection_id,
                                                            "event_name": event_name})
        self._interpret(event_name, payload)

    def emit_many(self, events: list[tuple[str, bytes]]) -> None:
        """``emit`` for several events, handed over together: returns once every one is durable."""
        if self.callbacks.on_events is None:
            for event_name, payload in events:
                self.emit(event_name, payload)
            return
        try:
            self.callbacks.on_events(events)
        except Exception:  # noqa: BLE001 - the caller spools; this is the last resort
            logger.exception("transport.emit_failed", extra={"connection_id": self.config.connection_id,
                                                            "events": len(events)})
        for event_name, payload in events:
            self._interpret(event_name, payload)

    def _interpret(self, event_name: str, payload: bytes) -> None:
        cls = _LIFECYCLE.get(event_name)
        if cls is None:
            return
        try:
            self._lifecycle(event_name, cls.FromString(payload))
        except Exception:  # noqa: BLE001
            logger.exception("transport.lifecycle_failed", extra={"connection_id": self.config.connection_id})

    def _lifecycle(self, name: str, ev) -> None:
        state = self.callbacks.on_state
        if name == "ConnectedEv":
            state(State.CONNECTED, "connected", jid=self.config.jid)
        elif name == "PairStatusEv":
            if ev.Status == _PAIR_SUCCESS:
                self.config.jid = jid_to_str(ev.ID)
                state(State.PAIRED, "paired", jid=self.config.jid, push_name=ev.BusinessName)
            else:
                state(State.CONNECT_FAILED, f"pairing failed: {ev.Error}")
        elif name == "LoggedOutEv":
            state(State.LOGGED_OUT, f"logged out on the phone (reason {_LOGOUT_REASONS.get(ev.Reason, ev.Reason)})")
        elif name == "StreamReplacedEv":
            state(State.STREAM_REPLACED, "the session was opened elsewhere (stream replaced)")
        elif name == "TemporaryBanEv":
            state(State.BANNED, f"temporarily banned (code {ev.Code}, {ev.Expire} s)", expire_seconds=int(ev.Expire))
        elif name in ("ConnectFailureEv", "ClientOutdatedEv"):
            state(State.CONNECT_FAILED, f"{name}: {str(ev).strip()[:200]}")
        elif name == "DisconnectedEv":
            state(State.DISCONNECTED, "disconnected")

    # --- the interface ----------------------------------------------------------------------------
    @abc.abstractmethod
    def connect(self) -> None:
        """Start the session (pairing if not paired); returns once started. Outcome via ``on_state``."""

    @abc.abstractmethod
    def disconnect(self) -> None:
        """Stop the session; credentials stay stored."""

    @abc.abstractmethod
    def logout(self) -> None:
        """Unlink the device; credentials are deleted."""

    @abc.abstractmethod
    def pair_phone(self, phone: str) -> str:
        """Pair by phone code instead of QR; returns the 8-character code to type on the phone."""

    @abc.abstractmethod
    def is_alive(self) -> bool:
        """A cheap check that the session is up (the heartbeat)."""

    @abc.abstractmethod
    def send_text(self, chat_jid: str, text: str, *, local_id: str = "") -> SendResult:
        """Send a text message; raises TransportError on failure."""

    @abc.abstractmethod
    def send_media(self, chat_jid: str, data: bytes, mimetype: str, *, filename: str = "", caption: str = "",
                   local_id: str = "") -> SendResult:
        """Send an image, video, audio or document."""

    @abc.abstractmethod
    def mark_read(self, chat_jid: str, external_ids: Sequence[str], sender_jid: str = "") -> None:
        """Send read receipts for these messages."""

    @abc.abstractmethod
    def request_history(self, chat_jid: str, before: datetime) -> None:
        """Ask the phone for messages older than ``before``; they arrive as an ON_DEMAND HistorySyncEv."""

    def download_media(self, ref: bytes) -> bytes:
        """The decrypted bytes of a received media file. ``ref`` is the serialized E2E Message holding only
        the media part (``sync.decode.media_ref_of``). Raises MediaGone when WhatsApp no longer has it,
        TransportError for anything worth retrying."""
        raise NotSupported(f"the {self.name} transport cannot download media")

    def find_sent(self, local_id: str) -> SendResult | None:
        """If the transport can tell that ``local_id`` was already sent, its result; None if unknown.

        Used to recover a send that crashed between the send and the database commit.
        """
        return None

    can_tell_sent = False

    def stored_jid_mappings(self) -> list[tuple[str, str]]:
        """LID <-> phone-number pairs the session's own store has learned, as (phone JID, LID) strings
        (``"5511987654321@s.whatsapp.net", "201234567890123@lid"``). Read after a session connects and
        from time to time; the caller records them. A plain read: never a call into a session that is
        not connected. Transports without a store return none."""
        return []

    def simulate(self, command: dict) -> None:
        raise NotSupported(f"the {self.name} transport cannot simulate anything")
