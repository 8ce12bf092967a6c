"""``export_tenant``: one tenant's rows as one consistent snapshot in an export file (``archive.py``).

Consistency: every member is read inside one transaction; on PostgreSQL it is ``REPEATABLE READ, READ
ONLY``, so all members see the database as of the transaction's first query, whatever the runner and the
workers write meanwhile (a message committed during the export is in no member, never half in). SQLite
(the embedded default) reads inside one transaction too (WAL: a reader's snapshot is fixed at its first
read). Rows are read with server-side cursors (``iterator(chunk_size=...)``) and written as they come,
so memory does not grow with the tenant's size (``tests/inbox/test_snapshot.py`` measures it).

What is in it (one member each, in this order; the loader reads them in the same order):

| member | rows |
| --- | --- |
| ``tenant.jsonl.gz`` | the tenant (``TENANT_FIELDS``) |
| ``users.jsonl.gz`` | members with their role and ``member_since``; users any exported row names (``role`` null) |
| ``connections.jsonl.gz`` | numbers without their runtime state (leases, pairing codes, heartbeats, reconnect counters) |
| ``contacts.jsonl.gz``, ``identities.jsonl.gz`` | contacts and their WhatsApp ids |
| ``group_participants.jsonl.gz``, ``jid_mappings.jsonl.gz`` | group members; LID <-> phone pairs learned |
| ``conversations.jsonl.gz`` | chats with status, assignee (username), counters, synced window |
| ``messages.jsonl.gz`` | messages with reactions, receipt status, edit/delete marks, quoted ids, outbox state |
| ``revisions.jsonl.gz`` | previous bodies of edited messages, named by (connection, WhatsApp id) |
| ``alerts.jsonl.gz`` | the tenant's alerts, open and resolved |
| ``media.jsonl.gz`` (+ ``media/<sha256>``) | media rows and files (below) |
| ``labels.jsonl.gz`` ... | generic tables (``tables.py``): labels, links, notes, mentions, canned, snoozes, tokens, endpoints |

Users carry their password hashes, so logins survive a restore (the file is as sensitive as the database).
Rows carry their own primary keys (``id``) and name their parents by those ids (``connection_id``...);
the loader maps them to the ids of the database it writes into. Users are named by username.
Not exported: the tables ``tables.EXCLUDED`` names with their reasons (journal, sync runs, state history,
pending operations, search entries: rebuilt on import), and the api app's idempotency records and webhook
deliveries (excluded on their models); whatsmeow session keys and webhook signing secrets unless asked,
then encrypted (``sessions.py``; ``secrets.bin``). ``tests/inbox/test_snapshot_coverage.py`` keeps this
complete.

Media (``media.jsonl.gz``): one row per ``MediaFile`` (state, WhatsApp's download reference, declared and
sniffed type, sha256, size), naming its message by (number id, WhatsApp id); and, unless ``with_media`` is
off (``--without-media``), each distinct stored file once as the member ``media/<sha256>``: copied from
storage 1 MiB at a time (constant memory), its sha256 and size in the manifest like any member, so the
import's verification covers the bytes. ``manifest["media"]`` says "files" or "references"; a file the
storage has lost is left out and counted in ``manifest["media_missing"]`` (the import then has the row
downloaded again from WhatsApp). Thumbnails are not exported: the import makes them again.
"""

from __future__ import annotations

import logging
import time

from django.contrib.auth import get_user_model
from django.db import connections, router, transaction
from django.db.models import Q
from django.utils import timezone

from connections.models import Connection
from inbox import statements
from inbox.models import (
    Alert,
    Contact,
    ContactIdentity,
    Conversation,
    GroupParticipant,
    MediaFile,
    Membership,
    Message,
    MessageRevision,
    Tenant,
)
from inbox.snapshot.archive import ArchiveWriter
from inbox.snapshot.tables import all_tables

logger = logging.getLogger(__name__)

