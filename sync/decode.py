"""neonize protobuf events -> plain dataclasses. Imports no models and nothing of ingest.

``decode_event(event_name, payload, received_at)`` parses the bytes with neonize's generated classes
and returns a ``Decoded`` bundle of normalized records (messages, reactions, edits, revokes, receipts,
identity mappings, names, group facts, history-sync progress). Bad input raises ``DecodeError`` with
a message an operator can act on; the caller keeps the journal row for retry/quarantine.

An event that carries many items (a history chunk's messages and conversations, a receipt's message
ids, a group's participants) is not failed for one bad item: that item becomes an ``ItemFailure``
(counted as received and failed, its reason noted on the journal row) and the rest is decoded.
Operations (reactions, edits, revokes, receipts) carry the chat and sender of the event that brought
them (``MessageSource``, not the ids inside the protocol message, which the sender writes), so
ingestion can check who may change what.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from google.protobuf.message import DecodeError as ProtobufDecodeError
from neonize import events as nev
from neonize.proto import Neonize_pb2 as N
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as E
from neonize.proto.waHistorySync import WAWebProtobufsHistorySync_pb2 as H
from neonize.proto.waWeb.WAWebProtobufsWeb_pb2 import WebMessageInfo

from sync.identity import normalize_jid
from sync.records import (  # noqa: F401 - re-exported: the records are what decode_event returns
    MAX_ID,
    MAX_JID,
    ChatRecord,
    Decoded,
    EditRecord,
    GroupRecord,
    HistoryInfo,
    ItemFailure,
    MessageContent,
    MessageRecord,
    ReactionRecord,
    ReceiptRecord,
    RevokeRecord,
)

MAX_BODY = 65_536  # WhatsApp's own text limit; longer bodies are cut and the cut is recorded in ``extra``.
FUTURE_TOLERANCE = timedelta(days=1)


class DecodeError(ValueError):
    """The payload cannot be turned into records (corrupt, wrong type, missing required data)."""


# --- helpers ------------------------------------------------------------------------------------


def _s(value, problems: list[str] | None = None, what: str = "text") -> str:
    """A protobuf string field: proto2 hands invalid UTF-8 back as bytes; replace and say so."""
    if isinstance(value, bytes):
        if problems is not None:
            problems.append(f"invalid UTF-8 in {what} replaced")
        return value.decode("utf-8", errors="replace")
    return value or ""


def jid_to_str(j: N.JID) -> str:
    if not j.User and not j.Server:
        return ""
    return normalize_jid(f"{j.User}@{j.Server}" if j.User else j.Server)


_fromtimestamp = datetime.fromtimestamp


def normalize_timestamp(value: int | float | None, received_at: datetime, latest: datetime | None = None) -> datetime:
    """Seconds, milliseconds or microseconds since the epoch -> aware UTC datetime.

    Zero/absent or more than a day in the future (a broken phone clock) falls back to when the event
    was received. ``latest`` is ``received_at + FUTURE_TOLERANCE``; loops pass it computed once.
    """
    if not value or value <= 0:
        return received_at
    value = float(value)
    if value > 1e14:
        value /= 1_000_000
    elif value > 1e11:
        value /= 1000
    try:
        ts = _fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return received_at
    if ts > (received_at + FUTURE_TOLERANCE if latest is None else latest):
        return received_at
    return ts


def _cut(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[:limit]


def _conversation_size(text: str) -> int:
    """Serialized size of an E2E Message whose only field is ``conversation=text`` (a str): one tag
    byte, the length as a varint, the UTF-8 bytes.

    ``m.ByteSize() == _conversation_size(m.conversation)`` (text not empty) proves that nothing else
    is set: every other field, known or unknown, adds at least its tag byte. It costs a third of
    ``ListFields()``, which the general classification needs for the wrappers that could hide
    beside the text."""
    n = len(text) if text.isascii() else len(text.encode())
    return n + (2 if n < 0x80 else 3 if n < 0x4000 else 4 if n < 0x20_0000 else 5 if n < 0x1000_0000 else 6)


_WRAPPERS = (
    "ephemeralMessage", "viewOnceMessage", "viewOnceMessageV2", "viewOnceMessageV2Extension",
    "documentWithCaptionMessage", "editedMessage", "botInvokeMessage", "groupMentionedMessage",
    "lottieStickerMessage",
)
_METADATA_FIELDS = {"messageContextInfo", "senderKeyDistributionMessage", "fastRatchetKeySenderKeyDistributionMessage"}
_MEDIA = {
    "imageMessage": "image",
    "videoMessage": "video",
    "ptvMessage": "video",
    "audioMessage": "audio",
    "documentMessage": "document",
    "stickerMessage": "sticker",
}
# The fields of each media type: getattr(m, "fileName", "") on a type without one raises inside, which
# costs more than the rest of the message's decoding.
_MEDIA_FIELDS = {
    name: frozenset(E.Message.DESCRIPTOR.fields_by_name[name].message_type.fields_by_name) for name in _MEDIA
}


_WRAPPER_SET = frozenset(_WRAPPERS) | {"deviceSentMessage"}


def unwrap_fields(msg: E.Message, listed: list | None = None) -> tuple[E.Message, dict]:
    """Strip ephemeral / view-once / device-sent / document-with-caption wrappers (nested too);
    returns the innermost message and its set fields by name (one ListFields call per level;
    ``listed`` is ``msg.ListFields()`` when the caller already has it)."""
    for _ in range(8):
        fields = {fd.name: value for fd, value in (msg.ListFields() if listed is None else listed)}
        listed = None
        for name in _WRAPPER_SET.intersection(fields):
            inner = fields[name]
            if inner.HasField("message"):
                msg = inner.message
                break
        else:
            return msg, fields
    return msg, {fd.name: value for fd, value in msg.ListFields()}


def unwrap(msg: E.Message) -> E.Message:
    return unwrap_fields(msg)[0]


@dataclass(slots=True, kw_only=True)
class _Content(MessageContent):
    """One classified E2E message: a message's content, or an operation on another message (its
    ``body``: the reaction's emoji, the edit's new text), or an item ignored for ``ignored_reason``."""

    kind: str = "message"  # "message" | "reaction" | "edit" | "revoke" | "ignored"
    # The target's id from the protocol message's key. Its remoteJID/fromMe are left out: the sender
    # writes them, relative to its own side of the chat; the event's MessageSource says who and where.
    target_id: str = ""
    ignored_reason: str = ""
    edit_timestamp_ms: int = 0


def _quoted(ctx: E.ContextInfo, problems) -> tuple[str, str]:
    stanza_id = ctx.stanzaID
    if not stanza_id:
        return "", ""
    q = ctx.quotedMessage  # the empty default when absent
    quoted = q.conversation
    # A plain text alone (see _conversation_size) is its own preview; anything else is looked into.
    if not (quoted and quoted.__class__ is str and q.ByteSize() == _conversation_size(quoted)):
        quoted = ""
        if ctx.HasField("quotedMessage"):
            q = unwrap(q)
            quoted = _s(q.conversation, problems) or _s(q.extendedTextMessage.text, problems)
            if not quoted:
                for name in _MEDIA:
                    if q.HasField(name):
                        caption = getattr(q, name).caption if "caption" in _MEDIA_FIELDS[name] else ""
                        quoted = _s(caption, problems) or f"[{_MEDIA[name]}]"
                        break
    return _cut(stanza_id, MAX_ID), _cut(quoted, 300)


def media_ref_of(field_name: str, media) -> bytes:
    """The download locator of a media message: an E2E Message with just its media part, stripped of the
    inline thumbnail and context (quoted message, mentions) that a download does not need."""
    part = media.__class__()
    part.CopyFrom(media)
    for name in ("jpegThumbnail", "contextInfo", "pngThumbnail"):
        if name in _MEDIA_FIELDS[field_name]:
            part.ClearField(name)
    ref = E.Message()
    getattr(ref, field_name).CopyFrom(part)
    return ref.SerializeToString()


def media_ref_sha256(ref: bytes) -> str:
    """The plaintext file's SHA-256 (hex) that a media locator announces; "" when it names none."""
    try:
        message = E.Message.FromString(ref)
    except Exception:  # noqa: BLE001 - a locator we wrote ourselves; a broken one just skips the check
        return ""
    for _, part in message.ListFields():
        digest = getattr(part, "fileSHA256", b"")
        return digest.hex() if digest else ""
    return ""


