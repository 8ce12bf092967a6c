"""The message-text search entries (``MessageSearchEntry``), written in one place (ADR-10).

The inbox's message-text search reads ``inbox_messagesearchentry`` (trigram GIN on its body, migration
inbox 0006), not ``inbox_message``: the trigram index's cost per row it indexes (ADR-10), which history
syncs would otherwise pay on every message they insert. Every write path calls these functions:

- ``index_messages(ids)`` / ``index_connection_messages(connection_id, external_ids)``: agent replies,
  demo data, live messages and small sync batches, in their own transaction, so they are searchable
  the moment they are committed;
- ``index_message_range(connection_id, after_id, through_id)``: the sync's search backlog
  (``sync.search_index``) for history batches, a bounded id range at a time;
- ``reindex_messages(ids)``: edits (the new body replaces the entry; an emptied body removes it);
- ``unindex_messages(ids)``: revokes (a deleted message is not searchable; its body stays on the row);
- ``move_entries(from_conversation_ids, to_conversation_id)``: conversation merges.

Only a message with a body that is not deleted has an entry. Inserts never overwrite (``ON CONFLICT DO
NOTHING``): replays and overlapping ranges add nothing. Edits, revokes and merges come from the sync
processor, and the backlog pass holds the same per-connection journal lock, so they never interleave on
one connection's messages. All SQL runs on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

from django.db import connection

from config.batching import chunks
from inbox.statements import id_filters

_COLUMNS = "message_id, tenant_id, conversation_id, body"
_SOURCE = "id, tenant_id, conversation_id, body FROM inbox_message"
_SEARCHABLE = "body <> '' AND deleted_at IS NULL"



def _in(values: list) -> tuple[str, list]:
    """``IN (%s, ...)`` for a chunk of WhatsApp ids or a merge's few conversation ids: portable (SQLite has no
    arrays) and fine at these sizes. Lists of message ids go through ``inbox.statements.id_filters``."""
    return "IN (" + ", ".join(["%s"] * len(values)) + ")", values


def _add_entries(cursor, where: str, params: list) -> int:
    """One ``INSERT ... SELECT`` of the searchable messages matching ``where``; returns rows added."""
    cursor.execute(f"INSERT INTO inbox_messagesearchentry ({_COLUMNS}) SELECT {_SOURCE} "  # noqa: S608
                   f"WHERE {where} AND {_SEARCHABLE} ON CONFLICT (message_id) DO NOTHING", params)
    return max(cursor.rowcount, 0)


def index_messages(message_ids) -> int:
    """Add entries for these messages (those with a body, not deleted, not indexed yet). Returns rows added.
    The ids go by chunks (``inbox.statements.id_filters``: on PostgreSQL one array parameter per chunk)."""
    added = 0
    with connection.cursor() as cursor:
        for where, params in id_filters(message_ids):
            added += _add_entries(cursor, where, params)
    return added


def index_connection_messages(connection_id: int, external_ids) -> int:
    """The same for messages named by their WhatsApp ids on a connection (what a sync batch knows)."""
    added = 0
    with connection.cursor() as cursor:
        for chunk in chunks(external_ids, 500):
            where, params = _in(chunk)
            added += _add_entries(cursor, f"connection_id = %s AND external_id {where}", [connection_id, *params])
    return added


def index_message_range(connection_id: int, after_id: int, through_id: int) -> int:
    """Add entries for the connection's messages with ``after_id < id <= through_id`` (the primary key
    range a sync batch's COPY used; other connections' ids interleaved there are left alone)."""
    with connection.cursor() as cursor:
        return _add_entries(cursor, "id > %s AND id <= %s AND connection_id = %s", [after_id, through_id, connection_id])


def reindex_messages(message_ids) -> None:
    """After edits: entries take the messages' current bodies; an emptied or deleted message loses its entry."""
    ids = list(message_ids)
    if not ids:
        return
    unindex_messages(ids)
    index_messages(ids)


def unindex_messages(message_ids) -> None:
    with connection.cursor() as cursor:
        for where, params in id_filters(message_ids, column="message_id"):
            cursor.execute(f"DELETE FROM inbox_messagesearchentry WHERE {where}", params)  # noqa: S608


def move_entries(from_conversation_ids, to_conversation_id: int) -> None:
    """A merge moved these conversations' messages into ``to_conversation_id``: so do their entries."""
    ids = list(from_conversation_ids)
    if not ids:
        return
    where, params = _in(ids)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE inbox_messagesearchentry SET conversation_id = %s WHERE conversation_id {where}",  # noqa: S608
                       [to_conversation_id, *params])
