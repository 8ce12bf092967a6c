"""Contacts as the agents keep them (issue 15): our name for a contact, free-text notes, the team's
key/value attributes ("CPF", "Pedido"), and the merge of two contacts by hand.

Writes follow inbox.actions (``check_*`` validates, ``do_*`` writes and publishes on commit). Every edit and
merge is logged as a JSON line with the acting user (``inbox.contact_edited``, ``inbox.contacts_merged``):
the product's audit trail; integrations hear them as ``contact.updated`` and ``contact.merged``
(``inbox.integrations``). The API's contact edit (``PATCH /api/v1/contacts/{id}/``) is ``check_edit_contact``.

The name: ``Contact.display_name`` with ``name_locked`` set once an agent wrote it, so the sync's names
(address-book names from history, group subjects) never replace it (``sync.identities.update_contact_names``);
the WhatsApp push name stays in ``push_name`` and is shown beside it. Clearing the name hands it back to the
sync.

The merge reuses the sync's own path (``sync.identities.merge_contacts`` then ``reconcile_conversations``,
what runs when WhatsApp reveals that a LID and a phone number are one person): identities, conversations
and group memberships move to the survivor, and two conversations of one number become one (messages,
notes and labels moved, aggregates recomputed, the emptied row purged). Locks, in this order: both
contacts, then their conversations (``FOR UPDATE``, by id). A message the sync writes meanwhile for either
contact waits for the merge (its conversation's ``FOR KEY SHARE``, ADR-11) and then lands in the surviving
rows, or, if it named a row the merge removed, its batch fails and the journal retries it against the
survivor (nothing is lost). A deadlock with a batch aborts one side; ``check_merge_contacts`` retries.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from django.db import OperationalError, transaction
from django.db.models import Count, Q
from django.template.loader import render_to_string
from django.utils.translation import gettext as _

from inbox import integrations
from inbox.models import Contact, ContactIdentity, Conversation, ConversationLabel, Note

logger = logging.getLogger(__name__)

MAX_NAME = 255
MAX_NOTES = 4000
MAX_ATTRIBUTES = 30
MAX_KEY = 40
MAX_VALUE = 500
KEY_RE = re.compile(r"^[\w][\w .\-/#]*$")
MERGE_ATTEMPTS = 3
SEARCH_LIMIT = 20


class ContactRefused(ValueError):
    """An edit or merge that cannot be done; ``errors`` (field -> message) are shown back in the form."""

    def __init__(self, errors: dict[str, str]):
        super().__init__(" ".join(errors.values()))
        self.errors = errors


# --- validation ----------------------------------------------------------------------------------


def cpf_is_valid(value: str) -> bool:
    """A Brazilian CPF: 11 digits (dots and dash allowed), not all equal, with both check digits right."""
    digits = re.sub(r"[.\-\s]", "", value)
    if not re.fullmatch(r"\d{11}", digits) or len(set(digits)) == 1:
        return False
    for n in (9, 10):
        total = sum(int(d) * w for d, w in zip(digits[:n], range(n + 1, 1, -1), strict=True))
        if (total * 10 % 11) % 10 != int(digits[n]):
            return False
    return True


def clean_attributes(pairs: list[tuple[str, str]]) -> tuple[dict[str, str], dict[str, str]]:
    """(attributes, errors) from the form's (key, value) rows; a row with an empty key and value is
    skipped, a key with an empty value removes the attribute. Keys keep their case and are unique
    whatever their case."""
    attributes: dict[str, str] = {}
    errors: dict[str, str] = {}
    seen: set[str] = set()
    for key, value in pairs:
        key, value = " ".join((key or "").split()), (value or "").strip()
        if not key and not value:
            continue
        if not key:
            errors.setdefault("attributes", _("Give every value a name (for example CPF)."))
        elif len(key) > MAX_KEY or not KEY_RE.match(key):
            errors.setdefault("attributes", _("“%(key)s” is not a usable name: at most %(max)d letters, digits, "
                                              "spaces and . - / #.") % {"key": key[:60], "max": MAX_KEY})
        elif key.lower() in seen:
            errors.setdefault("attributes", _("“%(key)s” is there twice.") % {"key": key})
        elif len(value) > MAX_VALUE or "\x00" in value:
            errors.setdefault("attributes", _("The value of “%(key)s” is too long (at most %(max)d characters).")
                              % {"key": key, "max": MAX_VALUE})
        elif key.lower() == "cpf" and value and not cpf_is_valid(value):
            errors.setdefault("attributes", _("“%(value)s” is not a valid CPF.") % {"value": value[:20]})
        else:
            seen.add(key.lower())
            if value:
                attributes[key] = value
    if len(attributes) > MAX_ATTRIBUTES:
        errors.setdefault("attributes", _("A contact has at most %(max)d attributes.") % {"max": MAX_ATTRIBUTES})
    return attributes, errors


# --- editing -------------------------------------------------------------------------------------

EMPTY_ROWS = 2  # blank attribute rows the form offers for new pairs


def edit_form_values(contact, *, name=None, notes=None, pairs=None) -> dict:
    """What the edit form shows: the contact's values, or what the agent sent back with an error."""
    if pairs is None:
        pairs = list((contact.attributes or {}).items())
    pairs = [p for p in pairs if p[0] or p[1]] + [("", "")] * EMPTY_ROWS
    return {"name": contact.display_name if name is None else name, "notes": contact.notes if notes is None else notes,
            "pairs": pairs}