def content_of(raw: E.Message, problems: list[str], listed: list | None = None) -> _Content:
    """Classify one (possibly wrapped) E2E message (``listed``: ``raw.ListFields()`` if already known)."""
    msg, f = unwrap_fields(raw, listed)
    if "conversation" in f:
        return _Content("text", _s(f["conversation"], problems))
    if "extendedTextMessage" in f:
        ext = f["extendedTextMessage"]
        qid, qbody = _quoted(ext.contextInfo, problems) if ext.HasField("contextInfo") else ("", "")
        return _Content("text", _s(ext.text, problems), quoted_external_id=qid, quoted_body=qbody)
    for name in _MEDIA.keys() & f.keys():
        m, has = f[name], _MEDIA_FIELDS[name]
        qid, qbody = _quoted(m.contextInfo, problems) if m.HasField("contextInfo") else ("", "")
        return _Content(
            _MEDIA[name], _s(m.caption, problems) if "caption" in has else "", raw_type=name,
            media_mimetype=_cut(_s(m.mimetype, problems), 128), media_size=m.fileLength or None,
            media_filename=_cut(_s(m.fileName, problems), 255) if "fileName" in has else "",
            extra={"seconds": m.seconds} if "seconds" in has and m.seconds else {},
            quoted_external_id=qid, quoted_body=qbody, media_ref=media_ref_of(name, m),
        )
    if "contactMessage" in f:
        c = f["contactMessage"]
        return _Content("contact", _s(c.displayName, problems),
                        extra={"contacts": [{"name": _s(c.displayName, problems), "vcard": _s(c.vcard, problems)}]})
    if "contactsArrayMessage" in f:
        arr = f["contactsArrayMessage"]
        cards = [{"name": _s(c.displayName, problems), "vcard": _s(c.vcard, problems)} for c in arr.contacts]
        return _Content("contact", _s(arr.displayName, problems) or ", ".join(c["name"] for c in cards),
                        extra={"contacts": cards})
    if "locationMessage" in f or "liveLocationMessage" in f:
        live = "liveLocationMessage" in f
        loc = f["liveLocationMessage"] if live else f["locationMessage"]
        name = _s(getattr(loc, "name", ""), problems)
        address = _s(getattr(loc, "address", ""), problems)
        return _Content("location", name or address or _s(getattr(loc, "caption", ""), problems),
                        extra={"latitude": loc.degreesLatitude, "longitude": loc.degreesLongitude,
                               "name": name, "address": address, "live": live})
    if "reactionMessage" in f:
        r = f["reactionMessage"]
        return _Content(kind="reaction", body=_s(r.text, problems), target_id=r.key.ID)
    if "protocolMessage" in f:
        p = f["protocolMessage"]
        if p.type == E.ProtocolMessage.REVOKE:
            return _Content(kind="revoke", target_id=p.key.ID)
        if p.type == E.ProtocolMessage.MESSAGE_EDIT:
            new = content_of(p.editedMessage, problems) if p.HasField("editedMessage") else _Content()
            return _Content(kind="edit", body=new.body, target_id=p.key.ID, edit_timestamp_ms=p.timestampMS)
        return _Content(kind="ignored", ignored_reason=f"protocol_{E.ProtocolMessage.Type.Name(p.type).lower()}"
                        if p.type in E.ProtocolMessage.Type.values() else "protocol_unknown")
    content = [name for name in f if name not in _METADATA_FIELDS]
    if not content:
        if "senderKeyDistributionMessage" in f or "fastRatchetKeySenderKeyDistributionMessage" in f:
            return _Content(kind="ignored", ignored_reason="key_distribution")
        return _Content("unsupported", raw_type="empty")
    return _Content("unsupported", raw_type=_cut(content[0], 64))


