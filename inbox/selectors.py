"""Reads for the inbox pages: related rows joined in, keyset (cursor) pagination, no COUNT(*).

Cursors are opaque strings "<iso timestamp>|<id>"; a bad cursor is treated as "first page".
"""

from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils.dateparse import parse_datetime

from connections.models import Connection, ConnectionEvent
from inbox.models import Conversation, Membership, Message
from sync.models import SyncRun

LIST_PAGE_SIZE = 50
THREAD_PAGE_SIZE = 50


def encode_cursor(at: datetime, pk: int) -> str:
    return f"{at.isoformat()}|{pk}"


def decode_cursor(cursor: str | None) -> tuple[datetime, int] | None:
    if not cursor or "|" not in cursor:
        return None
    at_text, _, pk_text = cursor.rpartition("|")
    at = parse_datetime(at_text)
    if at is None or not pk_text.isdigit():
        return None
    return at, int(pk_text)


@dataclass
class ConversationFilters:
    status: str = "open"  # open / pending / resolved / all
    scope: str = "all"  # mine / unassigned / all
    connection_id: int | None = None
    q: str = ""

    STATUSES = ("open", "pending", "resolved", "all")
    SCOPES = ("all", "mine", "unassigned")


@dataclass
class Page:
    items: list
    next_cursor: str | None = None
    extra: dict = field(default_factory=dict)


def conversation_list_for_agent(tenant, user, filters: ConversationFilters, cursor: str | None = None,
                                limit: int = LIST_PAGE_SIZE) -> Page:
    """One page of the inbox, newest activity first; one query whatever the page size."""
    qs = Conversation.objects.for_tenant(tenant).select_related("contact", "connection", "assignee")
    if filters.status != "all":
        qs = qs.filter(status=filters.status)
    if filters.scope == "mine":
        qs = qs.filter(assignee=user)
    elif filters.scope == "unassigned":
        qs = qs.filter(assignee__isnull=True)
    if filters.connection_id:
        qs = qs.filter(connection_id=filters.connection_id)
    if filters.q:
        q = filters.q
        text_hits = Message.objects.for_tenant(tenant).filter(body__icontains=q).values("conversation_id")
        qs = qs.filter(
            Q(contact__display_name__icontains=q)
            | Q(contact__push_name__icontains=q)
            | Q(contact__phone_number__icontains=q)
            | Q(chat_jid__icontains=q)
            | Q(pk__in=text_hits)
        )
    position = decode_cursor(cursor)
    if position:
        at, pk = position
        qs = qs.filter(Q(last_message_at__lt=at) | Q(last_message_at=at, pk__lt=pk))
    rows = list(qs.order_by("-last_message_at", "-id")[: limit + 1])
    next_cursor = encode_cursor(rows[limit - 1].last_message_at, rows[limit - 1].pk) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor)


def conversations_by_ids(tenant_id: int, ids) -> list[Conversation]:
    """For live updates: the latest state of these conversations (one query)."""
    return list(
        Conversation.objects.for_tenant(tenant_id).filter(pk__in=list(ids)).select_related("contact", "connection", "assignee")
    )


def thread_page(conversation, before: str | None = None, limit: int = THREAD_PAGE_SIZE) -> Page:
    """Messages of a conversation, the newest ``limit`` before the cursor, returned oldest first."""
    qs = Message.objects.filter(conversation_id=conversation.pk).select_related("sender_user")
    position = decode_cursor(before)
    if position:
        at, pk = position
        qs = qs.filter(Q(sent_at__lt=at) | Q(sent_at=at, pk__lt=pk))
    rows = list(qs.order_by("-sent_at", "-id")[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    rows.reverse()
    older = encode_cursor(rows[0].sent_at, rows[0].pk) if has_more and rows else None
    return Page(items=rows, next_cursor=older, extra={"exhausted": not has_more})


def messages_by_ids(tenant_id: int, ids) -> list[Message]:
    return list(
        Message.objects.for_tenant(tenant_id).filter(pk__in=list(ids)).select_related("sender_user").order_by("sent_at", "id")
    )


def contact_panel(conversation) -> dict:
    """The contact's identities and their other conversations (two queries)."""
    contact = conversation.contact
    identities = list(contact.identities.order_by("kind", "jid"))
    others = list(
        Conversation.objects.for_tenant(conversation.tenant_id)
        .filter(contact_id=contact.pk)
        .exclude(pk=conversation.pk)
        .select_related("connection")
        .order_by("-last_message_at")[:10]
    )
    return {"contact": contact, "identities": identities, "other_conversations": others}


def tenant_members(tenant) -> list:
    """Users who may be assigned conversations in this tenant, by name (one query)."""
    User = get_user_model()
    return list(User.objects.filter(memberships__tenant=tenant).order_by("username"))


def is_member(tenant, user_id) -> bool:
    return Membership.objects.filter(tenant=tenant, user_id=user_id).exists()


def tenant_connections(tenant) -> list[Connection]:
    return list(Connection.objects.for_tenant(tenant).order_by("name"))


def active_sync_runs(tenant, connection_ids) -> dict[int, SyncRun]:
    """The running history sync of each connection, if any (one query)."""
    runs = (
        SyncRun.objects.for_tenant(tenant)
        .filter(connection_id__in=list(connection_ids), finished_at__isnull=True, kind=SyncRun.Kind.HISTORY)
        .order_by("connection_id", "-started_at")
    )
    result: dict[int, SyncRun] = {}
    for run in runs:
        result.setdefault(run.connection_id, run)
    return result


def connection_history(tenant, connection_ids, per_connection: int = 10) -> dict[int, list[ConnectionEvent]]:
    """The latest state changes per connection (one query; a window function keeps it bounded)."""
    from django.db.models import F, Window
    from django.db.models.functions import RowNumber

    ranked = (
        ConnectionEvent.objects.for_tenant(tenant)
        .filter(connection_id__in=list(connection_ids))
        .annotate(rank=Window(RowNumber(), partition_by=[F("connection_id")], order_by=[F("created_at").desc(), F("id").desc()]))
        .filter(rank__lte=per_connection)
        .order_by("connection_id", "-created_at", "-id")
    )
    result: dict[int, list[ConnectionEvent]] = {cid: [] for cid in connection_ids}
    for event in ranked:
        result.setdefault(event.connection_id, []).append(event)
    return result