CHUNK = 2000

CONNECTION_FIELDS = [
    "id", "name", "transport", "status", "desired_state", "jid", "phone_number", "push_name", "paired_at",
    "last_connected_at", "status_detail", "skip_status_broadcasts", "skip_newsletters", "skip_broadcast_lists",
    "skip_groups", "archived_at", "created_at", "updated_at",
]
CONTACT_FIELDS = ["id", "kind", "display_name", "name_locked", "push_name", "phone_number", "notes", "attributes",
                  "created_at", "updated_at"]
IDENTITY_FIELDS = ["id", "contact_id", "jid", "kind", "created_at"]
PARTICIPANT_FIELDS = ["id", "group_id", "member_id", "is_admin"]
JID_MAPPING_FIELDS = ["id", "lid_jid", "pn_jid", "created_at"]
CONVERSATION_FIELDS = [
    "id", "connection_id", "contact_id", "chat_jid", "is_group", "status", "assignee__username", "last_message_at",
    "last_message_preview", "unread_count", "oldest_synced_at", "newest_synced_at", "created_at", "updated_at",
]
MESSAGE_FIELDS = [
    "id", "conversation_id", "connection_id", "external_id", "direction", "status", "type", "raw_type", "body",
    "media_mimetype", "media_size", "media_filename", "extra", "sender_jid", "sender_name", "sender_user__username",
    "quoted_external_id", "quoted_body", "reactions", "sent_at", "edited_at", "deleted_at", "send_attempts",
    "next_attempt_at", "error", "created_at", "updated_at",
]
REVISION_FIELDS = ["id", "message__connection_id", "message__external_id", "body", "replaced_at", "created_at"]
ALERT_FIELDS = [
    "id", "cause", "connection_id", "kind", "message", "created_at", "last_raised_at", "times_raised", "resolved_at",
    "acknowledged_at", "acknowledged_by__username",
]
MEDIA_FIELDS = [
    "id", "connection_id", "message__external_id", "kind", "history", "ref", "declared_mimetype", "declared_size",
    "filename", "state", "attempts", "error", "sha256", "size", "mimetype", "fetched_at", "created_at", "updated_at",
]
USER_FIELDS = ["id", "username", "email", "first_name", "last_name", "is_active", "password", "date_joined"]
# The hand-written members' columns by model (``tables.coverage_gaps`` checks them against the models).
MEMBER_FIELDS = {
    "connections.Connection": CONNECTION_FIELDS, "inbox.Contact": CONTACT_FIELDS, "inbox.ContactIdentity": IDENTITY_FIELDS,
    "inbox.GroupParticipant": PARTICIPANT_FIELDS, "sync.JidMapping": JID_MAPPING_FIELDS,
    "inbox.Conversation": CONVERSATION_FIELDS, "inbox.Message": MESSAGE_FIELDS, "inbox.MessageRevision": REVISION_FIELDS,
    "inbox.Alert": ALERT_FIELDS, "inbox.MediaFile": MEDIA_FIELDS,
}
TENANT_FIELDS = ["name", "slug", "alert_webhook_url", "time_zone", "media_retention_days", "archived_at", "created_at"]


def _renamed(field: str) -> str:
    """``assignee__username`` -> ``assignee``; ``message__external_id`` -> ``message_external_id``."""
    if field.endswith("__username"):
        return field[: -len("__username")]
    return field.replace("__", "_")


def _stream(queryset, fields: list[str], chunk_size: int):
    names = [_renamed(f) for f in fields]
    for values in queryset.order_by("id").values_list(*fields).iterator(chunk_size=chunk_size):
        yield dict(zip(names, values, strict=True))


