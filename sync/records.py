"""The decoded records: what ``sync.decode`` makes of neonize events and ``sync.ingest`` writes.

Plain dataclasses, no neonize and no models here, so ingestion, its tests and tools read and build
records without loading the protobuf classes. Normalized on the way in (``sync.decode``): JIDs by
``sync.identity.normalize_jid``, timestamps aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

MAX_ID = 128
MAX_JID = 128  # the JID columns (ContactIdentity, Conversation.chat_jid, sender_jid, JidMapping)


@dataclass(slots=True)
class MessageContent:
    """What a message says, apart from who sent it where and when: the one definition of these fields,
    for ``MessageRecord`` and for the decoder's classified content (``sync.decode.content_of``)."""

    type: str = "text"
    body: str = ""
    raw_type: str = ""
    media_mimetype: str = ""
    media_size: int | None = None
    media_filename: str = ""
    extra: dict = field(default_factory=dict)
    quoted_external_id: str = ""
    quoted_body: str = ""
    # Media: a serialized E2E Message holding only the media part (direct path, key, hashes; no
    # thumbnail or context), what a transport needs to download the file (``media_ref_of``).
    media_ref: bytes = b""


@dataclass
class MessageOrigin:
    """Which message, in which chat, from whom and when: the leading fields of a ``MessageRecord``. Fields
    only, never built alone; ``__slots__ = ()`` lets the record keep slots beside ``MessageContent``'s."""

    __slots__ = ()
    external_id: str
    chat_jid: str  # normalized; for 1:1 the other party (whatever form WhatsApp used), for groups the group
    sender_jid: str  # normalized participant / other party; "" when from me
    from_me: bool
    is_group: bool
    timestamp: datetime


@dataclass(slots=True)
class MessageRecord(MessageContent, MessageOrigin):
    """A message to store. Its fields in order: ``MessageOrigin``'s, ``MessageContent``'s, then these
    (dataclass fields come from the bases in reverse order: all positional, the decoder's cheap call)."""

    push_name: str = ""
    status: str = ""  # "" = default for the direction; history carries WhatsApp's own status
    live: bool = True  # False for history: unread counts come from the history conversation instead


# Operations: ``chat_jid`` and ``sender_jid`` are those of the event that carried the operation (for a
# MessageEv its MessageSource, for a history message its conversation and participant), normalized;
# ``sender_jid`` is "" when ``from_me``. They are what the sender claims: ingestion checks them against
# the target message before applying anything.


@dataclass(slots=True)
class ReactionRecord:
    target_id: str
    chat_jid: str
    sender_jid: str  # the reactor
    from_me: bool
    emoji: str  # "" removes the reaction
    timestamp: datetime


@dataclass(slots=True)
class EditRecord:
    target_id: str
    chat_jid: str
    sender_jid: str
    from_me: bool
    new_body: str
    timestamp: datetime


@dataclass(slots=True)
class RevokeRecord:
    target_id: str
    chat_jid: str
    sender_jid: str
    from_me: bool
    timestamp: datetime


@dataclass(slots=True)
class ReceiptRecord:
    chat_jid: str
    sender_jid: str
    from_me: bool
    message_ids: list[str]
    status: str  # delivered / read / played
    timestamp: datetime


@dataclass(slots=True)
class ItemFailure:
    """One item of a multi-item event that cannot be used; the rest of the event is.

    ``count`` is how many items it stands for (a history conversation without an ID fails all its
    messages at once). ``position``: where it sits in the event, for an operator reading the row."""

    reason: str
    chat_jid: str = ""
    external_id: str = ""
    position: str = ""
    count: int = 1

    def describe(self) -> str:
        where = ", ".join(filter(None, [
            f"chat {self.chat_jid[:MAX_JID]}" if self.chat_jid else "",
            f"id {self.external_id[:MAX_ID]}" if self.external_id else "", self.position,
        ]))
        what = "item failed" if self.count == 1 else f"{self.count} items failed" if self.count else "dropped"
        return f"{what}: {self.reason}" + (f" ({where})" if where else "")


@dataclass(slots=True)
class ChatRecord:
    """What a history sync says about a chat: names, its identities, unread count."""

    chat_jid: str
    name: str = ""
    pn_jid: str = ""
    lid_jid: str = ""
    unread_count: int | None = None
    last_message_at: datetime | None = None


@dataclass(slots=True)
class GroupRecord:
    group_jid: str
    name: str | None = None
    # (member jid, is_admin) of the full participant list (JoinedGroupEv), or None for a delta event.
    participants: list[tuple[str, bool]] | None = None
    join: list[str] = field(default_factory=list)
    leave: list[str] = field(default_factory=list)
    promote: list[str] = field(default_factory=list)
    demote: list[str] = field(default_factory=list)


@dataclass(slots=True)
class HistoryInfo:
    sync_type: str
    chunk_order: int | None
    progress: int | None


@dataclass(slots=True)
class Decoded:
    event_name: str
    messages: list[MessageRecord] = field(default_factory=list)
    reactions: list[ReactionRecord] = field(default_factory=list)
    edits: list[EditRecord] = field(default_factory=list)
    revokes: list[RevokeRecord] = field(default_factory=list)
    receipts: list[ReceiptRecord] = field(default_factory=list)
    mappings: list[tuple[str, str]] = field(default_factory=list)  # (pn jid, lid jid)
    push_names: list[tuple[str, str]] = field(default_factory=list)  # (jid, name)
    chats: list[ChatRecord] = field(default_factory=list)
    groups: list[GroupRecord] = field(default_factory=list)
    # Items that were understood but carry nothing to store: counted by reason, never silent.
    ignored: dict[str, int] = field(default_factory=dict)
    history: HistoryInfo | None = None
    # Reconnect catch-up boundaries (OfflineSyncPreviewEv / OfflineSyncCompletedEv).
    catchup_started: bool = False
    catchup_finished: bool = False
    problems: list[str] = field(default_factory=list)  # non-fatal: replaced bad UTF-8, cut bodies, ...
    # Items dropped for bad input (the event's other items are decoded): counted as failed.
    failures: list[ItemFailure] = field(default_factory=list)
    # The journal row this came from (set by the processor; decoding never needs it).
    raw_event_id: int | None = None

    @property
    def failed(self) -> int:
        return sum(f.count for f in self.failures) if self.failures else 0

    @property
    def received(self) -> int:
        """Message-bearing items this event carried plus items that failed on their own (what a SyncRun
        counts as received)."""
        return len(self.messages) + sum(self.ignored.values()) + (self.failed if self.failures else 0)
