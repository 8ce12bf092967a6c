"""Decoded records -> Contact / Conversation / Message rows, in bulk. No protobuf here.

``ingest(connection, decoded_events)`` must run inside ``transaction.atomic()``; the processor calls
it once per journal batch. Every write is a set-based statement (bulk INSERT ... ON CONFLICT, a binary
COPY of the new messages, new conversations inserted with their aggregates and one UPDATE ... FROM
VALUES for existing ones, bulk updates for message changes); the number of queries depends on the
batch's shape, not on how many messages it carries. Identity merges (a LID and
a phone JID found to be one person) are the rare exception and do a few queries per merge.

The statements themselves, PostgreSQL and the SQLite fallback side by side, are in ``sync.statements``
(``sync.upsert`` decides which messages are new); who is who in ``sync.identities``, what messages give
their conversations in ``sync.aggregates``, operations in ``sync.operations``, group participants in
``sync.groups``.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from operator import attrgetter

from django.utils import timezone

from inbox import integrations
from inbox.events import publish_messages_on_commit
from inbox.media import nudge_fetch_on_commit
from inbox.models import Message
from inbox.search import index_messages
from inbox.snooze import do_wake_for_inbound, publish_woken_on_commit, wake_event
from sync import statements, timing
from sync.aggregates import ConversationAggregate, reset_conversation_aggregates
from sync.groups import apply_groups
from sync.identities import Identities, reconcile_conversations, resolve_identities, update_contact_names
from sync.identity import is_group, skip_reason
from sync.operations import Operation, apply_operations, connections_with_pending_operations
from sync.records import Decoded, MessageRecord
from sync.results import IngestResult
from sync.search_index import INLINE_LIMIT, index_new_messages
from sync.upsert import insert_new

logger = logging.getLogger(__name__)


# --- the batch ----------------------------------------------------------------------------------


MESSAGE_COLUMNS = (
    "tenant_id", "conversation_id", "connection_id", "external_id", "direction", "status", "type", "raw_type", "body",
    "media_mimetype", "media_size", "media_filename", "extra", "sender_jid", "sender_name", "quoted_external_id",
    "quoted_body", "reactions", "sent_at", "send_attempts", "error", "created_at", "updated_at",
)
PUBLISH_HISTORY_MESSAGES = 200


def ingest(conn, events: list[Decoded], beside_copy: Callable[[], None] | None = None, *,
           publish: bool = True) -> IngestResult:
    """Apply decoded events of one connection (journal order). Call inside transaction.atomic().

    ``beside_copy``: CPU work without database access to overlap with the message COPY (the processor's
    decoding of its next batch, ``sync.processor.JournalBatches``); see ``sync.statements.insert_rows``.
    ``publish``: publish the changed conversations and live messages on commit."""
    return ingest_many(conn.tenant_id, [(conn, events)], beside_copy, publish=publish)[0]


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
    chat_aggs: tuple[dict[str, ConversationAggregate], dict[str, ConversationAggregate]] = field(default_factory=lambda: ({}, {}))
    batch_aggs: dict[str, ConversationAggregate] = field(default_factory=dict)
    unread_set: dict[str, int] = field(default_factory=dict)
    listed_at: dict[str, datetime] = field(default_factory=dict)
    conv_ids: dict[str, int] = field(default_factory=dict)
    created: set[str] = field(default_factory=set)
    by_ext: dict[str, tuple[MessageRecord, int]] = field(default_factory=dict)
    inserted: list[str] = field(default_factory=list)
    message_ids: dict[str, int] = field(default_factory=dict)  # external id -> id of the messages inserted
    media: list[MessageRecord] = field(default_factory=list)  # unique messages with a file to fetch


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
        for chat, run in groupby(ev.messages, _chat_of):  # a history chunk's messages come chat by chat
            reason = skipped(chat)
            if reason:
                result.skip(reason, sum(1 for _ in run))
            else:
                part.messages.extend(run)
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


def ingest_many(tenant_id: int, batch: list[tuple[object, list[Decoded]]],
                beside_copy: Callable[[], None] | None = None, *,
                publish: bool = True, list_rows_here: bool = False) -> list[IngestResult]:
    """Apply decoded events of several connections of one tenant in one set of statements (the live
    sweep's flood of many numbers), one ``IngestResult`` per connection, in ``batch`` order. Call inside
    transaction.atomic(). Identities are the tenant's; conversations and messages are per connection.
    ``list_rows_here``: the conversation-list rows are flushed by this process after the commit (the live
    sweep, ADR-7 amended) instead of a Celery task.

    The number of statements depends on the batch's shape (history or live, operations or groups
    present), not on how many connections or messages it carries."""
    lap = timing.Laps()
    mappings: set[tuple[str, str]] = set()
    names: dict[str, str] = {}
    parts = [_collect(conn, events, names, mappings) for conn, events in batch]
    lap("collect")
    identities = _resolve_batch_identities(tenant_id, parts, mappings, names)
    lap("identities")
    _plan_conversations(parts, identities.canonical)
    ensure_conversations(parts, identities)
    lap("conversations")
    _write_messages(tenant_id, parts, identities.canonical, beside_copy, lap)
    _update_aggregates(parts)
    lap("aggregates")
    _apply_batch_operations(parts)
    lap("operations")
    _update_names_and_groups(tenant_id, parts, identities, names)
    lap("names_groups")
    results = [part.result for part in parts]
    if publish:
        _publish(tenant_id, results, background=not list_rows_here)
    return results


def _resolve_batch_identities(tenant_id: int, parts: list[_Part], mappings, names) -> Identities:
    """Who is who. One pass over the messages (each external id once per connection): their senders, and
    per chat the aggregates its conversation gets from them (first and last message, preview, live
    unread). A conversation created by this batch is inserted with those values; an existing one is
    updated afterwards with those of the messages the COPY actually inserted (a replay changes nothing)."""
    needed: set[str] = set()
    group_jids: set[str] = set()
    display_names: dict[str, str] = {}
    for part in parts:
        part.unique = unique = _first_of_each_id(part.messages)
        part.result.duplicates += len(part.messages) - len(unique)
        needed.update({m.sender_jid for m in unique})
        chat_aggs = part.chat_aggs
        for (group, chat), run in groupby(unique, _chat_key):
            per_chat = chat_aggs[group]
            agg = per_chat.get(chat)
            if agg is None:
                agg = per_chat[chat] = ConversationAggregate()
            agg.add(list(run))
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


def _first_of_each_id(messages: list[MessageRecord]) -> list[MessageRecord]:
    """``messages`` without the repeats of an external id (the first one kept), in order."""
    ids = [m.external_id for m in messages]
    if len(set(ids)) == len(ids):  # the common case, without a loop in Python
        return list(messages)
    seen: set[str] = set()
    unique = []
    for m, ext in zip(messages, ids, strict=True):
        if ext not in seen:
            seen.add(ext)
            unique.append(m)
    return unique


_chat_of = attrgetter("chat_jid")
_chat_key = attrgetter("is_group", "chat_jid")


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
            batch_aggs.setdefault(key, ConversationAggregate())
            if c.unread_count is not None:
                part.unread_set[key] = c.unread_count
            if c.last_message_at:
                part.listed_at.setdefault(key, c.last_message_at)
        for g in part.groups:
            batch_aggs.setdefault(g.group_jid, ConversationAggregate())


def _write_messages(tenant_id: int, parts: list[_Part], canon: dict[str, str], beside_copy: Callable[[], None] | None,
                    lap: timing.Laps) -> None:
    """The messages not stored yet, in one COPY for the whole batch; each part learns what it inserted
    and the ids its messages got."""
    rows = []
    created_ids: set[int] = set()
    now = timezone.now()
    for part in parts:
        created_ids.update(part.conv_ids[key] for key in part.created)
        rows.extend(_message_rows(tenant_id, part, canon, now))
    lap("message_rows")
    id_range: list[int] = []
    ids: list[int] = []
    inserted = insert_new(Message, MESSAGE_COLUMNS, rows, {}, ("connection_id", "external_id"),
                          beside_copy=beside_copy, id_range=id_range, ids=ids, fresh=("conversation_id", created_ids))
    lap("message_copy")
    by_conn = {part.conn.pk: part for part in parts}
    for (conn_id, ext), message_id in zip(inserted, ids, strict=True):
        part = by_conn[conn_id]
        part.inserted.append(ext)
        part.message_ids[ext] = message_id
    _index_and_find_published(parts, inserted, tuple(id_range) if id_range else None)
    lap("search")
    _register_media(tenant_id, parts)
    lap("media")


def _register_media(tenant_id: int, parts: list[_Part]) -> None:
    """A pending media row for each media message inserted (the runner fetches the files off this path).
    Text-only batches cost nothing here; a batch with media costs one statement."""
    rows = []
    for part in parts:
        if not part.media:
            continue
        conn_id, stored = part.conn.pk, part.message_ids
        rows.extend((stored[m.external_id], conn_id, m.type, m.media_ref, m.media_mimetype, m.media_size,
                     m.media_filename, not m.live) for m in part.media if m.external_id in stored)
    if rows:
        statements.insert_media_of_messages(tenant_id, rows)
        nudge_fetch_on_commit({row[1] for row in rows})


def _message_rows(tenant_id: int, part: _Part, canon: dict[str, str], now: datetime) -> list[tuple]:
    """The COPY rows of one part's unique messages (MESSAGE_COLUMNS order); fills ``part.by_ext`` and
    ``part.media``."""
    conv_ids, by_ext, conn_id = part.conv_ids, part.by_ext, part.conn.pk
    canon_get = canon.get
    dumps = json.dumps
    rows = []
    append = rows.append
    media = part.media
    for (group, chat), run in groupby(part.unique, _chat_key):  # the conversation resolved once per run of a chat
        cid = conv_ids[chat if group else canon_get(chat, chat)]
        for m in run:
            ext = m.external_id
            by_ext[ext] = (m, cid)
            if m.media_ref:
                media.append(m)
            sender = m.sender_jid
            from_me = m.from_me
            append((
                tenant_id, cid, conn_id, ext, "out" if from_me else "in",
                m.status or ("sent" if from_me else "received"), m.type, m.raw_type, m.body, m.media_mimetype,
                m.media_size, m.media_filename, dumps(m.extra) if m.extra else "{}",
                canon_get(sender, sender) if sender else "", "" if from_me else m.push_name, m.quoted_external_id,
                m.quoted_body, "{}", m.timestamp, 0, "", now, now,
            ))
    return rows


def _update_aggregates(parts: list[_Part]) -> None:
    """Counts, and each existing conversation's aggregates from the messages the COPY inserted (new
    conversations were created with theirs)."""
    aggs: dict[int, ConversationAggregate] = defaultdict(ConversationAggregate)
    recount_listed: dict[int, datetime] = {}
    recount_unread: dict[int, int] = {}
    now = timezone.now()
    for part in parts:
        result = part.result
        result.saved = len(part.inserted)
        result.duplicates += len(part.unique) - len(part.inserted)
        part_created = {part.conv_ids[key] for key in part.created}
        recount = _conversations_to_recount(part, part_created)
        inserted_into: dict[int, list[MessageRecord]] = defaultdict(list)
        for ext in part.inserted:
            m, cid = part.by_ext[ext]
            if cid not in part_created or cid in recount:
                inserted_into[cid].append(m)
        for cid, messages in inserted_into.items():
            aggs[cid].add(messages)
        part_aggs = set(inserted_into)
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
    statements.update_conversation_aggregates(aggs)
    # Live inbound messages (what ``unread_add`` counts) wake snoozed conversations; history never does, and a
    # conversation this batch created cannot be snoozed. Nothing to run for a history batch.
    wake = [cid for cid, a in aggs.items() if a.unread_add]
    if wake:
        woken = set(do_wake_for_inbound(parts[0].conn.tenant_id, wake))
        for part in parts:
            part.result.woken.update(woken & part.result.conversation_ids)


def _conversations_to_recount(part: _Part, part_created: set[int]) -> set[int]:
    """A message of a new conversation that was stored already (another chat's id: the COPY's fallback)
    means the values it was created with counted it: those conversations are recomputed."""
    if len(part.inserted) >= len(part.unique):
        return set()
    stored = set(part.inserted)
    return {cid for ext, (_, cid) in part.by_ext.items() if cid in part_created and ext not in stored}


def _apply_batch_operations(parts: list[_Part]) -> None:
    """Operations on existing messages, and the ones that were waiting for the messages just stored."""
    waiting = connections_with_pending_operations([p.conn.pk for p in parts if p.inserted and not p.ops])
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


def _publish(tenant_id: int, results: list[IngestResult], background: bool) -> None:
    # Once for the whole batch: its new live messages, then what its operations changed (a recorder's
    # statements per batch, not per connection or operation; api.webhooks: two at most).
    woken = sorted({c for r in results for c in r.woken})
    integrations.record_events(tenant_id, [
        integrations.message_event(integrations.MESSAGE_SENT if from_me else integrations.MESSAGE_RECEIVED, mid, cid)
        for mid, cid, from_me in sorted(m for r in results for m in r.live_messages)
    ] + [e for r in results for e in r.events] + [wake_event(c, "inbound_message") for c in woken])
    publish_woken_on_commit(tenant_id, woken)
    conversation_ids = {c for r in results for c in r.conversation_ids}
    if conversation_ids:
        # List rows go through a Celery task (``background``): a history chunk touches hundreds of
        # conversations and rendering them here would cost every ingested message (docs/measurements.md,
        # docs/live-updates.md). The live sweep flushes them itself (ADR-7 amended).
        publish_messages_on_commit(tenant_id, sorted(conversation_ids),
                                   sorted({m for r in results for m in r.message_ids}), background=background)


def _index_and_find_published(parts: list[_Part], inserted: list[tuple[int, str]], id_range) -> None:
    """Search entries for what was inserted, and the ids of the messages open threads get rendered:
    live messages, and a small history backfill whole (a large history chunk only moves the list: its
    messages are older than what a thread shows). A small batch is indexed at once by message id; a
    large one (history) per connection, in the background (ADR-10). The connections' small parts are indexed
    together, in one statement per 500 messages: a live sweep's batch over 500 messages sent one per connection
    (100 in bench/flood.py's flood, each with its own IN list of external ids)."""
    large = {id(p) for p in parts if len(p.inserted) > INLINE_LIMIT} if id_range is not None else set()
    for part in parts:
        if id(part) in large:
            index_new_messages(part.conn, part.inserted, id_range)
    small = [i for part in parts if id(part) not in large for i in part.message_ids.values()]
    if small:
        index_messages(small)
    for part in parts:
        live = [ext for ext in part.inserted if part.by_ext[ext][0].live]
        history = len(part.inserted) - len(live)
        if history and history <= PUBLISH_HISTORY_MESSAGES:
            live = part.inserted
        result = part.result
        for ext in live:
            message_id = part.message_ids[ext]
            result.message_ids.add(message_id)
            m, cid = part.by_ext[ext]
            if m.live:
                result.live_messages.append((message_id, cid, m.from_me))


def ensure_conversations(parts: list[_Part], identities: Identities) -> None:
    """Each part's ``conv_ids`` (chat key -> conversation id for every key of its ``batch_aggs``) and
    ``created`` (the keys created now), creating the missing ones in bulk with what this batch's messages
    give them (``batch_aggs``), the history chat's unread count (``unread_set``) and, for a chat without
    messages here, its last activity (``listed_at``; else now). Two statements for all connections (a
    third if another process created some meanwhile)."""
    wanted = [(part.conn.pk, key) for part in parts for key in part.batch_aggs]
    if not wanted:
        return
    ids = statements.conversation_ids(wanted)
    by_conn = {part.conn.pk: part for part in parts}
    missing = [k for k in wanted if k not in ids]
    if missing:
        now = timezone.now()
        rows = []
        for cid, key in missing:
            part = by_conn[cid]
            a = part.batch_aggs.get(key) or ConversationAggregate()
            rows.append((part.conn.tenant_id, cid, key, is_group(key), identities.contact_of[key],
                         a.last_at or part.listed_at.get(key, now), a.preview, a.oldest, a.newest,
                         part.unread_set.get(key, 0) + a.unread_add))
            part.created.add(key)
        ids.update(statements.insert_conversations(rows, now))
        late = [k for k in wanted if k not in ids]
        if late:
            # Created meanwhile by another process (ON CONFLICT DO NOTHING skipped them): read them.
            ids.update(statements.conversation_ids(late))
            for cid, key in late:
                by_conn[cid].created.discard(key)
    for (cid, key), conv_id in ids.items():
        if cid in by_conn:
            by_conn[cid].conv_ids[key] = conv_id
