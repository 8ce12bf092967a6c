"""Who is who: contacts and their identities (phone JIDs, LIDs, groups), merged when a mapping proves two
are one person, and the names and phone numbers a batch teaches about them. The set-wise statements
(PostgreSQL arrays, the ORM on SQLite) are in ``sync.statements``."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from django.db.models import Case, F, Value, When
from django.utils import timezone

from config.batching import chunks
from inbox.models import Contact, ContactIdentity, Conversation, GroupParticipant, Message
from inbox.purge import do_purge_conversations, fold_agent_rows
from inbox.search import move_entries
from sync import statements
from sync.identity import is_group, is_lid, is_pn, phone_of
from sync.results import IngestResult

logger = logging.getLogger(__name__)


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


def canonical_of(jids) -> str:
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
        statements.insert_jid_mappings(tenant_id, mappings, now)
    components, contact_of = _people(tenant_id, needed, mappings)
    canonical: dict[str, str] = {}
    new_contacts: list[tuple[set[str], str, tuple[str, str, str, str]]] = []  # (jids, canonical, contact row)
    claims: list[tuple[str, int]] = []  # (jid, contact id) identities of existing contacts to add
    for jids in components:
        canon = canonical_of(jids)
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
    known = mappings | statements.stored_mappings(tenant_id, [j for j in needed if not is_group(j)])
    for pn, lid in known:
        uf.union(pn, lid)
    # The contacts of all those JIDs with every identity of each, so a contact known by its PN
    # resolves to the PN even when this batch only shows its LID.
    contact_of = statements.identities_of_contacts_of(tenant_id, set(uf.parent))
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
    new_ids = statements.insert_contacts(tenant_id, [row for _, _, row in new_contacts], now) if new_contacts else []
    for (jids, _, _), cid in zip(new_contacts, new_ids, strict=True):
        claims.extend((j, cid) for j in jids)
    created: dict[int, ContactNames] = {}
    if not claims:
        return created
    contact_of.update(statements.insert_identities(tenant_id, claims, now))
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
        if other.name_locked and not keep.name_locked:  # a name an agent gave wins over the sync's
            keep.display_name, keep.name_locked = other.display_name, True
        keep.display_name = keep.display_name or other.display_name
        keep.push_name = keep.push_name or other.push_name
        keep.phone_number = keep.phone_number or other.phone_number
        _fold_agent_fields(keep, other)
    keep.save(update_fields=["display_name", "name_locked", "push_name", "phone_number", "notes", "attributes",
                             "updated_at"])
    ContactIdentity.objects.for_tenant(tenant_id).filter(contact_id__in=others).update(contact_id=survivor)
    Conversation.objects.for_tenant(tenant_id).filter(contact_id__in=others).update(contact_id=survivor)
    # Group memberships: keep one row per (group, survivor).
    existing_groups = set(GroupParticipant.objects.unscoped().filter(member_id=survivor).values_list("group_id", flat=True))
    GroupParticipant.objects.unscoped().filter(member_id__in=others, group_id__in=existing_groups).delete()
    moved = GroupParticipant.objects.unscoped().filter(member_id__in=others).order_by("group_id", "-is_admin")
    seen = set()
    dup_ids = []
    for gp in moved.only("id", "group_id"):
        if gp.group_id in seen:
            dup_ids.append(gp.id)
        seen.add(gp.group_id)
    GroupParticipant.objects.unscoped().filter(pk__in=dup_ids).delete()
    GroupParticipant.objects.unscoped().filter(member_id__in=others).update(member_id=survivor)
    Contact.objects.for_tenant(tenant_id).filter(pk__in=others).delete()
    logger.info("sync.contacts.merged", extra={"tenant_id": tenant_id, "survivor": survivor, "merged": others})
    return survivor


def _fold_agent_fields(keep: Contact, other: Contact) -> None:
    """The agents' notes and attributes of ``other`` kept on ``keep``: notes appended; attributes the survivor
    lacks added; one it has with another value stays the survivor's, and the other value goes into the
    notes ("CPF (merged): ..."), so nothing an agent wrote is lost."""
    lines = [other.notes] if other.notes else []
    attributes = dict(keep.attributes or {})
    known = {k.lower(): k for k in attributes}
    for key, value in (other.attributes or {}).items():
        mine = known.get(key.lower())
        if mine is None:
            attributes[key] = value
            known[key.lower()] = key
        elif attributes[mine] != value:
            lines.append(f"{key} (merged): {value}")
    keep.attributes = attributes
    if lines:
        keep.notes = "\n\n".join(filter(None, [keep.notes, "\n".join(lines)]))


def reconcile_conversations(tenant_id: int, identities: Identities, result: IngestResult) -> None:
    """Conversations whose chat_jid is a non-canonical identity (a LID whose phone number is now
    known) get the canonical JID; if the canonical conversation already exists on that connection, the
    two are merged: messages moved (they are unique per connection, so nothing can collide),
    unread counts summed, synced window widened, the old row deleted. One query when nothing to do."""
    stale = [j for j, c in identities.canonical.items() if j != c and not is_group(j)]
    if not stale:
        return
    found = statements.conversations_of_chats(tenant_id, stale)
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
        fold_agent_rows(conv.pk, target.pk)  # the agents' notes and labels go with the messages
        do_purge_conversations([conv.pk])  # its messages moved just above: deletes the row alone
        result.merges += 1
        result.conversation_ids.add(target.pk)
        result.conversation_ids.discard(conv.pk)
        logger.info("sync.conversation.merged", extra={"into": target.pk, "merged": conv.pk, "chat_jid": want})


def update_contact_names(identities: Identities, names: dict[str, str], chat_names: dict[str, str], groups) -> None:
    """Push names (latest wins), address-book names from history (only where none is set), group
    subjects, phone numbers learned from PN identities. One read, one bulk update."""
    want = _wanted_names(identities, names, chat_names, groups)
    if not want:
        return
    created = identities.created
    current = [(cid, *created[cid], False) for cid in want if cid in created]
    for chunk in chunks([cid for cid in want if cid not in created], 1000):  # ids of this batch's tenant
        current.extend(Contact.objects.unscoped().filter(pk__any=chunk)
                       .values_list("id", "push_name", "display_name", "phone_number", "name_locked"))
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
    """The contact with what ``w`` changes in its current ``row`` (id, push name, display name, phone, name
    locked); None when nothing changes. A name an agent gave (``name_locked``) is never replaced: only the
    push name and the phone number follow WhatsApp then."""
    cid, push_name, display_name, phone_number, name_locked = row
    new = {"push_name": push_name, "display_name": display_name, "phone_number": phone_number}
    if w.get("push_name"):
        new["push_name"] = w["push_name"][:255]
    if not name_locked:
        if w.get("subject"):
            new["display_name"] = w["subject"][:255]
        elif w.get("display_name") and not display_name:
            new["display_name"] = w["display_name"][:255]
    if w.get("phone_number"):
        new["phone_number"] = w["phone_number"]
    if new == {"push_name": push_name, "display_name": display_name, "phone_number": phone_number}:
        return None
    # Written as "unless an agent named it meanwhile": the name read above may be older than an agent's edit
    # that commits before this UPDATE, which PostgreSQL then evaluates against the agent's row version.
    new["display_name"] = Case(When(name_locked=True, then=F("display_name")), default=Value(new["display_name"]))
    return Contact(pk=cid, updated_at=timezone.now(), **new)