def check_edit_contact(contact, *, name: str, notes: str, pairs: list[tuple[str, str]], user) -> Contact:
    name = " ".join((name or "").split())
    notes = (notes or "").replace("\r\n", "\n").strip()
    attributes, errors = clean_attributes(pairs)
    if len(name) > MAX_NAME or "\x00" in name:
        errors["name"] = _("A name has at most %(max)d characters.") % {"max": MAX_NAME}
    if len(notes) > MAX_NOTES or "\x00" in notes:
        errors["notes"] = _("Notes hold at most %(max)d characters.") % {"max": MAX_NOTES}
    if errors:
        raise ContactRefused(errors)
    return do_edit_contact(contact, name=name, notes=notes, attributes=attributes, user=user)


def do_edit_contact(contact, *, name: str, notes: str, attributes: dict, user=None) -> Contact:
    """Our name (locked against the sync's names; empty hands it back to the sync), notes, attributes.
    The contact's open conversations, list rows and panels follow live."""
    from inbox import events

    with transaction.atomic():
        row = Contact.objects.for_tenant(contact.tenant_id).select_for_update().get(pk=contact.pk)
        # The name as shown in the form: the same text leaves the sync's name the sync's.
        if name and (name != row.display_name or row.name_locked):
            display_name, name_locked = name, True
        elif not name and row.name_locked:
            display_name, name_locked = "", False
        else:
            display_name, name_locked = row.display_name, row.name_locked
        changed = [f for f, old, new in (("name", (row.display_name, row.name_locked), (display_name, name_locked)),
                                         ("notes", row.notes, notes), ("attributes", row.attributes, attributes))
                   if old != new]
        if not changed:
            return row
        row.display_name, row.name_locked = display_name, name_locked
        row.notes, row.attributes = notes, attributes
        row.save(update_fields=["display_name", "name_locked", "notes", "attributes", "updated_at"])
        conversation_ids = list(Conversation.objects.for_tenant(row.tenant_id).filter(contact_id=row.pk)
                                .values_list("pk", flat=True))
        events.publish_conversations_on_commit(row.tenant_id, conversation_ids)  # headers and list rows: the name
        publish_contact_on_commit(row.tenant_id, row.pk)
        integrations.record_events(row.tenant_id, [integrations.contact_event(
            integrations.CONTACT_UPDATED, row.pk, changed=changed)])
    logger.info("inbox.contact_edited", extra={"contact_id": row.pk, "tenant_id": row.tenant_id, "changed": changed,
                                               "user_id": getattr(user, "pk", None)})
    return row


# --- merging -------------------------------------------------------------------------------------