_CONVERSATION = E.Message.DESCRIPTOR.fields_by_name["conversation"]
_EXTENDED_TEXT = E.Message.DESCRIPTOR.fields_by_name["extendedTextMessage"]


def _plain_text(listed: list, problems: list[str]) -> tuple[str, str, str] | None:
    """(body, quoted id, quoted body) of a message whose set fields (``ListFields()``) are plain or
    extended text plus nothing but metadata, else None (then ``content_of`` decides). No wrapper can
    be among them, so this is what ``content_of`` would return, without its per-message dict."""
    if len(listed) != 1:
        if not listed:
            return None
        for fd, _ in listed[1:]:
            if fd.name not in _METADATA_FIELDS:
                return None
    fd, value = listed[0]
    if fd is _CONVERSATION:
        return (value if value.__class__ is str else _s(value, problems)), "", ""
    if fd is _EXTENDED_TEXT:
        qid, qbody = _quoted(value.contextInfo, problems) if value.HasField("contextInfo") else ("", "")
        return _s(value.text, problems), qid, qbody
    return None


def _id_problem(external_id: str, what: str = "message") -> str:
    """Why ``external_id`` cannot identify a message ("" when it can)."""
    if not external_id:
        return f"{what} without an id"
    if len(external_id) > MAX_ID:
        return f"{what} id longer than {MAX_ID} characters"
    return ""


