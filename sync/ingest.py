"""Decoded records -> Contact / Conversation / Message rows, in bulk. No protobuf here.

``ingest(connection, decoded_events)`` must run inside ``transaction.atomic()``; the processor calls
it once per journal batch. Every write is a set-based statement (bulk INSERT ... ON CONFLICT, a binary
COPY of the new messages, new conversations inserted with their aggregates and one UPDATE ... FROM
VALUES for existing ones, bulk updates for message changes); the number of queries depends on the
batch's shape, not on how many messages it carries. Identity merges (a LID and
a phone JID found to be one person) are the rare exception and do a few queries per merge.

On PostgreSQL, contacts, identities, JID mappings and conversations go in as arrays (INSERT ...
SELECT FROM unnest(...) ON CONFLICT DO NOTHING RETURNING), without a model instance per row; SQLite
(the embedded default, small batches) uses the ORM for the same statements.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from django.db import connection as db
from django.db.models import Q
from django.utils import timezone

from config.batching import chunks
from inbox.events import publish_messages_on_commit
from inbox.models import Contact, ContactIdentity, Conversation, GroupParticipant, Message, MessageRevision
from inbox.purge import do_purge_conversations
from inbox.search import index_messages, move_entries, reindex_messages
from sync.decode import Decoded, MessageRecord
from sync.identity import is_group, is_lid, is_pn, normalize_jid, phone_of, skip_reason
from sync.models import JidMapping, PendingOperation, RawEvent
from sync.search_index import INLINE_LIMIT, index_new_messages
from sync.upsert import insert_new

logger = logging.getLogger(__name__)

STATUS_RANK = {str(k): v for k, v in Message.STATUS_RANK.items()}
PREVIEW_LEN = 200
_TYPE_PREVIEW = {
    "image": "[image]", "video": "[video]", "audio": "[audio]", "document": "[document]", "sticker": "[sticker]",
    "contact": "[contact]", "location": "[location]", "unsupported": "[unsupported message]",
}



@dataclass
class IngestResult:
    received: int = 0
    saved: int = 0
    duplicates: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    failed: int = 0  # items of the events that failed on their own (``Decoded.failures``)
    # Operations not applied because their sender may not make them: {"refused_edit": n, ...}. Not part
    # of received = saved + duplicates + skipped + failed: operations are not counted as received.
    refused: dict[str, int] = field(default_factory=dict)
    # Notes for the journal rows of this batch (raw event id -> notes): refused operations.
    notes: dict[int, list[str]] = field(default_factory=dict)
    conversation_ids: set[int] = field(default_factory=set)
    message_ids: set[int] = field(default_factory=set)
    merges: int = 0

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n


def preview_of(body: str, type_: str) -> str:
    text = body.strip().replace("\n", " ") if body else ""
    if type_ != "text":
        label = _TYPE_PREVIEW.get(type_, f"[{type_}]")
        text = f"{label} {text}".strip()
    return text[:PREVIEW_LEN]


# --- identities ---------------------------------------------------------------------------------


class _UnionFind:
    def __init__(self):
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        parent = self.parent
        parent.setdefault(x, x)
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


class ContactNames(NamedTuple):
    """The name fields a contact was created with (what ``update_contact_names`` compares against)."""

    push_name: str
    display_name: str
    phone_number: str


@dataclass
class Identities:
    contact_of: dict[str, int]  # jid -> contact id
    canonical: dict[str, str]  # jid -> canonical chat jid of its person (PN when known, else LID)
    created: dict[int, ContactNames] = field(default_factory=dict)  # contacts created by this batch


def _canonical_of(jids) -> str:
    if len(jids) == 1:
        return next(iter(jids))
    return min((j for j in jids if is_pn(j)), default="") or min((j for j in jids if is_lid(j)), default="") \
        or min(jids)


def resolve_identities(tenant_id: int, needed: set[str], mappings: set[tuple[str, str]], names: dict[str, str],
                       group_jids: set[str], result: IngestResult, display_names: dict[str, str] | None = None) -> Identities:
    """Contacts for every JID in ``needed`` (created when missing), merging contacts that ``mappings``
    (pn, lid) prove to be one person. Group JIDs get group contacts.

    Five statements at most, however many JIDs: mappings written, stored mappings read, identities
    read, contacts inserted, identities inserted (plus a read of the holders of JIDs another process
    claimed first, and the merges, which are rare)."""
    now = timezone.now()
    if mappings:
        _record_mappings(tenant_id, mappings, now)
    components, contact_of = _people(tenant_id, needed, mappings)
    canonical: dict[str, str] = {}
    new_contacts: list[tuple[set[str], str, tuple[str, str, str, str]]] = []  # (jids, canonical, contact row)
    claims: list[tuple[str, int]] = []  # (jid, contact id) identities of existing contacts to add
    for jids in components:
        canon = _canonical_of(jids)
        for j in jids:
            canonical[j] = canon
        cids = {contact_of[j] for j in jids if j in contact_of}
        if len(cids) > 1:
            survivor = merge_contacts(tenant_id, sorted(cids))
            result.merges += 1
            for j in jids:
                if j in contact_of:
                    contact_of[j] = survivor
            cids = {survivor}
        if cids:
            cid = next(iter(cids))
            claims.extend((j, cid) for j in jids if j not in contact_of)
        elif jids & needed:
            new_contacts.append((jids, canon, _new_contact_row(jids, canon, names, display_names or {})))
    created = _create_and_claim(tenant_id, new_contacts, claims, contact_of, now)
    return Identities(contact_of, canonical, created)


def _people(tenant_id: int, needed: set[str], mappings: set[tuple[str, str]]) -> tuple[list[set[str]], dict[str, int]]:
    """The JIDs at hand grouped by person (mappings learned now or earlier by any connection of the
    tenant, and the identities their contacts already have), and jid -> contact id of the known ones."""
    uf = _UnionFind()
    for j in needed:
        uf.find(j)
    known = mappings | _stored_mappings(tenant_id, [j for j in needed if not is_group(j)])
    for pn, lid in known:
        uf.union(pn, lid)
    # The contacts of all those JIDs with every identity of each, so a contact known by its PN
    # resolves to the PN even when this batch only shows its LID.
    contact_of = _identities_of_contacts_of(tenant_id, set(uf.parent))
    by_contact: dict[int, str] = {}
    for jid, cid in contact_of.items():
        first = by_contact.setdefault(cid, jid)
        if first != jid:
            uf.union(jid, first)
    components: dict[str, set[str]] = defaultdict(set)
    for j in list(uf.parent):
        components[uf.find(j)].add(j)
    return list(components.values()), contact_of


def _create_and_claim(tenant_id: int, new_contacts: list, claims: list[tuple[str, int]], contact_of: dict[str, int],
                      now: datetime) -> dict[int, ContactNames]:
    """Insert the new contacts and claim the identities; another process may have claimed some JIDs
    first: its contact wins and ours, left without identities, is removed. The created contacts' names."""
    new_ids = _create_contacts(tenant_id, [row for _, _, row in new_contacts], now) if new_contacts else []
    for (jids, _, _), cid in zip(new_contacts, new_ids, strict=True):
        claims.extend((j, cid) for j in jids)
    created: dict[int, ContactNames] = {}
    if not claims:
        return created
    contact_of.update(_claim_identities(tenant_id, claims, now))
    orphans = []
    for (jids, canon, (_, display_name, push_name, phone_number)), cid in zip(new_contacts, new_ids, strict=True):
        if contact_of[canon] == cid:
            created[cid] = ContactNames(push_name, display_name, phone_number)
        elif all(contact_of[j] != cid for j in jids):
            orphans.append(cid)
    if orphans:
        Contact.objects.for_tenant(tenant_id).filter(pk__in=orphans, identities__isnull=True).delete()
    return created


def _new_contact_row(jids: set[str], canon: str, names: dict[str, str], display_names: dict[str, str]) \
        -> tuple[str, str, str, str]:
    """(kind, display_name, push_name, phone_number) of a new contact for the JIDs of one person."""
    group = is_group(canon)
    if len(jids) == 1:  # the common case, without the sorting and scanning below
        return (Contact.Kind.GROUP if group else Contact.Kind.PERSON, display_names.get(canon, "")[:255],
                "" if group else names.get(canon, ""), phone_of(canon))
    ordered = sorted(jids)
    return (
        Contact.Kind.GROUP if group else Contact.Kind.PERSON,
        next((display_names[j] for j in ordered if j in display_names), "")[:255],
        "" if group else names.get(canon, "") or next((names[j] for j in jids if j in names), ""),
        next(filter(None, map(phone_of, ordered)), ""),
    )