def _users(tenant: Tenant, chunk_size: int):
    """Members (with ``role`` and ``member_since``) and every user a row of the tenant names (``role`` None)."""
    User = get_user_model()
    memberships = {u: (role, since) for u, role, since in
                   Membership.objects.filter(tenant=tenant).values_list("user_id", "role", "created_at")}
    named = (Q(pk__in=Message.objects.for_tenant(tenant).filter(sender_user__isnull=False).values("sender_user_id"))
             | Q(pk__in=Conversation.objects.for_tenant(tenant).filter(assignee__isnull=False).values("assignee_id"))
             | Q(pk__in=Alert.objects.for_tenant(tenant).filter(acknowledged_by__isnull=False).values("acknowledged_by_id")))
    for table in all_tables():
        for fk in table.users:
            named |= Q(pk__in=table.model.objects.for_tenant(tenant).filter(**{f"{fk}__isnull": False})
                       .values(f"{fk}_id"))
    users = User.objects.filter(Q(pk__in=list(memberships)) | named)
    for row in _stream(users, USER_FIELDS, chunk_size):
        row["role"], row["member_since"] = memberships.get(row["id"], (None, None))
        yield row


def tenant_members(tenant: Tenant, chunk_size: int = CHUNK):
    """(member name, rows) in the order the loader reads them. Call inside the snapshot transaction."""
    t = tenant
    yield "tenant.jsonl.gz", iter([{f: getattr(t, f) for f in TENANT_FIELDS}])
    yield "users.jsonl.gz", _users(t, chunk_size)
    yield "connections.jsonl.gz", _stream(Connection.objects.for_tenant(t), CONNECTION_FIELDS, chunk_size)
    yield "contacts.jsonl.gz", _stream(Contact.objects.for_tenant(t), CONTACT_FIELDS, chunk_size)
    yield "identities.jsonl.gz", _stream(ContactIdentity.objects.for_tenant(t), IDENTITY_FIELDS, chunk_size)
    yield "group_participants.jsonl.gz", _stream(GroupParticipant.objects.for_tenant(t), PARTICIPANT_FIELDS, chunk_size)
    from sync.models import JidMapping

    yield "jid_mappings.jsonl.gz", _stream(JidMapping.objects.for_tenant(t), JID_MAPPING_FIELDS, chunk_size)
    yield "conversations.jsonl.gz", _stream(Conversation.objects.for_tenant(t), CONVERSATION_FIELDS, chunk_size)
    yield "messages.jsonl.gz", _stream(Message.objects.for_tenant(t), MESSAGE_FIELDS, chunk_size)
    yield "revisions.jsonl.gz", _stream(MessageRevision.objects.for_tenant(t), REVISION_FIELDS, chunk_size)
    yield "alerts.jsonl.gz", _stream(Alert.objects.for_tenant(t), ALERT_FIELDS, chunk_size)
    yield "media.jsonl.gz", _stream(MediaFile.objects.for_tenant(t), MEDIA_FIELDS, chunk_size)
    for table in all_tables():
        yield table.member, _stream(table.model.objects.for_tenant(t), table.exported_columns(), chunk_size)


def tenant_secrets(tenant: Tenant) -> dict:
    """{member: {exported id: {column: value}}} of the tables' secret columns (webhook signing secrets):
    what ``secrets.bin`` holds, encrypted. Small (a tenant's endpoints), so built in memory."""
    out = {}
    for table in all_tables():
        if table.secrets:
            rows = table.model.objects.for_tenant(tenant).order_by("pk").values_list("pk", *table.secrets)
            out[table.member] = {str(pk): dict(zip(table.secrets, values, strict=True)) for pk, *values in rows}
    return out


def media_member(sha256: str) -> str:
    return f"media/{sha256}"


