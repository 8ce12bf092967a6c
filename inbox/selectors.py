"""Reads for the inbox pages: related rows joined in, keyset (cursor) pagination, no COUNT(*).

Cursors are opaque strings "<iso timestamp with offset>|<id>". ``decode_cursor`` never raises: a bad
cursor decodes to None (the first page here); the pages refuse one with a 400 first (inbox.forms).
"""

from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db.models import Q, prefetch_related_objects
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from connections.models import Connection, ConnectionEvent
from inbox import statements
from inbox.bubbles import BubbleMessage, bubble_columns, bubble_message
from inbox.labels import labels_prefetch
from inbox.models import Contact, ContactIdentity, Conversation, ConversationLabel, Message, MessageSearchEntry
from inbox.rows import ROW_FIELDS, ROW_LABELS
from sync.models import SyncRun

LIST_PAGE_SIZE = 50
THREAD_PAGE_SIZE = 50


def encode_cursor(at: datetime, pk: int) -> str:
    return f"{at.isoformat()}|{pk}"


MAX_ID = 2**63 - 1  # ids are bigints; a larger number in a URL is no id of ours


def parse_id(text: str | None) -> int | None:
    """A row id from request text: ASCII digits only ("²".isdigit() is true, int("²") fails), in range."""
    if not text or not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if 0 < value <= MAX_ID else None


def decode_cursor(cursor: str | None) -> tuple[datetime, int] | None:
    """(timestamp, id) of a cursor made by ``encode_cursor``, or None for anything else."""
    if not cursor or "|" not in cursor:
        return None
    at_text, _, pk_text = cursor.rpartition("|")
    pk = parse_id(pk_text)
    try:
        at = parse_datetime(at_text)  # raises on a well-formed but impossible date ("2024-13-45T...")
    except ValueError:
        return None
    if at is None or pk is None or at.tzinfo is None:  # encode_cursor always writes the offset
        return None
    return at, pk


def before_at(cursor: str | None) -> datetime | None:
    """The timestamp a ``before`` cursor pages back from (None: the newest page)."""
    position = decode_cursor(cursor)
    return position[0] if position else None


@dataclass
class ConversationFilters:
    status: str = "open"  # open / pending / resolved / all
    scope: str = "all"  # mine / unassigned / all
    connection_id: int | None = None
    q: str = ""
    label_id: int | None = None  # conversations carrying this label (inbox.labels)

    STATUSES = ("open", "pending", "resolved", "snoozed", "all")
    SCOPES = ("all", "mine", "unassigned")


@dataclass
class Page:
    items: list
    next_cursor: str | None = None
    extra: dict = field(default_factory=dict)


def conversation_list_for_agent(tenant, user, filters: ConversationFilters, cursor: str | None = None,
                                limit: int = LIST_PAGE_SIZE) -> Page:
    """One page of the inbox, newest activity first; a fixed number of queries whatever the page size.

    One query, with or without a search (on PostgreSQL the search is a UNION of index-backed branches
    in a subquery, see ``inbox.statements.conversations_matching_any``).
    """
    qs = Conversation.objects.for_tenant(tenant)
    if filters.status != "all":
        qs = qs.filter(status=filters.status)
    if filters.scope == "mine":
        qs = qs.filter(assignee=user)
    elif filters.scope == "unassigned":
        qs = qs.filter(assignee__isnull=True)
    if filters.connection_id:
        qs = qs.filter(connection_id=filters.connection_id)  # an archived number's too, when chosen
    else:
        # Deleted (archived) numbers' conversations are out of the default view (inbox.deletion); choosing
        # the number in the filter shows them, read-only.
        qs = qs.exclude(connection_id__in=Connection.objects.for_tenant(tenant).filter(archived_at__isnull=False)
                        .values("pk"))
    if filters.label_id:
        qs = qs.filter(pk__in=ConversationLabel.objects.for_tenant(tenant).filter(label_id=filters.label_id)
                       .values("conversation_id"))
    position = decode_cursor(cursor)
    if position:
        at, pk = position
        qs = qs.filter(Q(last_message_at__lt=at) | Q(last_message_at=at, pk__lt=pk))
    search = SearchTerms.parse(filters.q) if filters.q else None
    extra = {"search_note": search.note} if search and search.note else {}
    ordered = ("-last_message_at", "-id")
    related = ("contact", "connection", "assignee")
    if search is None:
        rows = list(qs.select_related(*related).order_by(*ordered)[: limit + 1])
    else:
        rows = statements.conversations_matching_any(tenant, qs, _search_branches(tenant, search), related, limit + 1)
    next_cursor = encode_cursor(rows[limit - 1].last_message_at, rows[limit - 1].pk) if len(rows) > limit else None
    rows = rows[:limit]
    prefetch_related_objects(rows, labels_prefetch(tenant))  # the rows' labels: one query for the page
    return Page(items=rows, next_cursor=next_cursor, extra=extra)