# The statements of resolve_identities: set-based SQL over arrays on PostgreSQL, the ORM elsewhere
# (SQLite, the embedded default, where batches are small).


def _pg_array(values) -> str:
    """``values`` (str, int, bool, aware datetime; None = NULL) as one PostgreSQL array literal, to
    pass as a single parameter cast in SQL (``%s::text[]``, ``%s::bigint[]``...). psycopg adapts a
    list element by element in Python at ~1 us an element (~3.5 ms for a batch's 3,000 JIDs); one
    string goes through in C, and the planner still sees a constant array (hashed in filters)."""
    return "{" + ",".join([
        "NULL" if v is None else '"' + (v if isinstance(v, str) else str(v)).replace("\\", "\\\\").replace('"', '\\"') + '"'
        for v in values
    ]) + "}"


def _record_mappings(tenant_id: int, mappings: set[tuple[str, str]], now: datetime) -> None:
    if db.vendor != "postgresql":
        JidMapping.objects.bulk_create(
            [JidMapping(tenant_id=tenant_id, pn_jid=pn, lid_jid=lid) for pn, lid in mappings],
            ignore_conflicts=True, batch_size=1000,
        )
        return
    pns, lids = zip(*mappings, strict=True)
    with db.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {JidMapping._meta.db_table} (tenant_id, pn_jid, lid_jid, created_at) "  # noqa: S608
            "SELECT %s, pn, lid, %s FROM unnest(%s::text[], %s::text[]) AS v(pn, lid) ON CONFLICT DO NOTHING",
            [tenant_id, now, _pg_array(pns), _pg_array(lids)],
        )


def _stored_mappings(tenant_id: int, jids: list[str]) -> set[tuple[str, str]]:
    """(pn, lid) mappings of the tenant that name any of ``jids``."""
    if not jids:
        return set()
    if db.vendor != "postgresql":
        known: set[tuple[str, str]] = set()
        for chunk in chunks(jids, 1000):
            known.update(JidMapping.objects.filter(tenant_id=tenant_id)
                         .filter(Q(lid_jid__in=chunk) | Q(pn_jid__in=chunk)).values_list("pn_jid", "lid_jid"))
        return known
    # Arrays are passed as plain parameters (constants the planner hashes or probes an index with),
    # never computed in SQL: the plans stay linear even before the tables have statistics.
    array = _pg_array(jids)
    with db.cursor() as cursor:
        cursor.execute(f"SELECT pn_jid, lid_jid FROM {JidMapping._meta.db_table} "  # noqa: S608
                       "WHERE tenant_id = %s AND (lid_jid = ANY(%s::text[]) OR pn_jid = ANY(%s::text[]))",
                       [tenant_id, array, array])
        return set(cursor.fetchall())


def _identities_of_contacts_of(tenant_id: int, jids: set[str]) -> dict[str, int]:
    """jid -> contact id for every identity of the contacts that hold any of ``jids``."""
    if db.vendor != "postgresql":
        contact_of = _identities_of(tenant_id, list(jids))
        for chunk in chunks(set(contact_of.values()), 1000):
            contact_of.update(ContactIdentity.objects.for_tenant(tenant_id).filter(contact_id__in=chunk)
                              .values_list("jid", "contact_id"))
        return contact_of
    identity = ContactIdentity._meta.db_table
    with db.cursor() as cursor:
        cursor.execute(f"""
            SELECT jid, contact_id FROM {identity} WHERE contact_id IN (
                SELECT contact_id FROM {identity} WHERE tenant_id = %s AND jid = ANY(%s::text[]))
        """, [tenant_id, _pg_array(jids)])  # noqa: S608 - table name from model meta, values are parameters
        return dict(cursor.fetchall())


def _create_contacts(tenant_id: int, rows: list[tuple[str, str, str, str]], now: datetime) -> list[int]:
    """Insert contacts from (kind, display_name, push_name, phone_number) rows; their ids, in order."""
    if db.vendor != "postgresql":
        contacts = [Contact(tenant_id=tenant_id, kind=kind, display_name=display, push_name=push, phone_number=phone)
                    for kind, display, push, phone in rows]
        Contact.objects.bulk_create(contacts, batch_size=1000)
        return [c.pk for c in contacts]
    table = Contact._meta.db_table
    # Ids are drawn from the table's sequence first, so each row's id is known without relying on
    # the order of RETURNING. (The sequence is looked up once: per row it cost ~2.5 us.)
    sql = f"""
        WITH fresh AS MATERIALIZED (
            SELECT nextval((SELECT pg_get_serial_sequence(%s, 'id')::regclass)) AS id, v.*
            FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[])
                 WITH ORDINALITY AS v(kind, display_name, push_name, phone_number, ord)
        ), ins AS (
            INSERT INTO {table} (id, tenant_id, kind, display_name, push_name, phone_number, created_at, updated_at)
            SELECT id, %s, kind, display_name, push_name, phone_number, %s, %s FROM fresh
        )
        SELECT id FROM fresh ORDER BY ord
    """  # noqa: S608 - table name from model meta, values are parameters
    kinds, displays, pushes, phones = zip(*rows, strict=True)
    with db.cursor() as cursor:
        cursor.execute(sql, [table, *map(_pg_array, (kinds, displays, pushes, phones)), tenant_id, now, now])
        return [r[0] for r in cursor.fetchall()]


def _claim_identities(tenant_id: int, claims: list[tuple[str, int]], now: datetime) -> dict[str, int]:
    """Insert the (jid, contact id) identities that no contact holds yet; returns jid -> the contact
    that holds each JID now (ours, or another process's that got there first)."""
    if db.vendor != "postgresql":
        ContactIdentity.objects.bulk_create(
            [ContactIdentity(tenant_id=tenant_id, contact_id=cid, jid=j, kind=_identity_kind(j)) for j, cid in claims],
            ignore_conflicts=True, batch_size=1000,
        )
        return _identities_of(tenant_id, [j for j, _ in claims])
    jids = [j for j, _ in claims]
    sql = f"""
        INSERT INTO {ContactIdentity._meta.db_table} (tenant_id, contact_id, jid, kind, created_at)
        SELECT %s, cid, jid, kind, %s FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS v(cid, jid, kind)
        ON CONFLICT DO NOTHING RETURNING jid, contact_id
    """  # noqa: S608 - table name from model meta, values are parameters
    with db.cursor() as cursor:
        cursor.execute(sql, [tenant_id, now, _pg_array([cid for _, cid in claims]), _pg_array(jids),
                             _pg_array([_identity_kind(j) for j in jids])])
        holders = dict(cursor.fetchall())
    if len(holders) < len(claims):
        holders.update(_identities_of(tenant_id, [j for j in jids if j not in holders]))
    return holders


def _identities_of(tenant_id: int, jids: list[str]) -> dict[str, int]:
    """jid -> contact id of the identities among ``jids`` (a fresh read: sees other processes' commits)."""
    if db.vendor != "postgresql":
        out: dict[str, int] = {}
        for chunk in chunks(jids, 1000):
            out.update(ContactIdentity.objects.for_tenant(tenant_id).filter(jid__in=chunk).values_list("jid", "contact_id"))
        return out
    with db.cursor() as cursor:
        cursor.execute(f"SELECT jid, contact_id FROM {ContactIdentity._meta.db_table} "  # noqa: S608
                       "WHERE tenant_id = %s AND jid = ANY(%s::text[])", [tenant_id, _pg_array(jids)])
        return dict(cursor.fetchall())


def _identity_kind(jid: str) -> str:
    if is_pn(jid):
        return ContactIdentity.Kind.PN
    if is_lid(jid):
        return ContactIdentity.Kind.LID
    if is_group(jid):
        return ContactIdentity.Kind.GROUP
    return ContactIdentity.Kind.OTHER