def _check_id(external_id: str) -> None:
    """For single-item events (MessageEv): a message without a usable id fails its journal row."""
    problem = _id_problem(external_id)
    if problem:
        raise DecodeError(problem)


# --- per event ----------------------------------------------------------------------------------

_RECEIPT_STATUS = {
    N.Receipt.DELIVERED: "delivered",
    N.Receipt.READ: "read",
    N.Receipt.PLAYED: "played",
}
_WEB_STATUS = {
    WebMessageInfo.SERVER_ACK: "sent",
    WebMessageInfo.DELIVERY_ACK: "delivered",
    WebMessageInfo.READ: "read",
    WebMessageInfo.PLAYED: "played",
    WebMessageInfo.PENDING: "sending",
    WebMessageInfo.ERROR: "failed",
}


def _parse(event_name: str, payload: bytes):
    cls = DECODERS.get(event_name)
    if cls is None:
        raise DecodeError(f"unknown event name {event_name!r}")
    try:
        ev = cls[0].FromString(payload)
    except ProtobufDecodeError as exc:
        raise DecodeError(f"{event_name}: payload is not a valid {cls[0].DESCRIPTOR.full_name} ({exc})") from None
    if event_name == "HistorySyncEv":
        # Walking every required field of thousands of nested messages costs more than decoding
        # them; the decoder treats absent nested fields as empty, so check the envelope only.
        if not (ev.HasField("Data") and ev.Data.HasField("syncType")):
            raise DecodeError(f"{event_name}: payload lacks required fields (Data.syncType)")
    elif not ev.IsInitialized():
        missing = ", ".join(ev.FindInitializationErrors()[:5])
        raise DecodeError(f"{event_name}: payload lacks required fields ({missing})")
    return ev, cls[1]


def _add_message(out: Decoded, external_id: str, chat: str, sender: str, from_me: bool, is_group: bool, ts: datetime,
                 push_name: str, status: str, live: bool, item, body: str, quoted_id: str = "", quoted_body: str = "",
                 c: _Content | None = None) -> None:
    """The one builder of a ``MessageRecord``, for every decode path: plain text (``c`` None: the history
    loop's common case, without a ``_Content``) or classified content ``c``. A message without a usable
    id becomes an ItemFailure (``item``: the history message, whose order the note names; None for a
    MessageEv); a body over
    ``MAX_BODY`` is cut and the cut recorded in ``extra``."""
    if not external_id or len(external_id) > MAX_ID:
        out.failures.append(ItemFailure(_id_problem(external_id), chat, external_id, _position(item)))
        return
    extra = {} if c is None else c.extra  # each _Content has its own dict
    if len(body) > MAX_BODY:
        out.problems.append(f"message {external_id}: body of {len(body)} characters cut to {MAX_BODY}")
        extra["truncated_from"] = len(body)
        body = body[:MAX_BODY]
    if len(push_name) > 255:
        push_name = push_name[:255]
    if c is None:
        out.messages.append(MessageRecord(external_id, chat, sender, from_me, is_group, ts, "text", body, "", "", None,
                                          "", extra, quoted_id, quoted_body, b"", push_name, status, live))
    else:
        out.messages.append(MessageRecord(
            external_id, chat, sender, from_me, is_group, ts, c.type, body, c.raw_type, c.media_mimetype, c.media_size,
            c.media_filename, extra, c.quoted_external_id, c.quoted_body, c.media_ref, push_name, status, live))


def _position(item) -> str:
    """Where a failed item sits in its event: a history message's order ("" for a MessageEv)."""
    return "" if item is None else f"message order {item.msgOrderID}"