# --- search ------------------------------------------------------------------------------------------
#
# One OR across contact, identity, conversation and message columns cannot use any index: PostgreSQL
# walks every conversation of the tenant and probes the joined rows (docs/measurements.md).
# Instead each column family is its own branch, a semi-join the planner can drive either
# way: from a trigram GIN index (pg_trgm on contact names and numbers, identity JIDs and chat JIDs,
# migration inbox 0001; and on message search entries) when few rows match, or by walking the
# inbox index in activity order when many do. Each branch returns at most one page in the page's order, so the top of their
# UNION is exactly the top of the full result: keyset paging stays correct.

MIN_TEXT_SEARCH = 3  # trigrams need three characters; shorter searches match the start of names and numbers
_PHONE_CHARS = set("0123456789+-(). ")


@dataclass
class SearchTerms:
    text: str
    digits: str  # the number typed without punctuation, when the search looks like a phone number
    short: bool
    note: str = ""

    @classmethod
    def parse(cls, q: str) -> "SearchTerms":
        text = " ".join(q.split())
        digits = "".join(ch for ch in text if ch.isdigit()) if set(text) <= _PHONE_CHARS else ""
        short = len(text) < MIN_TEXT_SEARCH
        note = (_("Searches shorter than %(n)d characters match the start of names and numbers only; type more to "
                  "search message text.") % {"n": MIN_TEXT_SEARCH}) if short else ""
        return cls(text=text, digits=digits, short=short, note=note)


def _search_branches(tenant, search: SearchTerms) -> list[Q]:
    """Predicates on Conversation, one per index-backed way to match; any of them is a hit."""
    contacts = Contact.objects.for_tenant(tenant)
    if search.short:
        # A prefix (LIKE 'ab%') still uses the trigram indexes (word-start trigrams); '%ab%' could not.
        name = Q(display_name__istartswith=search.text) | Q(push_name__istartswith=search.text)
        if search.digits:
            name |= Q(phone_number__startswith="+" + search.digits) | Q(phone_number__startswith=search.digits)
        return [Q(contact_id__in=contacts.filter(name).values("pk"))]
    number = search.digits if len(search.digits) >= MIN_TEXT_SEARCH else search.text
    contact_match = (Q(display_name__icontains=search.text) | Q(push_name__icontains=search.text)
                     | Q(phone_number__icontains=number))
    identities = ContactIdentity.objects.for_tenant(tenant).filter(jid__icontains=number)
    # Message text: the search entries (inbox.search, ADR-10), which only hold bodies of messages not deleted.
    messages = MessageSearchEntry.objects.for_tenant(tenant).filter(body__icontains=search.text)
    return [
        Q(contact_id__in=contacts.filter(contact_match).values("pk")),
        Q(contact_id__in=identities.values("contact_id")),
        Q(chat_jid__icontains=number),
        Q(pk__in=messages.values("conversation_id")),
    ]


