"""Importing a parsed chat export (``sync.chat_export``) into one conversation, never duplicating a message.

An export names no message ids and no JIDs, only times (to the minute, or the second on iOS), sender
names and texts. So:

- Each exported message gets a deterministic id, ``export-<sha256 of chat, time, sender, text and its
  occurrence among identical lines>``: a second import of the same file (or of a longer export of the same
  chat) meets the unique (connection, external_id) constraint and adds nothing.
- An exported message that the sync already stored is not imported again: a stored message of the same
  conversation, the same direction (and, in a group, the same sender name), whose time falls within the
  export's precision (the minute it shows, or the second) and whose text is the same (a media line
  matches a stored media message of that kind) is taken as that message. Each stored message stands for
  one exported line at most, so two identical "ok"s in one minute against one stored "ok" import one.
- Direction: lines of ``me`` (the name the exporting phone's owner shows under) are outbound, the rest
  inbound. System lines are stored as ``system`` messages.

- Media: a .zip export holds the files its attachment lines name (``<attached: 0001-PHOTO-....jpg>``,
  ``IMG-...jpg (file attached)``). Each is stored like received media (``inbox.media``: content-addressed,
  checksummed, its type sniffed from the bytes, a thumbnail for images) as a ``fetched`` ``MediaFile`` of
  its message, within its kind's size limit (a larger one is a ``failed`` row saying so). A line matched to a
  synced media message whose file WhatsApp no longer serves (pending, failed, expired) gives it the file.
  Files written by an import that then rolls back are deleted again.

Everything is written in one transaction, through ``sync.upsert.insert_new`` (the same path and database
checks as a sync batch), accounted in a ``SyncRun`` of kind ``import`` (sync_type ``chat_export``):
received = saved + duplicates + skipped, where duplicates are lines already stored (by id or by the
matching above).
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from inbox import search
from inbox.formatting import message_preview
from inbox.models import Contact, ContactIdentity, Conversation, MediaFile, Message
from sync.chat_export import Attachments, ExportedMessage
from sync.models import SyncRun

logger = logging.getLogger(__name__)

ID_PREFIX = "export-"
# The message columns an export does not fill (a COPY names every NOT NULL column; defaults are Django's).
BLANK_COLUMNS = ["raw_type", "media_mimetype", "sender_jid", "quoted_external_id", "quoted_body", "reactions",
                 "send_attempts", "error"]
BLANK = ("", "", "", "", "", {}, 0, "")


@dataclass
class ChatImportResult:
    conversation_id: int
    received: int
    saved: int
    matched_synced: int
    already_imported: int
    run_id: int
    media_attached: int = 0

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def _norm(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").strip().split("\n"))


def external_id_for(chat_jid: str, m: ExportedMessage, occurrence: int) -> str:
    key = "\x1f".join([chat_jid, m.sent_at.isoformat(), m.sender, m.type, _norm(m.text), m.media_filename,
                       str(occurrence)])
    return ID_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:40]


def _conversation(conn, chat_jid: str, contact_name: str) -> Conversation:
    """The (number, chat) conversation, created with its contact and identity when the chat is new here."""
    conv = Conversation.objects.for_tenant(conn.tenant_id).filter(connection=conn, chat_jid=chat_jid).first()
    if conv is not None:
        return conv
    identity = ContactIdentity.objects.for_tenant(conn.tenant_id).filter(jid=chat_jid).select_related("contact").first()
    is_group = chat_jid.endswith("@g.us")
    if identity is None:
        server = chat_jid.rsplit("@", 1)[-1]
        kind = {"g.us": "group", "lid": "lid", "s.whatsapp.net": "pn"}.get(server, "other")
        contact = Contact.objects.create(tenant_id=conn.tenant_id, display_name=contact_name,
                                         kind=Contact.Kind.GROUP if is_group else Contact.Kind.PERSON,
                                         phone_number="+" + chat_jid.split("@")[0] if kind == "pn" else "")
        ContactIdentity.objects.create(tenant_id=conn.tenant_id, contact=contact, jid=chat_jid, kind=kind)
    else:
        contact = identity.contact
    return Conversation.objects.create(tenant_id=conn.tenant_id, connection=conn, contact=contact, chat_jid=chat_jid,
                                       is_group=is_group)


def do_import_chat_export(conn, chat_jid: str, messages: list[ExportedMessage], *, me: str,
                          contact_name: str = "", attachments: Attachments | None = None) -> ChatImportResult:
    """Write ``messages`` (parsed, file order) into the conversation of ``chat_jid`` on ``conn``, with the
    media files ``attachments`` (a .zip's) holds. Validates nothing beyond what the database checks; the
    caller resolved the number and the chat."""
    attachments = attachments if attachments is not None else Attachments()
    written: list[str] = []  # files this import stored: deleted again if it rolls back
    try:
        return _import(conn, chat_jid, messages, me=me, contact_name=contact_name, attachments=attachments,
                       written=written)
    except BaseException:
        _delete_files(written)
        raise


def _import(conn, chat_jid, messages, *, me, contact_name, attachments, written) -> ChatImportResult:
    from inbox.media import MEDIA_TYPES
    from sync.processor import finish_run, start_run
    from sync.upsert import insert_new

    with transaction.atomic():
        conv = _conversation(conn, chat_jid, contact_name or next((m.sender for m in messages if m.sender
                                                                   and m.sender != me), chat_jid))
        run = start_run(conn, SyncRun.Kind.IMPORT, sync_type="chat_export")
        seen = defaultdict(int)
        now = timezone.now()
        rows, matched, ids = [], 0, []
        files_for_new: dict[str, tuple[str, str]] = {}  # external id -> (kind, file name in the zip)
        files_for_synced: dict[int, tuple[str, str]] = {}  # stored message id -> (kind, file name)
        synced = _synced_candidates(conv, messages)
        for m in messages:
            key = (m.sent_at, m.sender, m.type, _norm(m.text), m.media_filename)
            occurrence = seen[key]
            seen[key] += 1
            outbound = bool(me) and m.sender == me
            has_file = m.type in MEDIA_TYPES and m.media_filename and m.media_filename in attachments
            taken = _take_synced(synced, m, outbound, conv.is_group)
            if taken is not None:
                matched += 1
                if has_file:
                    files_for_synced[taken["pk"]] = (m.type, m.media_filename)
                continue
            ext = external_id_for(chat_jid, m, occurrence)
            ids.append(ext)
            if has_file:
                files_for_new[ext] = (m.type, m.media_filename)
            rows.append((conn.tenant_id, conv.pk, conn.pk, ext,
                         Message.Direction.OUTBOUND if outbound else Message.Direction.INBOUND,
                         Message.Status.SENT if outbound else Message.Status.RECEIVED, m.type, m.text,
                         m.media_filename, "" if outbound or m.type == "system" else m.sender,
                         {"source": "chat_export", "line": m.line}, m.sent_at, *BLANK, now, now))
        columns = ["tenant_id", "conversation_id", "connection_id", "external_id", "direction", "status", "type",
                   "body", "media_filename", "sender_name", "extra", "sent_at", *BLANK_COLUMNS,
                   "created_at", "updated_at"]
        inserted = insert_new(Message, columns, rows, scope={"connection_id": conn.pk}, key="external_id")
        search.index_connection_messages(conn.pk, inserted)
        new_files = {ext: files_for_new[ext] for ext in inserted if ext in files_for_new}
        if new_files:
            by_ext = dict(Message.objects.for_tenant(conn.tenant_id).filter(connection=conn, external_id__in=list(new_files))
                          .values_list("external_id", "pk"))
            files_for_synced.update({by_ext[ext]: item for ext, item in new_files.items()})
        attached = _attach_files(conn, files_for_synced, attachments, written)
        _update_window(conv)
        already = len(rows) - len(inserted)
        SyncRun.objects.unscoped().filter(pk=run.pk).update(received=len(messages), saved=len(inserted),
                                                 duplicates=matched + already, chunks=1)
        run = finish_run(run)
    result = ChatImportResult(conversation_id=conv.pk, received=len(messages), saved=len(inserted),
                              matched_synced=matched, already_imported=already, run_id=run.pk, media_attached=attached)
    logger.info("sync.chat_export.imported", extra={"connection_id": conn.pk, "chat_jid": chat_jid, **result.as_dict()})
    return result


def _attach_files(conn, items: dict[int, tuple[str, str]], attachments: Attachments, written: list[str]) -> int:
    """Store the export's files of these messages (id -> (kind, file name)) as their fetched media: a message
    without a media row gets one, one whose download is pending or gave up gets the file; one that has its
    file already is left. Call inside the import's transaction. Returns how many files were attached."""
    import hashlib

    from inbox import media, mediatypes

    if not items:
        return 0
    tenant_id = conn.tenant_id
    existing = {f.message_id: f for f in MediaFile.objects.for_tenant(tenant_id).filter(message_id__in=list(items))
                .defer("ref")}
    store = media.storage()
    now = timezone.now()
    new_rows, updated, attached = [], [], 0
    for message_id, (kind, filename) in sorted(items.items()):
        row = existing.get(message_id)
        if row is not None and row.state == MediaFile.State.FETCHED:
            continue
        limit = mediatypes.max_bytes(kind)
        data = attachments.read(filename, limit)
        if data is None:
            if row is None:
                new_rows.append(MediaFile(
                    tenant_id=tenant_id, message_id=message_id, connection_id=conn.pk, kind=kind, filename=filename,
                    declared_size=attachments.size(filename), state=MediaFile.State.FAILED,
                    error=f"the file in the chat export is {attachments.size(filename)} bytes, over the {kind} "
                          f"limit of {limit}"))
            continue
        sha = hashlib.sha256(data).hexdigest()
        existed = store.exists(media.storage_name(tenant_id, sha))
        sha, mimetype, name, thumb = media.store_bytes(tenant_id, data)
        if not existed:
            written.extend([name] + ([thumb] if thumb else []))
        stored = {"state": MediaFile.State.FETCHED, "sha256": sha, "size": len(data), "mimetype": mimetype,
                  "storage_name": name, "thumbnail_name": thumb, "fetched_at": now, "error": "",
                  "next_attempt_at": None}
        if row is None:
            new_rows.append(MediaFile(tenant_id=tenant_id, message_id=message_id, connection_id=conn.pk, kind=kind,
                                      filename=filename, declared_mimetype=mimetype, declared_size=len(data), **stored))
        else:
            MediaFile.objects.for_tenant(tenant_id).filter(pk=row.pk).update(**stored, updated_at=now)
            updated.append(message_id)
        Message.objects.for_tenant(tenant_id).filter(pk=message_id).update(media_mimetype=mimetype, media_size=len(data))
        attached += 1
    MediaFile.objects.bulk_create(new_rows)
    media.publish_media_messages_on_commit(tenant_id, updated)  # synced messages shown without their file
    return attached


def _delete_files(names: list[str]) -> None:
    from inbox.media import storage

    store = storage()
    for name in names:
        if store.exists(name):
            store.delete(name)


def _synced_candidates(conv: Conversation, messages: list[ExportedMessage]) -> dict:
    """The conversation's stored messages (not from an export) in the export's time span, by minute."""
    if not messages:
        return {}
    start = min(m.sent_at for m in messages)
    end = max(m.sent_at for m in messages) + timedelta(seconds=60)
    out = defaultdict(list)
    for row in (Message.objects.for_tenant(conv.tenant_id).filter(conversation=conv, sent_at__gte=start, sent_at__lt=end)
                .exclude(external_id__startswith=ID_PREFIX)
                .values("pk", "sent_at", "direction", "type", "body", "sender_name").order_by("sent_at", "pk")):
        row["body"] = _norm(row["body"])
        out[row["sent_at"].replace(second=0, microsecond=0)].append(row)
    return out


def _take_synced(synced: dict, m: ExportedMessage, outbound: bool, is_group: bool) -> dict | None:
    """Consume the first stored message that is this exported line; returns it (its ``pk``...), or None."""
    direction = Message.Direction.OUTBOUND if outbound else Message.Direction.INBOUND
    bucket = synced.get(m.sent_at.replace(second=0, microsecond=0), [])
    text = _norm(m.text)
    for i, row in enumerate(bucket):
        if m.precision_seconds == 1 and abs((row["sent_at"] - m.sent_at).total_seconds()) >= 1:
            continue
        if m.type == "system":
            same = row["type"] == "system" and row["body"] == text
        elif m.type == "text":
            same = row["direction"] == direction and row["type"] == "text" and row["body"] == text
        else:  # a media line: a stored media message of that kind (its caption is not in the export line)
            same = row["direction"] == direction and row["type"] == m.type
        if same and is_group and not outbound and m.type != "system" and row["sender_name"]:
            same = row["sender_name"] == m.sender
        if same:
            del bucket[i]
            return row
    return None


def _update_window(conv: Conversation) -> None:
    """The conversation's last message is its newest message, whichever path stored it (an export can be
    newer than the sync; a chat created by the import has its creation time until then). The synced window
    (``oldest/newest_synced_at``) is the sync's own bookkeeping and is left alone."""
    last = (Message.objects.for_tenant(conv.tenant_id).filter(conversation=conv).order_by("-sent_at", "-pk")
            .only("sent_at", "body", "type").first())
    if last is not None:
        Conversation.objects.for_tenant(conv.tenant_id).filter(pk=conv.pk).update(
            last_message_at=last.sent_at, last_message_preview=message_preview(last.body, last.type))


def check_import_chat_export(conv: Conversation, upload, *, me: str, tz, date_order: str | None = None) -> ChatImportResult:
    """An uploaded export into this conversation (the conversation page): parse, then import. Raises
    ChatExportError (nothing written) for a file that is not an export or whose date order must be chosen.
    Call with the conversation already resolved through the tenant gate (``access_conversation``)."""
    from sync.chat_export import parse_chat_export, read_export

    messages = parse_chat_export(read_export(upload), tz=tz, date_order=date_order or None)
    conn = conv.connection
    with Attachments.of(upload) as attachments:
        return do_import_chat_export(conn, conv.chat_jid, messages, me=me or conn.push_name, attachments=attachments)