def merge_contacts(tenant_id: int, contact_ids: list[int]) -> int:
    """Fold several contacts of one person into the oldest; returns the survivor's id.

    Identities, conversations and group memberships move; conversations of the same chat on one
    connection are merged by ``reconcile_conversations`` afterwards. Call inside a transaction.
    """
    survivor, others = contact_ids[0], contact_ids[1:]
    contacts = {c.pk: c for c in Contact.objects.for_tenant(tenant_id).filter(pk__in=contact_ids)}
    keep = contacts[survivor]
    for oid in others:
        other = contacts.get(oid)
        if other is None:
            continue
        keep.display_name = keep.display_name or other.display_name
        keep.push_name = keep.push_name or other.push_name
        keep.phone_number = keep.phone_number or other.phone_number
    keep.save(update_fields=["display_name", "push_name", "phone_number", "updated_at"])
    ContactIdentity.objects.for_tenant(tenant_id).filter(contact_id__in=others).update(contact_id=survivor)
    Conversation.objects.for_tenant(tenant_id).filter(contact_id__in=others).update(contact_id=survivor)
    # Group memberships: keep one row per (group, survivor).
    existing_groups = set(GroupParticipant.objects.filter(member_id=survivor).values_list("group_id", flat=True))
    GroupParticipant.objects.filter(member_id__in=others, group_id__in=existing_groups).delete()
    moved = GroupParticipant.objects.filter(member_id__in=others).order_by("group_id", "-is_admin")
    seen = set()
    dup_ids = []
    for gp in moved.only("id", "group_id"):
        if gp.group_id in seen:
            dup_ids.append(gp.id)
        seen.add(gp.group_id)
    GroupParticipant.objects.filter(pk__in=dup_ids).delete()
    GroupParticipant.objects.filter(member_id__in=others).update(member_id=survivor)
    Contact.objects.for_tenant(tenant_id).filter(pk__in=others).delete()
    logger.info("sync.contacts.merged", extra={"tenant_id": tenant_id, "survivor": survivor, "merged": others})
    return survivor


def reconcile_conversations(tenant_id: int, identities: Identities, result: IngestResult) -> None:
    """Conversations whose chat_jid is a non-canonical identity (a LID whose phone number is now
    known) get the canonical JID; if the canonical conversation already exists on that connection, the
    two are merged: messages moved (they are unique per connection, so nothing can collide),
    unread counts summed, synced window widened, the old row deleted. One query when nothing to do."""
    stale = [j for j, c in identities.canonical.items() if j != c and not is_group(j)]
    if not stale:
        return
    if db.vendor == "postgresql":
        # Probe with one array parameter; rows are loaded only when there is something to re-key.
        with db.cursor() as cursor:
            cursor.execute(f"SELECT id FROM {Conversation._meta.db_table} "  # noqa: S608
                           "WHERE tenant_id = %s AND chat_jid = ANY(%s::text[])", [tenant_id, _pg_array(stale)])
            ids = [r[0] for r in cursor.fetchall()]
        found = list(Conversation.objects.for_tenant(tenant_id).filter(pk__in=ids)) if ids else []
    else:
        found = list(Conversation.objects.for_tenant(tenant_id).filter(chat_jid__in=stale))
    if not found:
        return
    targets = {identities.canonical[c.chat_jid] for c in found}
    canon = {(c.connection_id, c.chat_jid): c for c in
             Conversation.objects.for_tenant(tenant_id).filter(chat_jid__in=targets)}
    for conv in found:
        want = identities.canonical[conv.chat_jid]
        contact_id = identities.contact_of.get(want, conv.contact_id)
        target = canon.get((conv.connection_id, want))
        if target is None:
            old = conv.chat_jid
            conv.chat_jid = want
            conv.contact_id = contact_id
            conv.save(update_fields=["chat_jid", "contact", "updated_at"])
            canon[(conv.connection_id, want)] = conv
            logger.info("sync.conversation.rekeyed", extra={"conversation_id": conv.pk, "from": old, "to": want})
            result.conversation_ids.add(conv.pk)
            continue
        Message.objects.for_tenant(tenant_id).filter(conversation_id=conv.pk).update(conversation_id=target.pk)
        move_entries([conv.pk], target.pk)
        target.unread_count += conv.unread_count
        if conv.last_message_at > target.last_message_at:
            target.last_message_at, target.last_message_preview = conv.last_message_at, conv.last_message_preview
        target.oldest_synced_at = min(filter(None, [target.oldest_synced_at, conv.oldest_synced_at]), default=None)
        target.newest_synced_at = max(filter(None, [target.newest_synced_at, conv.newest_synced_at]), default=None)
        target.assignee_id = target.assignee_id or conv.assignee_id
        target.contact_id = contact_id
        target.save(update_fields=["unread_count", "last_message_at", "last_message_preview", "oldest_synced_at",
                                   "newest_synced_at", "assignee", "contact", "updated_at"])
        do_purge_conversations([conv.pk])  # its messages moved just above: deletes the row alone
        result.merges += 1
        result.conversation_ids.add(target.pk)
        result.conversation_ids.discard(conv.pk)
        logger.info("sync.conversation.merged", extra={"into": target.pk, "merged": conv.pk, "chat_jid": want})


# --- the batch ----------------------------------------------------------------------------------


@dataclass
class _ConvAgg:
    """What a set of messages gives a conversation: last message and its preview, the synced window,
    live inbound messages to add to the unread count; ``unread_set``: a history chunk's own count."""

    last_at: datetime | None = None
    oldest: datetime | None = None
    newest: datetime | None = None
    unread_add: int = 0
    unread_set: int | None = None
    _last: MessageRecord | None = None  # the preview is made once, from the last message

    def add(self, m: MessageRecord) -> None:
        ts = m.timestamp
        if self.last_at is None or ts >= self.last_at:
            self.last_at, self._last = ts, m
        if self.oldest is None or ts < self.oldest:
            self.oldest = ts
        if self.newest is None or ts > self.newest:
            self.newest = ts
        if m.live and not m.from_me:
            self.unread_add += 1

    def merge(self, other: _ConvAgg) -> None:
        """Fold another chat's messages in (a person's LID and phone chats, in that order)."""
        if other.last_at is not None and (self.last_at is None or other.last_at >= self.last_at):
            self.last_at, self._last = other.last_at, other._last
        if other.oldest is not None and (self.oldest is None or other.oldest < self.oldest):
            self.oldest = other.oldest
        if other.newest is not None and (self.newest is None or other.newest > self.newest):
            self.newest = other.newest
        self.unread_add += other.unread_add

    @property
    def preview(self) -> str:
        return preview_of(self._last.body, self._last.type) if self._last is not None else ""


MESSAGE_COLUMNS = (
    "tenant_id", "conversation_id", "connection_id", "external_id", "direction", "status", "type", "raw_type", "body",
    "media_mimetype", "media_size", "media_filename", "extra", "sender_jid", "sender_name", "quoted_external_id",
    "quoted_body", "reactions", "sent_at", "send_attempts", "error", "created_at", "updated_at",
)
PUBLISH_HISTORY_MESSAGES = 200

# Cumulative seconds per ingestion phase (read by bench/ingest.py); cheap enough to keep always on.
TIMINGS: dict[str, float] = defaultdict(float)


def ingest(conn, events: list[Decoded], alongside=None, *, publish: bool = True) -> IngestResult:
    """Apply decoded events of one connection (journal order). Call inside transaction.atomic().

    ``alongside``: CPU work without database access to overlap with the message COPY (the processor
    decodes the next batch there); see ``sync.upsert.insert_new``. ``publish``: publish the changed
    conversations and live messages on commit."""
    return ingest_many(conn.tenant_id, [(conn, events)], alongside=alongside, publish=publish)[0]


@dataclass
class _Part:
    """One connection's share of a batch: what its events hold, after its filters."""

    conn: object
    result: IngestResult
    messages: list[MessageRecord] = field(default_factory=list)
    ops: list[Operation] = field(default_factory=list)  # in journal order
    chats: dict = field(default_factory=dict)
    chat_names: dict[str, str] = field(default_factory=dict)
    groups: list = field(default_factory=list)
    unique: list[MessageRecord] = field(default_factory=list)
    chat_aggs: tuple[dict[str, _ConvAgg], dict[str, _ConvAgg]] = field(default_factory=lambda: ({}, {}))
    batch_aggs: dict[str, _ConvAgg] = field(default_factory=dict)
    unread_set: dict[str, int] = field(default_factory=dict)
    listed_at: dict[str, datetime] = field(default_factory=dict)
    conv_ids: dict[str, int] = field(default_factory=dict)
    created: set[str] = field(default_factory=set)
    by_ext: dict[str, tuple[MessageRecord, int]] = field(default_factory=dict)
    inserted: list[str] = field(default_factory=list)


