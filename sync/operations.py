"""Reactions, edits, revokes and receipts: who may apply them (OperationAuthority), applying them
set-wise, and keeping those whose target message has not arrived yet (PendingOperation)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from datetime import datetime
from typing import NamedTuple

from django.utils import timezone

from config.batching import chunks
from inbox import integrations
from inbox.events import publish_messages_on_commit
from inbox.models import Conversation, GroupParticipant, Message, MessageRevision
from inbox.search import reindex_messages
from sync.identities import canonical_of
from sync.identity import is_group, normalize_jid
from sync.models import PendingOperation, RawEvent
from sync.results import IngestResult
from sync.statements import identities_of_contacts_of, stored_mappings

logger = logging.getLogger(__name__)


STATUS_RANK = {str(k): v for k, v in Message.STATUS_RANK.items()}


def connections_with_pending_operations(connection_ids: list[int]) -> set[int]:
    """Of these connections, the ones with operations waiting for a message (one query for all)."""
    if not connection_ids:
        return set()
    return set(PendingOperation.objects.unscoped().filter(connection_id__any=connection_ids)
               .values_list("connection_id", flat=True).distinct())


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
        person = identities_of_contacts_of(conn.tenant_id, jids) if jids else {}
        unknown = [j for j in jids if j not in person and not is_group(j)]
        if unknown:
            # A JID without an identity of its own may still be mapped to one that has (LID <-> phone).
            pairs = stored_mappings(conn.tenant_id, unknown)
            partners = {}
            for pn, lid in pairs:
                partners[pn], partners[lid] = lid, pn
            mapped = {partners[j] for j in unknown if j in partners}
            found = identities_of_contacts_of(conn.tenant_id, mapped) if mapped else {}
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
            for group_id, member_id, admin in GroupParticipant.objects.unscoped().filter(group_id__in=groups).values_list(
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
        return canonical_of(jids), jids


def apply_operations(conn, ops: list[Operation], arrived: list[str], result: IngestResult) -> None:
    """Reactions, edits, revokes and receipts, in order; those whose target is not stored yet are kept
    as PendingOperation rows, and pending ones whose target just ``arrived`` are applied first.

    Each is checked by ``OperationAuthority`` against its target first; a refused one changes nothing,
    is counted in ``result.refused``, noted on its journal row and logged (``sync.operation.refused``).
    What the applied ones changed is added to ``result.events`` for the caller to record
    (``inbox.integrations``)."""
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
        PendingOperation.objects.unscoped().filter(pk__in=[p[0] for p in pending]).delete()
    if changes.refused:
        _record_refusals(conn, changes.refused, {op.raw_event_id for op in ops}, result)


def _pending_operations_for(conn, arrived: list[str]) -> list[tuple]:
    """The waiting operations whose target is among the messages that just ``arrived``."""
    pending = []
    if arrived and not PendingOperation.objects.unscoped().filter(connection_id=conn.pk).exists():
        return pending
    for chunk in chunks(arrived, 5000):
        pending.extend(PendingOperation.objects.unscoped().filter(connection_id=conn.pk, target_external_id__in=chunk)
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
        self.events: list[integrations.Event] = []  # what changed, for inbox.integrations

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
            self.events.append(integrations.message_event(integrations.MESSAGE_STATUS, m.pk, m.conversation_id,
                                                          status=new))

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
            self.events.append(integrations.message_event(integrations.MESSAGE_EDITED, m.pk, m.conversation_id))

    def _revoke(self, op, m):
        if m.deleted_at is None:
            m.deleted_at = datetime.fromisoformat(op.data["at"])
            self.changed[m.pk] = m
            self.retexted.add(m.pk)
            self.events.append(integrations.message_event(integrations.MESSAGE_DELETED, m.pk, m.conversation_id))

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
            result.events.extend(self.events)
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
        rows = list(RawEvent.objects.unscoped().filter(pk__in=earlier).only("id", "error"))
        for row in rows:
            row.error = "; ".join(filter(None, [row.error, *earlier[row.pk]]))[:5000]
        RawEvent.objects.bulk_update(rows, ["error"])


def apply_pending_operations(conn, external_ids: list[str] | None = None) -> int:
    """Apply waiting operations whose target message now exists (e.g. an outbound message that got
    its WhatsApp id from the runner). Returns how many were applied or refused (they are checked like
    any operation; a refusal is noted on the operation's journal row and logged, outside any run).
    Call inside a transaction."""
    qs = PendingOperation.objects.unscoped().filter(connection_id=conn.pk)
    if external_ids is not None:
        qs = qs.filter(target_external_id__in=external_ids)
    existing = Message.objects.for_tenant(conn.tenant_id).filter(connection_id=conn.pk,
                                                                 external_id__in=qs.values("target_external_id"))
    arrived = list(existing.values_list("external_id", flat=True).distinct())
    if not arrived:
        return 0
    before = PendingOperation.objects.unscoped().filter(connection_id=conn.pk).count()
    result = IngestResult()
    apply_operations(conn, [], arrived, result)
    integrations.record_events(conn.tenant_id, result.events)
    if result.conversation_ids:
        publish_messages_on_commit(conn.tenant_id, sorted(result.conversation_ids), sorted(result.message_ids))
    return before - PendingOperation.objects.unscoped().filter(connection_id=conn.pk).count()