def _add_record(out: Decoded, c: _Content, *, external_id: str, chat: str, sender: str, from_me: bool, is_group: bool,
                ts: datetime, push_name: str, status: str, live: bool, item=None) -> None:
    """One message or operation. A message without a usable id, or an operation without a usable
    target id, becomes an ItemFailure (MessageEv checks its id before: there it fails the row).
    An operation's chat and sender are those of the event that carried it (see ReactionRecord)."""
    kind = c.kind
    if kind == "message":
        _add_message(out, external_id, chat, sender, from_me, is_group, ts, push_name, status, live, item, c.body, c=c)
        return
    if kind == "ignored":
        out.ignored[c.ignored_reason] = out.ignored.get(c.ignored_reason, 0) + 1
        return
    target = _s(c.target_id)
    problem = _id_problem(target, f"{kind} target")
    if problem:
        out.failures.append(ItemFailure(problem, chat, external_id, _position(item)))
    elif kind == "reaction":
        out.reactions.append(ReactionRecord(target, chat, sender, from_me, c.body, ts))
    elif kind == "edit":
        out.edits.append(EditRecord(target, chat, sender, from_me, _cut(c.body, MAX_BODY), ts))
    else:
        out.revokes.append(RevokeRecord(target, chat, sender, from_me, ts))


def _decode_message(ev: N.Message, out: Decoded, received_at: datetime) -> None:
    info = ev.Info
    src = info.MessageSource
    chat, sender = jid_to_str(src.Chat), jid_to_str(src.Sender)
    if not chat:
        raise DecodeError("MessageEv without a chat JID")
    sender_alt, recipient_alt = jid_to_str(src.SenderAlt), jid_to_str(src.RecipientAlt)
    if not src.IsGroup:
        # 1:1: the other party's alternate form (LID <-> phone number) is a mapping we learn here.
        if src.IsFromMe:
            _mapping(out, chat, recipient_alt)
        else:
            _mapping(out, sender or chat, sender_alt)
    else:
        _mapping(out, sender, sender_alt)
    push_name = _s(info.Pushname, out.problems, "push name")
    if push_name and not src.IsFromMe and sender:
        out.push_names.append((sender, _cut(push_name, 255)))
    content = content_of(ev.Message if ev.HasField("Message") else ev.Raw, out.problems)
    if content.kind == "message":
        _check_id(_s(info.ID))  # the event is this one message: without a usable id the row fails
    _add_record(
        out, content, external_id=_s(info.ID), chat=chat, sender="" if src.IsFromMe else (sender or chat),
        from_me=src.IsFromMe, is_group=src.IsGroup or chat.endswith("@g.us"),
        ts=normalize_timestamp(info.Timestamp, received_at), push_name=push_name,
        status="sent" if src.IsFromMe else "", live=True,
    )


def _mapping(out: Decoded, a: str, b: str) -> None:
    if not a or not b:
        return
    if len(a) > MAX_JID or len(b) > MAX_JID:
        out.failures.append(ItemFailure(f"LID mapping with a JID longer than {MAX_JID} characters",
                                        position=f"{a[:MAX_JID]} = {b[:MAX_JID]}"))
        return
    if a.endswith("@lid") and b.endswith("@s.whatsapp.net"):
        out.mappings.append((b, a))
    elif b.endswith("@lid") and a.endswith("@s.whatsapp.net"):
        out.mappings.append((a, b))