def _collect(conn, events: list[Decoded], names: dict[str, str], mappings: set) -> _Part:
    """One connection's events, after its filters (status broadcasts, newsletters, groups... per its
    settings), counted; the names and LID mappings they carry go to the batch's ``names``/``mappings``."""
    part = _Part(conn, IngestResult())
    result = part.result
    reasons: dict[str, str] = {}  # chat jid -> skip reason, worked out once per chat

    def skipped(chat_jid: str) -> str:
        reason = reasons.get(chat_jid)
        if reason is None:
            reason = reasons[chat_jid] = skip_reason(chat_jid, conn)
        return reason

    for ev in events:
        result.received += ev.received
        if ev.failures:
            result.failed += ev.failed
        for reason, n in ev.ignored.items():
            result.skip(reason, n)
        for m in ev.messages:
            reason = skipped(m.chat_jid)
            if reason:
                result.skip(reason)
            else:
                part.messages.append(m)
        mappings.update(ev.mappings)
        names.update(ev.push_names)
        for c in ev.chats:
            if not skipped(c.chat_jid):
                part.chats[c.chat_jid] = c
                if c.name:
                    part.chat_names[c.chat_jid] = c.name
        part.groups.extend(g for g in ev.groups if not skipped(g.group_jid))
        part.ops.extend(op for op in _operations_of(ev) if op.kind == "receipt" or not skipped(op.chat))
    return part


def _operations_of(ev: Decoded):
    """The operations an event carries, in the order they are applied: reactions, edits, revokes, receipts."""
    row = ev.raw_event_id
    for r in ev.reactions:
        yield Operation("reaction", r.target_id, {"emoji": r.emoji}, r.chat_jid, r.sender_jid, r.from_me, row)
    for e in ev.edits:
        yield Operation("edit", e.target_id, {"body": e.new_body, "at": e.timestamp.isoformat()}, e.chat_jid,
                        e.sender_jid, e.from_me, row)
    for r in ev.revokes:
        yield Operation("revoke", r.target_id, {"at": r.timestamp.isoformat()}, r.chat_jid, r.sender_jid,
                        r.from_me, row)
    for rc in ev.receipts:
        for mid in rc.message_ids:
            yield Operation("receipt", mid, {"status": rc.status}, rc.chat_jid, rc.sender_jid, rc.from_me, row)


def ingest_many(tenant_id: int, batch: list[tuple[object, list[Decoded]]], alongside=None, *,
                publish: bool = True) -> list[IngestResult]:
    """Apply decoded events of several connections of one tenant in one set of statements (the live
    sweep's flood of many numbers), one ``IngestResult`` per connection, in ``batch`` order. Call inside
    transaction.atomic(). Identities are the tenant's; conversations and messages are per connection.

    The number of statements depends on the batch's shape (history or live, operations or groups
    present), not on how many connections or messages it carries."""
    lap = _Laps(TIMINGS)
    mappings: set[tuple[str, str]] = set()
    names: dict[str, str] = {}
    parts = [_collect(conn, events, names, mappings) for conn, events in batch]
    lap("collect")
    identities = _resolve_batch_identities(tenant_id, parts, mappings, names)
    lap("identities")
    _plan_conversations(parts, identities.canonical)
    ensure_conversations(parts, identities)
    lap("conversations")
    _write_messages(tenant_id, parts, identities.canonical, alongside, lap)
    _update_aggregates(parts)
    lap("aggregates")
    _apply_batch_operations(parts)
    lap("operations")
    _update_names_and_groups(tenant_id, parts, identities, names)
    lap("names_groups")
    results = [part.result for part in parts]
    if publish:
        _publish(tenant_id, results)
    return results


class _Laps:
    """Adds the time since the previous lap to ``timings[name]`` (the benchmarks read TIMINGS)."""

    def __init__(self, timings):
        self.timings, self.since = timings, time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] += now - self.since
        self.since = now


def _resolve_batch_identities(tenant_id: int, parts: list[_Part], mappings, names) -> Identities:
    """Who is who. One pass over the messages (each external id once per connection): their senders, and
    per chat the aggregates its conversation gets from them (first and last message, preview, live
    unread). A conversation created by this batch is inserted with those values; an existing one is
    updated afterwards with those of the messages the COPY actually inserted (a replay changes nothing)."""
    needed: set[str] = set()
    group_jids: set[str] = set()
    display_names: dict[str, str] = {}
    add_sender = needed.add
    for part in parts:
        seen: set[str] = set()
        unique = part.unique
        chat_aggs = part.chat_aggs
        for m in part.messages:
            ext = m.external_id
            if ext in seen:
                part.result.duplicates += 1
                continue
            seen.add(ext)
            unique.append(m)
            add_sender(m.sender_jid)
            per_chat = chat_aggs[m.is_group]
            agg = per_chat.get(m.chat_jid)
            if agg is None:
                agg = per_chat[m.chat_jid] = _ConvAgg()
            agg.add(m)
        needed.update(chat_aggs[False])
        group_jids.update(chat_aggs[True])
        for c in part.chats.values():
            (group_jids if is_group(c.chat_jid) else needed).add(c.chat_jid)
        for g in part.groups:
            group_jids.add(g.group_jid)
            for member, _ in g.participants or ():
                needed.add(member)
            needed.update(g.join, g.leave, g.promote, g.demote)
        display_names.update(part.chat_names)
        display_names.update({g.group_jid: g.name for g in part.groups if g.name})
    needed |= group_jids
    needed.discard("")
    first = parts[0].result
    identities = resolve_identities(tenant_id, needed, mappings, names, group_jids, first, display_names) \
        if needed or mappings else Identities({}, {})
    reconcile_conversations(tenant_id, identities, first)
    return identities


def _plan_conversations(parts: list[_Part], canon: dict[str, str]) -> None:
    """One conversation per canonical chat (a person's LID and phone chats are one) and connection.
    ``batch_aggs``: what this batch's messages would give each conversation if they are all new."""
    for part in parts:
        batch_aggs = part.batch_aggs
        for chat_group, per_chat in zip((False, True), part.chat_aggs, strict=True):
            for chat, agg in per_chat.items():
                key = chat if chat_group else canon.get(chat, chat)
                if key in batch_aggs:
                    batch_aggs[key].merge(agg)
                else:
                    batch_aggs[key] = agg
        for c in part.chats.values():
            key = c.chat_jid if is_group(c.chat_jid) else canon.get(c.chat_jid, c.chat_jid)
            batch_aggs.setdefault(key, _ConvAgg())
            if c.unread_count is not None:
                part.unread_set[key] = c.unread_count
            if c.last_message_at:
                part.listed_at.setdefault(key, c.last_message_at)
        for g in part.groups:
            batch_aggs.setdefault(g.group_jid, _ConvAgg())


def _write_messages(tenant_id: int, parts: list[_Part], canon: dict[str, str], alongside, lap: _Laps) -> None:
    """The messages not stored yet, in one COPY for the whole batch; each part learns what it inserted."""
    rows = []
    created_ids: set[int] = set()
    now = timezone.now()
    for part in parts:
        created_ids.update(part.conv_ids[key] for key in part.created)
        rows.extend(_message_rows(tenant_id, part, canon, now))
    lap("message_rows")
    id_range: list[int] = []
    inserted = insert_new(Message, MESSAGE_COLUMNS, rows, {}, ("connection_id", "external_id"), timings=lap.timings,
                          alongside=alongside, id_range=id_range, fresh=("conversation_id", created_ids))
    lap("message_copy")
    by_conn = {part.conn.pk: part for part in parts}
    for conn_id, ext in inserted:
        by_conn[conn_id].inserted.append(ext)
    _index_and_find_published(parts, inserted, tuple(id_range) if id_range else None)
    lap("search")


def _message_rows(tenant_id: int, part: _Part, canon: dict[str, str], now: datetime) -> list[tuple]:
    """The COPY rows of one part's unique messages (MESSAGE_COLUMNS order); fills ``part.by_ext``."""
    conv_ids, by_ext, conn_id = part.conv_ids, part.by_ext, part.conn.pk
    canon_get = canon.get
    dumps = json.dumps
    rows = []
    append = rows.append
    conv_of: dict[str, int] = {}  # chat jid -> conversation id, resolved once per chat, not per message
    for m in part.unique:
        ext = m.external_id
        chat = m.chat_jid
        cid = conv_of.get(chat)
        if cid is None:
            cid = conv_of[chat] = conv_ids[chat if m.is_group else canon_get(chat, chat)]
        by_ext[ext] = (m, cid)
        sender = canon_get(m.sender_jid, m.sender_jid) if m.sender_jid else ""
        from_me = m.from_me
        append((
            tenant_id, cid, conn_id, ext, "out" if from_me else "in",
            m.status or ("sent" if from_me else "received"), m.type, m.raw_type, m.body, m.media_mimetype,
            m.media_size, m.media_filename, dumps(m.extra) if m.extra else "{}", sender,
            "" if from_me else m.push_name, m.quoted_external_id, m.quoted_body, "{}", m.timestamp, 0, "", now, now,
        ))
    return rows