@dataclass
class MergePreview:
    """What a merge of ``other`` into ``survivor`` moves (the confirmation step shows it)."""

    survivor: Contact
    other: Contact
    identities: list[str]
    conversations: list[Conversation]
    joined: list[tuple[Conversation, Conversation]]  # (other's, survivor's) conversations of one number: become one
    notes: int
    labels: int
    attributes: dict[str, str]  # the other's attributes the survivor does not have


def merge_candidates(tenant, contact, query: str) -> list[Contact]:
    """People of the tenant matching a name or phone (digits anywhere in the number), not ``contact``
    (one query)."""
    query = " ".join((query or "").split())[:100]
    if not query:
        return []
    match = Q(display_name__icontains=query) | Q(push_name__icontains=query)
    digits = re.sub(r"\D", "", query)
    if len(digits) >= 3:
        match |= Q(phone_number__contains=digits) | Q(identities__jid__startswith=digits)
    return list(Contact.objects.for_tenant(tenant).filter(match, kind=Contact.Kind.PERSON).exclude(pk=contact.pk)
                .distinct().order_by("display_name", "push_name", "pk")[:SEARCH_LIMIT])


def merge_preview(survivor: Contact, other: Contact) -> MergePreview:
    tenant_id = survivor.tenant_id
    ids = [survivor.pk, other.pk]
    conversations = list(Conversation.objects.for_tenant(tenant_id).filter(contact_id__in=ids)
                         .select_related("connection").annotate(message_count=Count("messages")).order_by("pk"))
    survivors = {c.connection_id: c for c in conversations if c.contact_id == survivor.pk}
    moved = [c for c in conversations if c.contact_id == other.pk]
    joined = [(c, survivors[c.connection_id]) for c in moved if c.connection_id in survivors and not c.is_group]
    return MergePreview(
        survivor=survivor, other=other,
        identities=list(ContactIdentity.objects.for_tenant(tenant_id).filter(contact_id=other.pk)
                        .order_by("jid").values_list("jid", flat=True)),
        conversations=moved, joined=joined,
        notes=Note.objects.for_tenant(tenant_id).filter(conversation__contact_id=other.pk).count(),
        labels=ConversationLabel.objects.for_tenant(tenant_id).filter(conversation__contact_id=other.pk).count(),
        attributes={k: v for k, v in other.attributes.items() if k.lower() not in
                    {s.lower() for s in survivor.attributes}},
    )


def check_merge_contacts(survivor: Contact, other: Contact, user) -> tuple[Contact, dict[int, int | None]]:
    if survivor.pk == other.pk:
        raise ContactRefused({"merge": _("Choose another contact to merge.")})
    if survivor.tenant_id != other.tenant_id:  # access_contact already made it a 404; never merge across tenants
        raise ContactRefused({"merge": _("Choose another contact to merge.")})
    if Contact.Kind.GROUP in (survivor.kind, other.kind):
        raise ContactRefused({"merge": _("Groups cannot be merged.")})
    for attempt in range(MERGE_ATTEMPTS):
        try:
            return do_merge_contacts(survivor.tenant_id, survivor.pk, other.pk, user=user)
        except OperationalError:  # a deadlock with a sync batch: one of the two was rolled back
            if attempt == MERGE_ATTEMPTS - 1:
                raise
            logger.warning("inbox.contacts_merge_retried", extra={"survivor": survivor.pk, "merged": other.pk})
    raise AssertionError("unreachable")