# The history decoder is one loop over every message of a sync (100,000s): kept inline on purpose,
# a helper call per message costs measurably in bench/ingest (ADR-9); hence the complexity exception.
def _decode_history(ev: N.HistorySync, out: Decoded, received_at: datetime) -> None:  # noqa: C901
    data = ev.Data
    out.history = HistoryInfo(
        sync_type=H.HistorySync.HistorySyncType.Name(data.syncType) if data.syncType in
        H.HistorySync.HistorySyncType.values() else str(data.syncType),
        chunk_order=data.chunkOrder if data.HasField("chunkOrder") else None,
        progress=min(data.progress, 100) if data.HasField("progress") else None,
    )
    for m in data.phoneNumberToLidMappings:
        _mapping(out, normalize_jid(m.pnJID), normalize_jid(m.lidJID))
    for p in data.pushnames:
        if p.ID and p.pushname:
            out.push_names.append((normalize_jid(p.ID), _cut(_s(p.pushname, out.problems, "push name"), 255)))
    problems, push_names_append, add_message = out.problems, out.push_names.append, _add_message
    latest = received_at + FUTURE_TOLERANCE
    failures = out.failures
    for conv_index, conv in enumerate(data.conversations):
        chat = normalize_jid(_s(conv.ID))
        if not chat or len(chat) > MAX_JID:
            # Its messages have no chat to go to: each is a failed item; the other conversations go on.
            reason = "history conversation without an ID" if not chat else \
                f"history conversation ID longer than {MAX_JID} characters"
            failures.append(ItemFailure(reason, chat, position=f"conversation #{conv_index}",
                                        count=len(conv.messages)))
            continue
        pn, lid = normalize_jid(conv.pnJID), normalize_jid(conv.lidJID)
        _mapping(out, pn or chat, lid or chat)
        last = conv.lastMsgTimestamp or conv.conversationTimestamp
        out.chats.append(ChatRecord(
            chat_jid=chat, name=_cut(_s(conv.name or conv.displayName, out.problems, "chat name"), 255), pn_jid=pn,
            lid_jid=lid, unread_count=conv.unreadCount if conv.HasField("unreadCount") else None,
            last_message_at=normalize_timestamp(last, received_at) if last else None,
        ))
        is_group = chat.endswith("@g.us")
        for hmsg in conv.messages:
            wmi = hmsg.message
            key = wmi.key
            from_me = key.fromMe
            if from_me:
                sender = ""
                status = _WEB_STATUS.get(wmi.status, "") if wmi.HasField("status") else "sent"
            elif is_group:
                sender = normalize_jid(wmi.participant or key.participant)
                status = ""
                if len(sender) > MAX_JID:
                    failures.append(ItemFailure(f"sender JID longer than {MAX_JID} characters", chat, _s(key.ID),
                                                f"message order {hmsg.msgOrderID}"))
                    continue
            else:
                sender = chat
                status = ""
            push_name = wmi.pushName
            if push_name.__class__ is not str or len(push_name) > 255:
                push_name = _cut(_s(push_name, problems, "push name"), 255)
            if push_name and sender:
                push_names_append((sender, push_name))
            external_id = key.ID
            if external_id.__class__ is not str:
                external_id = _s(external_id)
            seconds = wmi.messageTimestamp
            if 0 < seconds <= 100_000_000_000:  # seconds, as history sends them: normalize_timestamp's common case
                ts = _fromtimestamp(seconds, UTC)
                if ts > latest:
                    ts = received_at
            else:
                ts = normalize_timestamp(seconds, received_at, latest)
            raw = wmi.message  # the empty default when absent
            body = raw.conversation
            n = len(body)
            if n and body.__class__ is str and raw.ByteSize() == (
                n + 2 if n < 0x80 and body.isascii() else _conversation_size(body)  # the short ASCII case inline
            ):
                quoted_id = quoted_body = ""  # plain text and nothing else (see _conversation_size)
            else:
                listed = raw.ListFields() if wmi.HasField("message") else None
                text = None if listed is None else _plain_text(listed, problems)
                if text is None:
                    if listed is not None:
                        content = content_of(raw, problems, listed)
                    elif wmi.HasField("messageStubType"):
                        content = _Content(kind="ignored", ignored_reason="stub")
                    else:
                        content = _Content("unsupported", raw_type="empty")
                    _add_record(out, content, external_id=external_id, chat=chat, sender=sender, from_me=from_me,
                                is_group=is_group, ts=ts, push_name=push_name, status=status, live=False,
                                item=hmsg)
                    continue
                body, quoted_id, quoted_body = text
            add_message(out, external_id, chat, sender, from_me, is_group, ts, push_name, status, False, hmsg, body,
                        quoted_id, quoted_body)


def _decode_receipt(ev: N.Receipt, out: Decoded, received_at: datetime) -> None:
    status = _RECEIPT_STATUS.get(ev.Type)
    src = ev.MessageSource
    chat = jid_to_str(src.Chat)
    if status is None or not ev.MessageIDs:
        out.problems.append(f"receipt of type {N.Receipt.ReceiptType.Name(ev.Type)} carries no status change")
        return
    ids = []
    for i, mid in enumerate(ev.MessageIDs):
        mid = _s(mid)
        if len(mid) > MAX_ID:  # (empty ids name nothing and are left out, as always)
            out.failures.append(ItemFailure(_id_problem(mid, "receipt target"), chat, position=f"message id #{i}"))
        elif mid:
            ids.append(mid)
    if ids:
        sender = "" if src.IsFromMe else (jid_to_str(src.Sender) or chat)
        # The other form of the sender (LID <-> phone), when WhatsApp gives it: learned before the
        # receipt is checked, so a receipt from the LID of a chat known by its phone JID is its party's.
        _mapping(out, sender, jid_to_str(src.SenderAlt))
        out.receipts.append(ReceiptRecord(chat, sender, src.IsFromMe, ids, status,
                                          normalize_timestamp(ev.Timestamp, received_at)))