def _update_aggregates(parts: list[_Part]) -> None:
    """Counts, and each existing conversation's aggregates from the messages the COPY inserted (new
    conversations were created with theirs)."""
    aggs: dict[int, _ConvAgg] = defaultdict(_ConvAgg)
    recount_listed: dict[int, datetime] = {}
    recount_unread: dict[int, int] = {}
    now = timezone.now()
    for part in parts:
        result = part.result
        result.saved = len(part.inserted)
        result.duplicates += len(part.unique) - len(part.inserted)
        part_created = {part.conv_ids[key] for key in part.created}
        recount = _conversations_to_recount(part, part_created)
        part_aggs = set()
        for ext in part.inserted:
            m, cid = part.by_ext[ext]
            if cid not in part_created or cid in recount:
                aggs[cid].add(m)
                part_aggs.add(cid)
        result.conversation_ids.update(part_created)
        result.conversation_ids.update(part_aggs)
        for key, count in part.unread_set.items():
            # A history chunk's unread count describes the chat as of that chunk: apply it to an existing
            # conversation only when the chunk brought new messages into it, so a replay cannot undo later
            # increments (a new conversation was created with it).
            cid = part.conv_ids[key]
            if cid in part_aggs:
                aggs[cid].unread_set = count
        if recount:
            recount_listed.update({part.conv_ids[k]: part.listed_at.get(k, now) for k in part.created})
            recount_listed.update((cid, aggs[cid].oldest) for cid in recount if cid in aggs)
            recount_unread.update({part.conv_ids[k]: n for k, n in part.unread_set.items()})
            reset_conversation_aggregates(recount, recount_listed, recount_unread)
    update_conversation_aggregates(aggs)


def _conversations_to_recount(part: _Part, part_created: set[int]) -> set[int]:
    """A message of a new conversation that was stored already (another chat's id: the COPY's fallback)
    means the values it was created with counted it: those conversations are recomputed."""
    if len(part.inserted) >= len(part.unique):
        return set()
    stored = set(part.inserted)
    return {cid for ext, (_, cid) in part.by_ext.items() if cid in part_created and ext not in stored}


def _apply_batch_operations(parts: list[_Part]) -> None:
    """Operations on existing messages, and the ones that were waiting for the messages just stored."""
    waiting = _connections_with_pending_operations([p.conn.pk for p in parts if p.inserted and not p.ops])
    for part in parts:
        if part.ops or part.conn.pk in waiting:
            apply_operations(part.conn, part.ops, part.inserted, part.result)


def _update_names_and_groups(tenant_id: int, parts: list[_Part], identities: Identities, names) -> None:
    chat_names = {}
    for part in parts:
        chat_names.update(part.chat_names)
    update_contact_names(identities, names, chat_names, [g for part in parts for g in part.groups])
    for part in parts:
        if part.groups:
            apply_groups(tenant_id, part.groups, identities, part.conv_ids, part.result)


def _publish(tenant_id: int, results: list[IngestResult]) -> None:
    conversation_ids = {c for r in results for c in r.conversation_ids}
    if conversation_ids:
        # List rows go through a Celery task: a history chunk touches hundreds of conversations and
        # rendering them here cost ~7 us per ingested message (docs/live-updates.md).
        publish_messages_on_commit(tenant_id, sorted(conversation_ids),
                                   sorted({m for r in results for m in r.message_ids}), background=True)


def _connections_with_pending_operations(connection_ids: list[int]) -> set[int]:
    """Of these connections, the ones with operations waiting for a message (one query for all)."""
    if not connection_ids:
        return set()
    return set(PendingOperation.objects.filter(connection_id__in=connection_ids)
               .values_list("connection_id", flat=True).distinct())


def _index_and_find_published(parts: list[_Part], inserted: list[tuple[int, str]], id_range) -> None:
    """Search entries for what was inserted, and the ids of the messages open threads get rendered:
    live messages, and a small history backfill whole (a large history chunk only moves the list: its
    messages are older than what a thread shows). A small batch is indexed at once by message id; a
    large one (history) per connection, in the background (ADR-10)."""
    publish: list[tuple[int, str]] = []
    for part in parts:
        live = [ext for ext in part.inserted if part.by_ext[ext][0].live]
        history = len(part.inserted) - len(live)
        if history and history <= PUBLISH_HISTORY_MESSAGES:
            live = part.inserted
        publish.extend((part.conn.pk, ext) for ext in live)
    small = len(inserted) <= INLINE_LIMIT or id_range is None
    if not small:
        for part in parts:
            index_new_messages(part.conn, part.inserted, id_range)
    wanted = inserted if small else publish
    if not wanted:
        return
    ids = _message_ids(wanted)
    if small:
        index_messages(list(ids.values()))
    by_conn = {part.conn.pk: part for part in parts}
    for key in publish:
        by_conn[key[0]].result.message_ids.add(ids[key])


def _message_ids(keys: list[tuple[int, str]]) -> dict[tuple[int, str], int]:
    """(connection id, external id) -> message id, in one statement per 5,000 keys."""
    out: dict[tuple[int, str], int] = {}
    if db.vendor != "postgresql":
        by_conn: dict[int, list[str]] = defaultdict(list)
        for cid, ext in keys:
            by_conn[cid].append(ext)
        for cid, exts in by_conn.items():
            for chunk in chunks(exts, 500):
                for ext, mid in Message.objects.unscoped().filter(connection_id=cid, external_id__in=chunk).values_list(
                        "external_id", "id"):
                    out[(cid, ext)] = mid
        return out
    with db.cursor() as cursor:
        for chunk in chunks(keys, 5000):
            cursor.execute(
                f"SELECT m.connection_id, m.external_id, m.id FROM {Message._meta.db_table} m "  # noqa: S608
                "JOIN unnest(%s::bigint[], %s::text[]) AS k(c, e) ON m.connection_id = k.c AND m.external_id = k.e",
                [[c for c, _ in chunk], _pg_array(e for _, e in chunk)])
            for cid, ext, mid in cursor.fetchall():
                out[(cid, ext)] = mid
    return out


def ensure_conversations(parts: list[_Part], identities: Identities) -> None:
    """Each part's ``conv_ids`` (chat key -> conversation id for every key of its ``batch_aggs``) and
    ``created`` (the keys created now), creating the missing ones in bulk with what this batch's messages
    give them (``batch_aggs``), the history chat's unread count (``unread_set``) and, for a chat without
    messages here, its last activity (``listed_at``; else now). Two statements for all connections (a
    third if another process created some meanwhile)."""
    wanted = [(part.conn.pk, key) for part in parts for key in part.batch_aggs]
    if not wanted:
        return
    ids = _conversation_ids(wanted)
    by_conn = {part.conn.pk: part for part in parts}
    missing = [k for k in wanted if k not in ids]
    if missing:
        now = timezone.now()
        rows = []
        for cid, key in missing:
            part = by_conn[cid]
            a = part.batch_aggs.get(key) or _ConvAgg()
            rows.append((part.conn.tenant_id, cid, key, is_group(key), identities.contact_of[key],
                         a.last_at or part.listed_at.get(key, now), a.preview, a.oldest, a.newest,
                         part.unread_set.get(key, 0) + a.unread_add))
            part.created.add(key)
        ids.update(_create_conversations(rows, now))
        late = [k for k in wanted if k not in ids]
        if late:
            # Created meanwhile by another process (ON CONFLICT DO NOTHING skipped them): read them.
            ids.update(_conversation_ids(late))
            for cid, key in late:
                by_conn[cid].created.discard(key)
    for (cid, key), conv_id in ids.items():
        if cid in by_conn:
            by_conn[cid].conv_ids[key] = conv_id