def do_merge_contacts(tenant_id: int, survivor_id: int, other_id: int, *, user=None) \
        -> tuple[Contact, dict[int, int | None]]:
    """Fold contact ``other_id`` into ``survivor_id`` in one transaction through the sync's merge (see the
    module's docstring for what moves and the locks). Returns the survivor and the conversations folded
    into another (id -> the one they went into). Validates nothing."""
    from inbox import events
    from sync.identities import Identities, canonical_of, merge_contacts, reconcile_conversations
    from sync.results import IngestResult

    with transaction.atomic():
        ids = sorted([survivor_id, other_id])
        locked = list(Contact.objects.for_tenant(tenant_id).select_for_update().filter(pk__in=ids)
                      .order_by("pk").values_list("pk", flat=True))
        if len(locked) != 2:
            raise ContactRefused({"merge": _("One of the two contacts is gone; reload the page.")})
        before = dict(Conversation.objects.for_tenant(tenant_id).select_for_update()
                      .filter(contact_id__in=ids).order_by("pk").values_list("pk", "connection_id"))
        conversation_ids = list(before)
        merge_contacts(tenant_id, [survivor_id, other_id])
        jids = list(ContactIdentity.objects.for_tenant(tenant_id).filter(contact_id=survivor_id)
                    .values_list("jid", flat=True))
        people = [j for j in jids if not j.endswith("@g.us")]
        result = IngestResult()
        if people:
            canon = canonical_of(set(people))
            reconcile_conversations(tenant_id, Identities({j: survivor_id for j in people},
                                                          {j: canon for j in people}), result)
        survivor = Contact.objects.for_tenant(tenant_id).get(pk=survivor_id)
        kept = dict(Conversation.objects.for_tenant(tenant_id).filter(pk__in=conversation_ids)
                    .values_list("pk", "connection_id"))
        by_connection = {connection_id: pk for pk, connection_id in kept.items()}
        # A conversation folded into another was the same person's chat on the same number.
        gone = {pk: by_connection.get(connection_id) for pk, connection_id in before.items() if pk not in kept}
        events.publish_conversations_on_commit(tenant_id, sorted(kept))
        publish_contact_on_commit(tenant_id, survivor_id)
        _publish_removed_on_commit(tenant_id, gone)
        integrations.record_events(tenant_id, [integrations.contact_event(
            integrations.CONTACT_MERGED, survivor_id, merged_contact_id=other_id,
            conversations_merged=[{"id": pk, "into": target} for pk, target in sorted(gone.items())])])
    logger.info("inbox.contacts_merged", extra={"tenant_id": tenant_id, "survivor": survivor_id, "merged": other_id,
                                                "conversations_joined": result.merges, "user_id": getattr(user, "pk", None)})
    return survivor, gone


# --- rendering and live pushes -------------------------------------------------------------------


def render_contact_details(contact, slug: str, *, oob: bool = False) -> str:
    return render_to_string("inbox/partials/contact_details.html", {"contact": contact, "slug": slug, "oob": oob})


def publish_contact_on_commit(tenant_id: int, contact_id: int) -> None:
    """On commit, every open thread of the contact's conversations gets its details block again."""
    from inbox import events

    def build():
        from inbox.rendering import tenant_slug

        contact = Contact.objects.for_tenant(tenant_id).filter(pk=contact_id).first()
        if contact is None:
            return []
        html = render_contact_details(contact, tenant_slug(tenant_id), oob=True)
        ids = Conversation.objects.for_tenant(tenant_id).filter(contact_id=contact_id).values_list("pk", flat=True)
        return [(events.conversation_group(cid), html) for cid in ids[:events.MAX_CONVERSATIONS_NOTIFIED]]

    events.publish_on_commit("contact", build)


def _publish_removed_on_commit(tenant_id: int, gone: dict[int, int | None]) -> None:
    """Conversations a merge folded into another (id -> the one it went into): their list rows leave every
    open list, their open threads say where the conversation went, and the threads of the ones that took
    their messages reload."""
    from inbox import events
    from inbox.rendering import render_thread_stale, tenant_slug

    if not gone:
        return

    def build():
        slug = tenant_slug(tenant_id)
        sends = []
        for pk, target in sorted(gone.items()):
            html = render_to_string("inbox/partials/conversation_merged.html",
                                    {"slug": slug, "gone": pk, "target": target})
            sends += [(events.inbox_group(tenant_id), html), (events.conversation_group(pk), html)]
        # The conversations that took their messages: open threads reload to show them.
        sends += [(events.conversation_group(target), render_thread_stale(target))
                  for target in sorted({t for t in gone.values() if t})]
        return sends

    events.publish_on_commit("contact-merge", build)