def write_media_files(out: ArchiveWriter, tenant: Tenant, chunk_size: int = CHUNK) -> dict:
    """Each distinct stored file of the tenant once, as ``media/<sha256>``, streamed from storage. Call
    inside the snapshot transaction. Returns {"files", "bytes", "missing"}."""
    from inbox.media import open_stored

    written = {"files": 0, "bytes": 0, "missing": 0}
    files = (MediaFile.objects.for_tenant(tenant).filter(state=MediaFile.State.FETCHED).exclude(sha256="")
             .values_list("sha256", "storage_name").distinct().order_by("sha256").iterator(chunk_size=chunk_size))
    for sha, name in files:
        try:
            source = open_stored(name)  # streamed from the storage, S3 included
        except FileNotFoundError:
            written["missing"] += 1
            logger.warning("snapshot.media_missing", extra={"tenant": tenant.slug, "storage_name": name})
            continue
        with source:
            meta = out.write_stream(media_member(sha), source)
        if meta["sha256"] != sha:  # the stored bytes changed: the import sees the mismatch and downloads again
            logger.warning("snapshot.media_corrupt", extra={"tenant": tenant.slug, "storage_name": name})
        written["files"] += 1
        written["bytes"] += meta["bytes"]
    return written


def export_tenant(tenant: Tenant, path, *, chunk_size: int = CHUNK, with_sessions: bool = False,
                  passphrase: str = "", with_media: bool = True, with_secrets: bool = False) -> dict:
    """Write ``tenant``'s snapshot to ``path`` (replaced atomically when complete); returns the manifest.

    Opens its own transaction; on PostgreSQL it must be the outermost one (a REPEATABLE READ snapshot is
    set by the transaction's first statement). Inside an outer transaction (tests) the snapshot is that
    transaction's, and ``snapshot`` in the manifest says so. ``with_sessions``: the paired numbers'
    whatsmeow keys too, encrypted with ``passphrase`` (inbox/snapshot/sessions.py). ``with_media`` off: the
    media rows only (references), not the files. ``with_secrets``: the webhook endpoints' signing secrets too,
    encrypted with ``passphrase`` (``secrets.bin``)."""
    if (with_sessions or with_secrets) and not passphrase:
        from inbox.snapshot.archive import ArchiveError

        raise ArchiveError("session keys and secrets are only exported encrypted: a passphrase is required")
    started = time.monotonic()
    using = router.db_for_read(Message)
    db = connections[using]
    outer = db.in_atomic_block
    with transaction.atomic(using=using):
        snapshot = "repeatable_read" if not outer and statements.begin_read_only_snapshot(db) else "transaction"
        snapshot_at = timezone.now()
        with ArchiveWriter(path) as out:
            for name, rows in tenant_members(tenant, chunk_size):
                out.write_member(name, rows)
            media = write_media_files(out, tenant, chunk_size) if with_media else None
            if with_sessions:
                from django.conf import settings

                from inbox.snapshot.sessions import export_sessions

                jids = sorted(Connection.objects.for_tenant(tenant).exclude(jid__isnull=True).exclude(jid="")
                              .values_list("jid", flat=True))
                blob, rows = export_sessions(jids, passphrase, settings.WHATSMEOW_STORE)
                out.write_blob("sessions.bin", blob, rows=rows, encrypted="aes-256-gcm+scrypt")
            if with_secrets:
                import json

                from inbox.snapshot.sessions import encrypt

                found = tenant_secrets(tenant)
                out.write_blob("secrets.bin", encrypt(json.dumps(found, sort_keys=True).encode(), passphrase),
                               rows=sum(len(v) for v in found.values()), encrypted="aes-256-gcm+scrypt")
            manifest = out.finish(tenant=tenant.slug, created_at=snapshot_at, database=db.vendor, snapshot=snapshot,
                                  sessions=with_sessions, secrets=with_secrets, media="files" if with_media else "references",
                                  media_missing=media["missing"] if media else 0)
    logger.info("snapshot.exported", extra={
        "tenant": tenant.slug, "path": str(path), "seconds": round(time.monotonic() - started, 2),
        "rows": {name: meta["rows"] for name, meta in manifest["files"].items() if "rows" in meta},
        "media_files": media})
    return manifest