def _conversation_ids(keys: list[tuple[int, str]]) -> dict[tuple[int, str], int]:
    """(connection id, chat jid) -> conversation id of the ones that exist."""
    out: dict[tuple[int, str], int] = {}
    if db.vendor != "postgresql":
        by_conn: dict[int, list[str]] = defaultdict(list)
        for cid, key in keys:
            by_conn[cid].append(key)
        for cid, jids in by_conn.items():
            for chunk in chunks(jids, 1000):
                for jid, conv_id in Conversation.objects.unscoped().filter(connection_id=cid, chat_jid__in=chunk).values_list(
                        "chat_jid", "id"):
                    out[(cid, jid)] = conv_id
        return out
    with db.cursor() as cursor:
        cursor.execute(
            f"SELECT c.connection_id, c.chat_jid, c.id FROM {Conversation._meta.db_table} c "  # noqa: S608
            "JOIN unnest(%s::bigint[], %s::text[]) AS k(conn, jid) ON c.connection_id = k.conn AND c.chat_jid = k.jid",
            [[c for c, _ in keys], _pg_array(j for _, j in keys)])
        for cid, jid, conv_id in cursor.fetchall():
            out[(cid, jid)] = conv_id
    return out


def _create_conversations(rows: list[tuple], now: datetime) -> dict[tuple[int, str], int]:
    """Insert conversations from (tenant id, connection id, chat_jid, is_group, contact id, last_message_at,
    preview, oldest synced, newest synced, unread count) rows, skipping chats that exist; (connection id,
    chat_jid) -> id of the ones inserted (on SQLite: of all of them, read back)."""
    if db.vendor != "postgresql":
        Conversation.objects.bulk_create(
            [Conversation(tenant_id=tenant_id, connection_id=conn_id, chat_jid=key, is_group=group,
                          contact_id=contact_id, last_message_at=at, last_message_preview=preview,
                          oldest_synced_at=oldest, newest_synced_at=newest, unread_count=unread)
             for tenant_id, conn_id, key, group, contact_id, at, preview, oldest, newest, unread in rows],
            ignore_conflicts=True, batch_size=1000,
        )
        return _conversation_ids([(r[1], r[2]) for r in rows])
    # The model's default for the status; everything else from the rows.
    sql = f"""
        INSERT INTO {Conversation._meta.db_table} (
            tenant_id, connection_id, chat_jid, is_group, contact_id, last_message_at, last_message_preview,
            oldest_synced_at, newest_synced_at, unread_count, status, created_at, updated_at)
        SELECT tenant_id, connection_id, chat_jid, is_group, contact_id, last_at, preview, oldest, newest, unread,
               %s, %s, %s
        FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::boolean[], %s::bigint[], %s::timestamptz[],
                    %s::text[], %s::timestamptz[], %s::timestamptz[], %s::int[])
             AS v(tenant_id, connection_id, chat_jid, is_group, contact_id, last_at, preview, oldest, newest, unread)
        ON CONFLICT DO NOTHING RETURNING connection_id, chat_jid, id
    """  # noqa: S608 - table name from model meta, values are parameters
    columns = list(zip(*rows, strict=True))
    with db.cursor() as cursor:
        cursor.execute(sql, [Conversation.Status.OPEN, now, now, *map(_pg_array, columns)])
        return {(cid, jid): conv_id for cid, jid, conv_id in cursor.fetchall()}


def reset_conversation_aggregates(conversation_ids, listed_at: dict[int, datetime], unread_set: dict[int, int]) -> None:
    """Conversations this batch created with values that counted a message the COPY then found stored
    (another chat's id): back to the values of an empty conversation listed at ``listed_at`` (its first
    stored message), for ``update_conversation_aggregates`` to apply the messages really inserted.
    Rare; one statement."""
    now = timezone.now()
    Conversation.objects.bulk_update(
        [Conversation(pk=cid, last_message_at=listed_at.get(cid, now), last_message_preview="", oldest_synced_at=None,
                      newest_synced_at=None, unread_count=unread_set.get(cid, 0), updated_at=now)
         for cid in conversation_ids],
        ["last_message_at", "last_message_preview", "oldest_synced_at", "newest_synced_at", "unread_count",
         "updated_at"])


def update_conversation_aggregates(aggs: dict[int, _ConvAgg]) -> None:
    """One UPDATE ... FROM (VALUES ...) per 500 conversations: last message, preview, unread, window.

    Values only ever move forward (GREATEST/LEAST), so replays and out-of-order batches are safe, and
    concurrent changes by agents (marking read) are not overwritten except by an explicit history
    unread count."""
    if not aggs:
        return
    table = Conversation._meta.db_table
    pg = db.vendor == "postgresql"
    greatest, least = ("GREATEST", "LEAST") if pg else ("MAX", "MIN")
    items = list(aggs.items())
    for chunk in chunks(items, 400):
        params = []
        values = []
        for cid, a in chunk:
            values.append("(%s, %s, %s, %s, %s, %s, %s)")
            params += [cid, a.last_at, a.preview, a.oldest, a.newest, a.unread_add, a.unread_set]
        if pg:
            cols = "v(id, last_at, preview, oldest, newest, unread_add, unread_set)"
            cast = ("v.id::bigint", "v.last_at::timestamptz", "v.preview::text", "v.oldest::timestamptz",
                    "v.newest::timestamptz", "v.unread_add::int", "v.unread_set::int")
        else:
            cols = "v(id, last_at, preview, oldest, newest, unread_add, unread_set)"
            cast = ("v.id", "v.last_at", "v.preview", "v.oldest", "v.newest", "v.unread_add", "v.unread_set")
        vid, last_at, preview, oldest, newest, unread_add, unread_set = cast
        value_sql = ", ".join(values)
        if not pg:
            # SQLite names VALUES columns column1..N; alias them through a CTE.
            cte = "(WITH v(id, last_at, preview, oldest, newest, unread_add, unread_set) AS (VALUES "
            from_sql = cte + value_sql + ") SELECT * FROM v) AS v"  # noqa: S608
        else:
            from_sql = f"(VALUES {value_sql}) AS {cols}"
        sql = f"""
            UPDATE {table} SET
              last_message_preview = CASE WHEN {last_at} IS NOT NULL AND {last_at} >= {table}.last_message_at
                                          THEN {preview} ELSE {table}.last_message_preview END,
              last_message_at = CASE WHEN {last_at} IS NULL THEN {table}.last_message_at
                                     ELSE {greatest}({table}.last_message_at, {last_at}) END,
              oldest_synced_at = CASE WHEN {oldest} IS NULL THEN {table}.oldest_synced_at
                                      WHEN {table}.oldest_synced_at IS NULL THEN {oldest}
                                      ELSE {least}({table}.oldest_synced_at, {oldest}) END,
              newest_synced_at = CASE WHEN {newest} IS NULL THEN {table}.newest_synced_at
                                      WHEN {table}.newest_synced_at IS NULL THEN {newest}
                                      ELSE {greatest}({table}.newest_synced_at, {newest}) END,
              unread_count = COALESCE({unread_set}, {table}.unread_count) + {unread_add},
              updated_at = %s
            FROM {from_sql}
            WHERE {table}.id = {vid}
        """  # noqa: S608 - table name from model meta, values are parameters
        with db.cursor() as cursor:
            cursor.execute(sql, [timezone.now(), *params])


class Operation(NamedTuple):
    """A reaction, edit, revoke or receipt: what to do to message ``target`` (``data``), and who claims
    to do it (``chat``, ``sender``, ``from_me``: those of the event that carried it), for
    ``OperationAuthority`` to check. ``raw_event_id``: the journal row it came from."""

    kind: str
    target: str
    data: dict
    chat: str
    sender: str
    from_me: bool
    raw_event_id: int | None = None

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps([self.kind, self.target, self.data, self.chat, self.sender, self.from_me],
                                         sort_keys=True).encode()).hexdigest()


