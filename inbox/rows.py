"""What one conversation-list row shows, worked out in Python once per row.

``templates/inbox/partials/conversation_row.html`` prints these values and decides nothing else; the
pages (inbox.views) and the live rows (inbox.rendering, pushed by inbox.list_coalescer) build them here,
so both show the same markup. Rendering the same row from the model in the template (reverse() per row,
a translated status and plural per row, the labels walked twice, every value looked up through
Django's template variable resolution) was most of a list page's rendering time (docs/measurements.md).

Values depend on the active language and time zone: build rows where the row is rendered (under
``translation.override`` for each language of a live push). No queries: the conversations come with
contact, connection and assignee joined and their labels prefetched (inbox.selectors).
"""

from dataclasses import dataclass

from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext, ngettext

from inbox.models import Conversation
from inbox.templatetags.inbox_tags import initials, short_time_local, sort_key


@dataclass(slots=True)
class ConversationRow:
    # Numbers the template prints are strings here: printing an int in a template goes through number
    # localization (formats.number_format) each time.
    pk: int  # compared with the open conversation's (is-active)
    id: str  # printed
    url: str
    sort_key: str
    status: str
    status_label: str
    assignee_id: str  # "" when unassigned (data-assignee)
    assignee_name: str  # "" when unassigned
    connection_id: str
    connection_name: str
    is_group: bool
    name: str
    initials: str
    time_iso: str  # the last activity in the viewer's zone, ISO 8601 (<time datetime>)
    time_short: str  # "14:05", a weekday or a date (inbox_tags.short_time)
    preview: str
    unread: str  # the unread count, "" when none
    unread_label: str  # "3 unread" ("" when none)
    label_ids: str  # " 4 7 " (data-labels: static/inbox/live.js matches " <id> ")
    labels: list  # the Label rows, by name


class RowBuilder:
    """Builds the rows of one render: what depends only on the language, the zone or the day (the status
    labels, "No messages yet", "N unread" per count, today's date) is worked out once, not once per row."""

    def __init__(self, slug: str):
        self.slug = slug
        self.zone = timezone.get_current_timezone()
        self.today = timezone.now().astimezone(self.zone).date()
        self.status_labels = {value: str(label) for value, label in Conversation.Status.choices}
        self.no_messages = gettext("No messages yet")
        self.unread_labels = {}  # count -> "3 unread"

    def unread_label(self, n: int) -> str:
        if n not in self.unread_labels:
            # The msgid the template's {% blocktranslate count %} had: its translations carry over.
            self.unread_labels[n] = ngettext("%(n)s unread", "%(n)s unread", n) % {"n": n}
        return self.unread_labels[n]

    def row(self, c: Conversation) -> ConversationRow:
        links = c.label_links.all()  # prefetched (inbox.labels.labels_prefetch), ordered by name
        at = c.last_message_at
        local = at.astimezone(self.zone) if at else None
        unread = c.unread_count
        contact_name = c.contact.name
        return ConversationRow(
            pk=c.pk,
            id=str(c.pk),
            url=reverse("conversation", args=[self.slug, c.pk]),
            sort_key=sort_key((at, c.pk)),
            status=c.status,
            status_label=self.status_labels.get(c.status, c.status),
            assignee_id=str(c.assignee_id) if c.assignee_id is not None else "",
            assignee_name=c.assignee.get_username() if c.assignee_id is not None else "",
            connection_id=str(c.connection_id),
            connection_name=c.connection.name,
            is_group=c.is_group,
            name=contact_name,
            initials=initials(contact_name),
            time_iso=local.isoformat() if local else "",
            time_short=short_time_local(local, self.today) if local else "",
            preview=c.last_message_preview or self.no_messages,
            unread=str(unread) if unread else "",
            unread_label=self.unread_label(unread) if unread else "",
            label_ids=" " + "".join(f"{link.label_id} " for link in links),
            labels=[link.label for link in links],
        )


# The columns a row reads (``RowBuilder.row``), for ``QuerySet.only`` (``inbox.selectors.conversations_for_rows``,
# the live list flush): whole conversation, contact, number and agent rows were ~20 timestamps and a few
# JSON columns parsed per row, several times a second per tenant in a flood. A field read but not listed
# here costs a query per row (tests/inbox/test_page_queries.py counts them).
ROW_FIELDS = ("last_message_at", "unread_count", "status", "assignee", "connection", "contact", "is_group",
              "last_message_preview", "contact__display_name", "contact__push_name", "contact__phone_number",
              "connection__name")


def conversation_rows(conversations, slug: str) -> list[ConversationRow]:
    """The rows of these conversations, in the active language and time zone."""
    builder = RowBuilder(slug)
    return [builder.row(c) for c in conversations]