def _member(out: Decoded, group: str, jid: str, what: str) -> bool:
    """A group member's JID fits the identity columns (else a failed item)."""
    if len(jid) <= MAX_JID:
        return True
    out.failures.append(ItemFailure(f"{what} JID longer than {MAX_JID} characters", group, position=jid[:MAX_JID]))
    return False


def _participants(out: Decoded, group: str, parts) -> list[tuple[str, bool]]:
    members = []
    for p in parts:
        j, lid, pn = jid_to_str(p.JID), jid_to_str(p.LID), jid_to_str(p.PhoneNumber)
        if not all(_member(out, group, x, "group participant") for x in (j, lid, pn)):
            continue
        _mapping(out, pn or j, lid or j)
        member = pn or j or lid
        if member:
            members.append((member, p.IsAdmin or p.IsSuperAdmin))
            if p.DisplayName:
                out.push_names.append((member, _cut(_s(p.DisplayName, out.problems), 255)))
    return members


def _decode_joined_group(ev: N.JoinedGroup, out: Decoded, received_at: datetime) -> None:
    gi = ev.GroupInfo
    group = jid_to_str(gi.JID)
    if not group:
        raise DecodeError("JoinedGroupEv without a group JID")
    out.groups.append(GroupRecord(group, _s(gi.GroupName.Name, out.problems) or None, _participants(out, group, gi.Participants)))


def _decode_group_info(ev: N.GroupInfoEvent, out: Decoded, received_at: datetime) -> None:
    group = jid_to_str(ev.JID)
    if not group:
        raise DecodeError("GroupInfoEv without a group JID")
    def members(jids, what):
        return [j for j in map(jid_to_str, jids) if _member(out, group, j, what)]

    out.groups.append(GroupRecord(
        group, _s(ev.Name.Name, out.problems) if ev.HasField("Name") else None, None,
        join=members(ev.Join, "joining member"), leave=members(ev.Leave, "leaving member"),
        promote=members(ev.Promote, "promoted member"), demote=members(ev.Demote, "demoted member"),
    ))


def _decode_undecryptable(ev: N.UndecryptableMessage, out: Decoded, received_at: datetime) -> None:
    # whatsmeow retries decryption and delivers the real MessageEv later; keep a count.
    out.ignored["undecryptable"] = out.ignored.get("undecryptable", 0) + 1


def _decode_catchup_start(ev, out: Decoded, received_at: datetime) -> None:
    out.catchup_started = True


def _decode_catchup_end(ev, out: Decoded, received_at: datetime) -> None:
    out.catchup_finished = True


def _noop(ev, out: Decoded, received_at: datetime) -> None:
    """Session-level events (connected, pairing, presence, ...) carry nothing for the sync engine."""


DECODERS = {
    "MessageEv": (nev.MessageEv, _decode_message),
    "HistorySyncEv": (nev.HistorySyncEv, _decode_history),
    "ReceiptEv": (nev.ReceiptEv, _decode_receipt),
    "JoinedGroupEv": (nev.JoinedGroupEv, _decode_joined_group),
    "GroupInfoEv": (nev.GroupInfoEv, _decode_group_info),
    "UndecryptableMessageEv": (nev.UndecryptableMessageEv, _decode_undecryptable),
    "OfflineSyncPreviewEv": (nev.OfflineSyncPreviewEv, _decode_catchup_start),
    "OfflineSyncCompletedEv": (nev.OfflineSyncCompletedEv, _decode_catchup_end),
}
# Every other neonize event class is known and decoded (so corrupt bytes are still caught) but
# carries nothing to store.
for _name in dir(nev):
    _cls = getattr(nev, _name)
    if _name.endswith("Ev") and _name not in DECODERS and hasattr(_cls, "FromString"):
        DECODERS[_name] = (_cls, _noop)


def decode_event(event_name: str, payload: bytes, received_at: datetime) -> Decoded:
    """Parse one journaled event into records; raises DecodeError on bad input."""
    ev, fn = _parse(event_name, bytes(payload))
    out = Decoded(event_name)
    fn(ev, out, received_at)
    return out
