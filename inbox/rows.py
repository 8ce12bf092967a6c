"""What one conversation-list row shows, worked out in Python once per row, and its HTML.

``rows_html`` prints these values and decides nothing else; the pages (inbox.views, through
``{% conversation_rows_html %}`` in ``partials/conversation_rows.html``) and the live rows (inbox.rendering,
pushed by inbox.list_coalescer) build them here, so both show the same markup. Rendering the same row from
the model in the template (reverse() per row, a translated status and plural per row, the labels walked
twice, every value looked up through Django's template variable resolution) was most of a list page's
rendering time; then printing the worked-out values through a template was still ~65 % of a live list
flush's CPU (a Django template render per row), so the markup is built here too, as a message's bubble is
(inbox.bubbles; docs/measurements.md). Every text value is escaped as the template's autoescaping did.

Values depend on the active language and time zone: build rows where the row is rendered (under
``translation.override`` for each language of a live push). No queries: the conversations come with
contact, connection and assignee joined and their labels prefetched (inbox.selectors).
"""

from dataclasses import dataclass
from html import escape

from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext, ngettext

from inbox.models import Conversation
from inbox.templatetags.inbox_tags import initials, short_time_local, sort_key


@dataclass(slots=True)
class ConversationRow:
    # Numbers printed are strings of digits here (ids, counts, the sort key, the label ids): ``rows_html``
    # prints them as they are and escapes every other value.
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


_URL_PK = 987654321  # stands for the conversation's id in the URL reversed once per render


class RowBuilder:
    """Builds the rows of one render: what depends only on the language, the zone or the day (the status
    labels, "No messages yet", "N unread" per count, today's date) is worked out once, not once per row."""

    def __init__(self, slug: str):
        self.slug = slug
        # reverse() once: the row's URL is this prefix, the conversation's id and this suffix.
        self.url_prefix, self.url_suffix = reverse("conversation", args=[slug, _URL_PK]).rsplit(str(_URL_PK), 1)
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
        # prefetched (inbox.labels.labels_prefetch), ordered by name: as a list for the live flush, else the manager's
        links = getattr(c, ROW_LABELS, None)
        if links is None:
            links = c.label_links.all()
        at = c.last_message_at
        local = at.astimezone(self.zone) if at else None
        unread = c.unread_count
        contact_name = c.contact.name
        return ConversationRow(
            pk=c.pk,
            id=str(c.pk),
            url=f"{self.url_prefix}{c.pk}{self.url_suffix}",
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
ROW_LABELS = "row_label_links"  # the attribute conversations_for_rows prefetches the labels to (a list)


def conversation_rows(conversations, slug: str) -> list[ConversationRow]:
    """The rows of these conversations, in the active language and time zone."""
    builder = RowBuilder(slug)
    return [builder.row(c) for c in conversations]


def rows_html(rows: list[ConversationRow], *, live: bool = False, active_pk: int | None = None) -> str:
    """The list items of these rows, in the active language (``live``: marked for live.js to upsert;
    ``active_pk``: the open conversation's row is marked active)."""
    unassigned = f'<span class="meta-assignee muted">{escape(gettext("Unassigned"))}</span>'
    upsert = 'data-upsert="list"' if live else ""
    return "".join(_row_html(c, upsert, unassigned, active_pk) for c in rows)


def _row_html(c: ConversationRow, upsert: str, unassigned: str, active_pk: int | None) -> str:
    """The digits-only values (ids, counts, the sort key, the label ids) are printed as they are; every other is
    escaped (quotes too, as Django's ``escape``: the same bytes as a template's autoescaping)."""
    e = escape
    classes = "conv-row" + (" is-unread" if c.unread else "") + (" is-active" if active_pk == c.pk else "")
    badge = f'<span class="badge" aria-label="{e(c.unread_label)}">{c.unread}</span>' if c.unread else ""
    assignee = (f'<span class="meta-assignee">\u2192 {e(c.assignee_name)}</span>' if c.assignee_name
                else unassigned)
    chips = "".join(f'<span class="label-chip label-{e(label.color)}">{e(label.name)}</span>' for label in c.labels)
    return (
        f'<li id="conv-{c.id}" class="{classes}"\n'
        f'    {upsert} data-id="{c.id}" data-sort="{c.sort_key}" data-status="{e(c.status)}"\n'
        f'    data-assignee="{c.assignee_id}" data-connection="{c.connection_id}"\n'
        f'    data-labels="{c.label_ids}">\n'
        f'  <a class="conv-link" href="{e(c.url)}">\n'
        f'    <span class="avatar{" avatar-group" if c.is_group else ""}" aria-hidden="true">{e(c.initials)}</span>\n'
        '    <span class="conv-main">\n'
        '      <span class="conv-top">\n'
        f'        <span class="conv-name">{e(c.name)}</span>\n'
        f'        <time class="conv-time" datetime="{e(c.time_iso)}">{e(c.time_short)}</time>\n'
        '      </span>\n'
        '      <span class="conv-bottom">\n'
        f'        <span class="conv-preview">{e(c.preview)}</span>\n'
        f'        {badge}\n'
        '      </span>\n'
        '      <span class="conv-meta">\n'
        f'        <span class="pill pill-{e(c.status)}">{e(c.status_label)}</span>\n'
        f'        {assignee}\n'
        f'        <span class="meta-number muted">{e(c.connection_name)}</span>\n'
        f'        {chips}\n'
        '      </span>\n'
        '    </span>\n'
        '  </a>\n'
        '</li>\n'
    )