class OperationAuthority:
    """Who may change which message. The claimed chat and sender of an operation are compared with
    the target message's conversation and sender by contact, not by JID string: a person's LID and
    phone-number JIDs are identities of one contact (``ContactIdentity``), or a ``JidMapping`` pair.

    - edit: the original sender, in the message's chat (our own account, ``from_me``, for our messages);
    - revoke: the same, or, in a group, a participant recorded as admin (``GroupParticipant.is_admin``,
      from JoinedGroupEv and promotions; our own account counts when it is recorded as one);
    - reaction: anyone in the message's chat (1:1: us or the other party; a group: a recorded
      participant, or anyone writing in it while its participant list is unknown);
    - receipt: only for our own outbound messages, from the chat's other party (1:1) or a participant
      (group, as for reactions); never from our own account.

    Three reads at most, whatever the number of operations: the identities of every JID involved (and
    of their contacts), the stored mappings of the JIDs without one, the participants of the groups."""

    def __init__(self, conn, checks: list[tuple[Operation, Message]]):
        self.me = normalize_jid(conn.jid or "")
        jids = {self.me}
        groups = set()
        for op, m in checks:
            jids.update((op.chat, op.sender, m.sender_jid))
            if m.conversation.is_group:
                groups.add(m.conversation.contact_id)
        jids.discard("")
        person = _identities_of_contacts_of(conn.tenant_id, jids) if jids else {}
        unknown = [j for j in jids if j not in person and not is_group(j)]
        if unknown:
            # A JID without an identity of its own may still be mapped to one that has (LID <-> phone).
            pairs = _stored_mappings(conn.tenant_id, unknown)
            partners = {}
            for pn, lid in pairs:
                partners[pn], partners[lid] = lid, pn
            mapped = {partners[j] for j in unknown if j in partners}
            found = _identities_of_contacts_of(conn.tenant_id, mapped) if mapped else {}
            person.update(found)
            for j in unknown:
                if partners.get(j) in found:
                    person[j] = found[partners[j]]
        self.person = person
        self.identities: dict[int, set[str]] = defaultdict(set)
        for jid, cid in person.items():
            self.identities[cid].add(jid)
        self.members: dict[int, dict[int, bool]] = defaultdict(dict)  # group contact -> {member: is_admin}
        if groups:
            for group_id, member_id, admin in GroupParticipant.objects.filter(group_id__in=groups).values_list(
                    "group_id", "member_id", "is_admin"):
                self.members[group_id][member_id] = admin

    def _person(self, jid: str) -> int | None:
        return self.person.get(jid) if jid else None

    def _in_chat(self, op: Operation, conv: Conversation) -> bool:
        if op.chat == conv.chat_jid:
            return True
        return not conv.is_group and self._person(op.chat) == conv.contact_id

    def _party(self, sender: str, conv: Conversation) -> bool:
        """``sender`` (not us) belongs to the chat: its other party (1:1) or a participant (group)."""
        if not sender or is_group(sender):
            return False
        if not conv.is_group:
            return sender == conv.chat_jid or self._person(sender) == conv.contact_id
        members = self.members.get(conv.contact_id)
        return not members or self._person(sender) in members

    def refusal(self, op: Operation, m: Message) -> str:
        """Why ``op`` may not change ``m`` ("" when it may)."""
        conv = m.conversation
        if not op.chat:
            return "no chat recorded (journaled before senders were checked)"
        if not self._in_chat(op, conv):
            return f"claimed chat is not the message's chat {conv.chat_jid}"
        outbound = m.direction == Message.Direction.OUTBOUND
        if op.kind == "receipt":
            if op.from_me:
                return "receipt from our own account"
            if not outbound:
                return "receipt for a message we did not send"
            return "" if self._party(op.sender, conv) else "sender is not a party of the chat"
        if op.kind == "reaction":
            return "" if op.from_me or self._party(op.sender, conv) else "sender is not a party of the chat"
        # edit / revoke: the original sender
        if outbound:
            if op.from_me:
                return ""
        elif not op.from_me and (self._party(op.sender, conv) if not conv.is_group
                                 else self._same(op.sender, m.sender_jid)):
            return ""
        if op.kind == "revoke" and conv.is_group:
            who = self.me if op.from_me else op.sender
            pid = self._person(who)
            if pid is not None and self.members.get(conv.contact_id, {}).get(pid):
                return ""
            return "not the original sender nor a group admin"
        return "not the original sender"

    def _same(self, a: str, b: str) -> bool:
        if not a or not b or is_group(a):
            return False
        return a == b or (self._person(a) is not None and self._person(a) == self._person(b))

    def reactor(self, op: Operation) -> tuple[str, set[str]]:
        """A reaction's key in ``Message.reactions`` (the reactor's canonical JID; "me" for our own)
        and every key the same person may have used (their other identities)."""
        if op.from_me:
            return "me", {"me"}
        pid = self._person(op.sender)
        if pid is None:
            return op.sender, {op.sender}
        jids = self.identities[pid]
        return _canonical_of(jids), jids


def apply_operations(conn, ops: list[Operation], arrived: list[str], result: IngestResult) -> None:
    """Reactions, edits, revokes and receipts, in order; those whose target is not stored yet are kept
    as PendingOperation rows, and pending ones whose target just ``arrived`` are applied first.

    Each is checked by ``OperationAuthority`` against its target first; a refused one changes nothing,
    is counted in ``result.refused``, noted on its journal row and logged (``sync.operation.refused``)."""
    pending = _pending_operations_for(conn, arrived)
    if pending and ops:
        # A replayed row brings its operations again: the copy waiting from its first pass is the same one.
        current = {op.digest for op in ops}
        pending_ops = [Operation(*p[1:8]) for p in pending if p[8] not in current]
    else:
        pending_ops = [Operation(*p[1:8]) for p in pending]
    all_ops = pending_ops + ops
    if not all_ops:
        return
    msgs = _operation_targets(conn, {op.target for op in all_ops})
    checks = [(op, msgs[op.target]) for op in all_ops if op.target in msgs]
    changes = _Changes(OperationAuthority(conn, checks) if checks else None)
    for op in all_ops:
        m = msgs.get(op.target)
        if m is None:
            changes.waiting.append(PendingOperation(
                tenant_id=conn.tenant_id, connection_id=conn.pk, kind=op.kind, target_external_id=op.target,
                data=op.data, chat_jid=op.chat, sender_jid=op.sender, from_me=op.from_me,
                raw_event_id=op.raw_event_id, digest=op.digest))
        else:
            changes.apply(op, m)
    changes.save(result)
    if pending:
        PendingOperation.objects.filter(pk__in=[p[0] for p in pending]).delete()
    if changes.refused:
        _record_refusals(conn, changes.refused, {op.raw_event_id for op in ops}, result)


def _pending_operations_for(conn, arrived: list[str]) -> list[tuple]:
    """The waiting operations whose target is among the messages that just ``arrived``."""
    pending = []
    if arrived and not PendingOperation.objects.filter(connection_id=conn.pk).exists():
        return pending
    for chunk in chunks(arrived, 5000):
        pending.extend(PendingOperation.objects.filter(connection_id=conn.pk, target_external_id__in=chunk)
                       .order_by("id").values_list("id", "kind", "target_external_id", "data", "chat_jid",
                                                   "sender_jid", "from_me", "raw_event_id", "digest"))
    return pending


def _operation_targets(conn, targets: set[str]) -> dict[str, Message]:
    msgs: dict[str, Message] = {}
    for chunk in chunks(targets, 1000):
        for m in Message.objects.for_tenant(conn.tenant_id).filter(connection_id=conn.pk, external_id__in=chunk).select_related(
                "conversation").only(
                "id", "external_id", "conversation_id", "body", "status", "reactions", "edited_at", "deleted_at",
                "tenant_id", "direction", "sender_jid", "conversation__chat_jid", "conversation__contact_id",
                "conversation__is_group"):
            msgs[m.external_id] = m
    return msgs