def conversations_by_ids(tenant_id: int, ids) -> list[Conversation]:
    """For live updates: the latest state of these conversations (one query)."""
    return list(
        Conversation.objects.for_tenant(tenant_id).filter(pk__in=list(ids)).select_related("contact", "connection", "assignee")
        .prefetch_related(labels_prefetch(tenant_id))
    )


def conversations_for_rows(tenant_id: int, ids) -> list[Conversation]:
    """For the live list flush: these conversations with only what their list rows read (``inbox.rows``), their
    labels prefetched as a list (``ROW_LABELS``). Two queries."""
    return list(
        Conversation.objects.for_tenant(tenant_id).filter(pk__any=list(ids)).select_related("contact", "connection", "assignee")
        .only(*ROW_FIELDS, f"assignee__{get_user_model().USERNAME_FIELD}")
        .prefetch_related(labels_prefetch(tenant_id, to_attr=ROW_LABELS))
    )


def thread_page(conversation, before: str | None = None, limit: int = THREAD_PAGE_SIZE) -> Page:
    """Messages of a conversation, the newest ``limit`` before the cursor, returned oldest first."""
    qs = (Message.objects.for_tenant(conversation.tenant_id).filter(conversation_id=conversation.pk)
          .select_related("sender_user", "media").defer("media__ref"))
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
        Message.objects.for_tenant(tenant_id).filter(pk__in=list(ids)).select_related("sender_user", "media")
        .defer("media__ref").order_by("sent_at", "id")
    )


def messages_for_bubbles(tenant_id: int, ids, conversation_ids=None) -> list[BubbleMessage]:
    """These messages (of these conversations, if given) as pushed thread fragments render them, in thread
    order: only the columns their bubbles read (``inbox.bubbles.bubble_columns``, with their conversation's
    ``is_group``, their agent's name and their file), as values, not model instances. One query, found by
    primary key alone: with the conversations in the statement too the planner, on statistics a few seconds
    old, walked those conversations' whole threads (``msg_thread``) for a live sweep's ~500 ids (14-39 ms
    a batch, growing with the threads; bench/flood.py, docs/measurements.md), so the conversations are
    checked here."""
    rows = (Message.objects.for_tenant(tenant_id).filter(pk__any=list(ids)).order_by("sent_at", "id")
            .values_list(*bubble_columns()))
    messages = [bubble_message(row) for row in rows]
    if conversation_ids is not None:
        wanted = set(conversation_ids)
        messages = [m for m in messages if m.conversation_id in wanted]
    return messages


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
    from inbox.contacts import edit_form_values

    return {"contact": contact, "identities": identities, "other_conversations": others,
            "form": edit_form_values(contact)}


def tenant_members(tenant) -> list:
    """Users who may be assigned conversations in this tenant, by name (one query)."""
    User = get_user_model()
    return list(User.objects.filter(memberships__tenant=tenant).order_by("username"))


def tenant_member(tenant, user_id):
    """The user with this id if they are a member of the tenant, else None."""
    return get_user_model().objects.filter(pk=user_id, memberships__tenant=tenant).first()


def tenant_connections(tenant, *, include_archived: bool = True) -> list[Connection]:
    """The tenant's numbers by name; a deleted (archived) number's conversations stay in the inbox, so
    its filters list it unless ``include_archived`` is off (the numbers page)."""
    qs = Connection.objects.for_tenant(tenant)
    if not include_archived:
        qs = qs.filter(archived_at__isnull=True)
    return list(qs.order_by("name"))


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


def open_alerts(tenant, limit: int = 20) -> list:
    """Alerts still open (not resolved) that nobody acknowledged yet, newest first, with their number."""
    from inbox.models import Alert

    return list(Alert.objects.for_tenant(tenant).filter(acknowledged_at__isnull=True, resolved_at__isnull=True)
                .select_related("connection").order_by("-created_at")[:limit])
