"""The inbox's database-specific SQL: one function per statement, the PostgreSQL form first and the SQLite
fallback (the embedded default: a laptop's first run) beside it, so the domain modules (selectors, snooze,
the snapshot) never branch on the database. The sync engine's statements are ``sync.statements``; the API
app's are ``api.statements``.
"""

from __future__ import annotations

from django.db import connection as db
from django.db.models import Q
from django.utils import timezone

from config.batching import chunks
from config.lookups import int_array
from inbox.models import Conversation, Snooze

ARRAY_CHUNK = 5000  # ids per statement on PostgreSQL (one array parameter); elsewhere 500 (one placeholder each)

PAGE_ORDER = ("-last_message_at", "-id")


def conversations_matching_any(tenant, qs, branches: list[Q], related: tuple[str, ...], n: int) -> list[Conversation]:
    """The first ``n`` conversations of ``qs`` (the tenant's, filtered) that match any of ``branches``, in page
    order, with ``related`` joined in; one query.

    PostgreSQL: one OR across the branches could use no index (docs/measurements.md), so each branch picks its
    own first ``n`` ids in page order (each index-backed) and their UNION is the candidates' subquery: the top
    of the union is exactly the top of the full result, so keyset paging stays correct. SQLite: the
    branches OR-ed in one query (no trigram indexes there)."""
    if db.vendor != "postgresql":
        predicate = Q()
        for branch in branches:
            predicate |= branch
        return list(qs.filter(predicate).select_related(*related).order_by(*PAGE_ORDER)[:n])
    parts = [qs.filter(branch).order_by(*PAGE_ORDER).values_list("id", flat=True)[:n] for branch in branches]
    candidates = parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]
    return list(Conversation.objects.for_tenant(tenant).filter(pk__in=candidates)
                .select_related(*related).order_by(*PAGE_ORDER)[:n])


def wake_snoozed(tenant_id: int, ids: list[int]) -> list[int]:
    """Open the snoozed ones among conversations ``ids`` and delete their snoozes; returns the woken ids in
    order. PostgreSQL: one statement (an UPDATE ... RETURNING and the DELETE in one WITH); SQLite: three.
    Call inside a transaction that holds (or takes here) the conversations' row locks first."""
    now = timezone.now()
    if db.vendor != "postgresql":
        conversations = Conversation.objects.for_tenant(tenant_id)
        woken = list(conversations.filter(pk__in=ids, status=Conversation.Status.SNOOZED)
                     .order_by("pk").values_list("pk", flat=True))
        if woken:
            conversations.filter(pk__in=woken).update(status=Conversation.Status.OPEN, updated_at=now)
            Snooze.objects.for_tenant(tenant_id).filter(conversation_id__in=woken).delete()
        return woken
    conversation, snooze = Conversation._meta.db_table, Snooze._meta.db_table
    id_array = int_array(ids)  # one literal, not a list psycopg adapts id by id
    with db.cursor() as cursor:
        cursor.execute(f"""
            WITH woken AS (
                UPDATE {conversation} SET status = %s, updated_at = %s
                WHERE tenant_id = %s AND id = ANY(%s::bigint[]) AND status = %s RETURNING id
            ), cleared AS (
                DELETE FROM {snooze} WHERE conversation_id IN (SELECT id FROM woken)
            )
            SELECT id FROM woken ORDER BY id
        """, [Conversation.Status.OPEN, now, tenant_id, id_array, Conversation.Status.SNOOZED])  # noqa: S608
        return [row[0] for row in cursor.fetchall()]


def begin_read_only_snapshot(db_connection) -> bool:
    """Make the transaction just opened on ``db_connection`` one consistent read-only snapshot (PostgreSQL:
    REPEATABLE READ, READ ONLY; must be the transaction's first statement). Returns whether it did; on SQLite
    (one writer at a time) the transaction alone is the snapshot."""
    if db_connection.vendor != "postgresql":
        return False
    with db_connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    return True


def planner_row_estimate(model) -> float | None:
    """How many rows the planner's statistics think ``model``'s table holds (PostgreSQL ``reltuples``: -1 or 0
    for a table never analyzed); None where the database keeps no such statistics (SQLite)."""
    if db.vendor != "postgresql":
        return None
    with db.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [model._meta.db_table])
        return cursor.fetchone()[0]


def id_filters(ids, column: str = "id"):
    """``column`` among ``ids`` as (SQL condition, parameters), chunk by chunk. PostgreSQL: ``= ANY`` of one
    array literal per ``ARRAY_CHUNK`` ids (the plan of ``IN``, without psycopg adapting every id in Python: a
    live sweep indexes ~500 messages a round). Elsewhere ``IN`` with one placeholder per id, 500 at a time."""
    if db.vendor == "postgresql":
        for chunk in chunks(list(ids), ARRAY_CHUNK):
            yield f"{column} = ANY(%s::bigint[])", [int_array(chunk)]
        return
    for chunk in chunks(list(ids), 500):
        yield f"{column} IN ({', '.join(['%s'] * len(chunk))})", list(chunk)