class _Changes:
    """What a batch of operations does to its target messages, saved set-wise at the end."""

    def __init__(self, authority):
        self.authority = authority
        self.changed: dict[int, Message] = {}
        self.retexted: set[int] = set()  # edited or revoked: their search entries follow
        self.revisions: list[MessageRevision] = []
        self.waiting: list[PendingOperation] = []
        self.refused: list[tuple[Operation, str]] = []

    def apply(self, op: Operation, m: Message) -> None:
        reason = self.authority.refusal(op, m)
        if reason:
            self.refused.append((op, reason))
            return
        getattr(self, f"_{op.kind}")(op, m)

    def _receipt(self, op, m):
        new, cur = op.data["status"], m.status
        if cur in STATUS_RANK and STATUS_RANK.get(new, -1) > STATUS_RANK[cur]:
            m.status = new
            self.changed[m.pk] = m

    def _reaction(self, op, m):
        key, aliases = self.authority.reactor(op)
        reactions = {k: v for k, v in (m.reactions or {}).items() if k not in aliases}
        if op.data["emoji"]:
            reactions[key] = op.data["emoji"]
        if reactions != m.reactions:
            m.reactions = reactions
            self.changed[m.pk] = m

    def _edit(self, op, m):
        if op.data["body"] != m.body:
            at = datetime.fromisoformat(op.data["at"])
            self.revisions.append(MessageRevision(tenant_id=m.tenant_id, message_id=m.pk, body=m.body, replaced_at=at))
            m.body, m.edited_at = op.data["body"], at
            self.changed[m.pk] = m
            self.retexted.add(m.pk)

    def _revoke(self, op, m):
        if m.deleted_at is None:
            m.deleted_at = datetime.fromisoformat(op.data["at"])
            self.changed[m.pk] = m
            self.retexted.add(m.pk)

    def save(self, result: IngestResult) -> None:
        changed = self.changed
        if changed:
            for m in changed.values():
                m.updated_at = timezone.now()
            Message.objects.bulk_update(list(changed.values()), ["status", "reactions", "body", "edited_at",
                                                                 "deleted_at", "updated_at"], batch_size=500)
            if self.retexted:
                reindex_messages(self.retexted)  # an edit's new body, a revoke's removal (inbox.search)
            result.message_ids.update(changed)
            result.conversation_ids.update(m.conversation_id for m in changed.values())
        if self.revisions:
            MessageRevision.objects.bulk_create(self.revisions, batch_size=500)
        if self.waiting:
            PendingOperation.objects.bulk_create(self.waiting, ignore_conflicts=True, batch_size=500)


def _record_refusals(conn, refused: list[tuple[Operation, str]], batch_rows: set, result: IngestResult) -> None:
    """Count, note and log refused operations. Notes for this batch's rows go to ``result.notes`` (the
    processor writes them with the rows); an operation that waited for its target came from an earlier
    row, which gets the note here."""
    earlier: dict[int, list[str]] = defaultdict(list)
    for op, reason in refused:
        counter = f"refused_{op.kind}"
        result.refused[counter] = result.refused.get(counter, 0) + 1
        who = "our own account" if op.from_me else (op.sender or "an unknown sender")
        note = f"refused {op.kind} of message {op.target} by {who} in {op.chat or '?'}: {reason}"
        if op.raw_event_id is not None:
            (result.notes.setdefault(op.raw_event_id, []) if op.raw_event_id in batch_rows
             else earlier[op.raw_event_id]).append(note)
        logger.warning("sync.operation.refused", extra={
            "connection_id": conn.pk, "tenant_id": conn.tenant_id, "raw_event_id": op.raw_event_id, "kind": op.kind,
            "target_id": op.target, "claimed_sender": op.sender, "from_me": op.from_me, "chat": op.chat,
            "reason": reason})
    if earlier:
        rows = list(RawEvent.objects.filter(pk__in=earlier).only("id", "error"))
        for row in rows:
            row.error = "; ".join(filter(None, [row.error, *earlier[row.pk]]))[:5000]
        RawEvent.objects.bulk_update(rows, ["error"])


def apply_pending_operations(conn, external_ids: list[str] | None = None) -> int:
    """Apply waiting operations whose target message now exists (e.g. an outbound message that got
    its WhatsApp id from the runner). Returns how many were applied or refused (they are checked like
    any operation; a refusal is noted on the operation's journal row and logged, outside any run).
    Call inside a transaction."""
    qs = PendingOperation.objects.filter(connection_id=conn.pk)
    if external_ids is not None:
        qs = qs.filter(target_external_id__in=external_ids)
    existing = Message.objects.for_tenant(conn.tenant_id).filter(connection_id=conn.pk,
                                                                 external_id__in=qs.values("target_external_id"))
    arrived = list(existing.values_list("external_id", flat=True).distinct())
    if not arrived:
        return 0
    before = PendingOperation.objects.filter(connection_id=conn.pk).count()
    result = IngestResult()
    apply_operations(conn, [], arrived, result)
    if result.conversation_ids:
        publish_messages_on_commit(conn.tenant_id, sorted(result.conversation_ids), sorted(result.message_ids))
    return before - PendingOperation.objects.filter(connection_id=conn.pk).count()


def update_contact_names(identities: Identities, names: dict[str, str], chat_names: dict[str, str], groups) -> None:
    """Push names (latest wins), address-book names from history (only where none is set), group
    subjects, phone numbers learned from PN identities. One read, one bulk update."""
    want = _wanted_names(identities, names, chat_names, groups)
    if not want:
        return
    created = identities.created
    current = [(cid, *created[cid]) for cid in want if cid in created]
    for chunk in chunks([cid for cid in want if cid not in created], 1000):  # ids of this batch's tenant
        current.extend(Contact.objects.unscoped().filter(pk__in=chunk)
                       .values_list("id", "push_name", "display_name", "phone_number"))
    changed = [contact for row in current if (contact := _renamed(row, want[row[0]])) is not None]
    if changed:
        Contact.objects.bulk_update(changed, ["push_name", "display_name", "phone_number", "updated_at"], batch_size=500)


def _wanted_names(identities: Identities, names, chat_names, groups) -> dict[int, dict]:
    """contact id -> the names and phone number this batch teaches about it."""
    want: dict[int, dict] = defaultdict(dict)
    contact_of = identities.contact_of
    for jid, name in names.items():
        cid = contact_of.get(jid)
        if cid and name and not is_group(jid):
            want[cid]["push_name"] = name
    for jid, name in chat_names.items():
        cid = contact_of.get(jid) or contact_of.get(identities.canonical.get(jid, ""))
        if cid and name:
            want[cid]["display_name" if not is_group(jid) else "subject"] = name
    for g in groups:
        cid = contact_of.get(g.group_jid)
        if cid and g.name:
            want[cid]["subject"] = g.name
    for jid, cid in contact_of.items():
        phone = phone_of(jid)
        if phone and identities.canonical.get(jid) == jid:
            want[cid].setdefault("phone_number", phone)
    return want


def _renamed(row: tuple, w: dict) -> Contact | None:
    """The contact with what ``w`` changes in its current ``row`` (id, push name, display name, phone);
    None when nothing changes."""
    cid, push_name, display_name, phone_number = row
    new = {"push_name": push_name, "display_name": display_name, "phone_number": phone_number}
    if w.get("push_name"):
        new["push_name"] = w["push_name"][:255]
    if w.get("subject"):
        new["display_name"] = w["subject"][:255]
    elif w.get("display_name") and not display_name:
        new["display_name"] = w["display_name"][:255]
    if w.get("phone_number"):
        new["phone_number"] = w["phone_number"]
    if new == {"push_name": push_name, "display_name": display_name, "phone_number": phone_number}:
        return None
    return Contact(pk=cid, updated_at=timezone.now(), **new)


def apply_groups(tenant_id: int, groups, identities: Identities, conv_ids: dict[str, int], result: IngestResult) -> None:
    """Group participants from JoinedGroupEv (full list) and GroupInfoEv (joins, leaves, promotions)."""
    contact_of, canon = identities.contact_of, identities.canonical

    def member_id(jid):
        return contact_of.get(canon.get(jid, jid)) or contact_of.get(jid)

    for g in groups:
        group_id = contact_of.get(g.group_jid)
        if group_id is None:
            continue
        result.conversation_ids.add(conv_ids[g.group_jid])
        if g.participants is not None:
            members = {}
            for jid, admin in g.participants:
                mid = member_id(jid)
                if mid:
                    members[mid] = members.get(mid, False) or admin
            GroupParticipant.objects.filter(group_id=group_id).exclude(member_id__in=members).delete()
            GroupParticipant.objects.bulk_create(
                [GroupParticipant(tenant_id=tenant_id, group_id=group_id, member_id=mid, is_admin=adm)
                 for mid, adm in members.items()],
                update_conflicts=True, unique_fields=["group", "member"], update_fields=["is_admin"],
            )
        joins = {member_id(j) for j in g.join} - {None}
        if joins:
            GroupParticipant.objects.bulk_create(
                [GroupParticipant(tenant_id=tenant_id, group_id=group_id, member_id=mid) for mid in joins],
                ignore_conflicts=True,
            )
        leaves = {member_id(j) for j in g.leave} - {None}
        if leaves:
            GroupParticipant.objects.filter(group_id=group_id, member_id__in=leaves).delete()
        for jids, admin in ((g.promote, True), (g.demote, False)):
            ids = {member_id(j) for j in jids} - {None}
            if ids:
                GroupParticipant.objects.filter(group_id=group_id, member_id__in=ids).update(is_admin=admin)
