"""One message of a thread as HTML: the bubble the thread pages and the pushed thread fragments both show.

Built in plain Python, once per message: the thread templates print it with ``{% message_bubble %}``
(``inbox.templatetags.inbox_tags``) and the publisher with ``inbox.rendering.render_message``, so a page and
a live update show the same bytes (tests/inbox/test_page_queries.py). Django's template engine resolving a
dozen variables, filters and ``{% if %}`` per message was the largest part of the Celery worker's CPU in a
live flood (docs/measurements.md, "The worker's share").

A bubble reads a ``BubbleMessage``: made of a Message on the pages (``BubbleMessage.of``), straight from a
values query for the push (``inbox.selectors.messages_for_bubbles``: building model instances, with their
conversation, agent and file, was ~10 % of the worker's sweep).

Every value from the message is escaped here, as the template's autoescaping did; ``body`` is already HTML
(``inbox.formatting.format_whatsapp`` escapes the untrusted text first) and the translated labels are ours.
Values depend on the active language and time zone: build bubbles where they are shown. A message with a
file prints ``partials/message_media.html`` (a template still: files are few and their markup varies). No
queries in ``BubbleMessage.of`` beyond ``sender_user`` and, for a media message, ``media``: load them with the
message.
"""

from dataclasses import dataclass
from datetime import datetime
from html import escape  # Django's escape is this behind a lazy-string check (quotes too); every value here is a str

from django.contrib.auth import get_user_model
from django.template.loader import get_template
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator
from django.utils.translation import gettext as _

from inbox.formatting import format_whatsapp
from inbox.templatetags.inbox_tags import Clock, reaction_summary, sort_key, tick_label, tick_symbol


@dataclass(slots=True)
class BubbleMessage:
    """What a bubble reads of a message (its Message's field names; message_media.html reads it as ``m``)."""

    pk: int
    conversation_id: int
    is_group: bool  # its conversation's
    direction: str
    status: str
    type: str
    body: str
    sender_jid: str
    sender_name: str
    agent: str | None  # the username of the agent who sent it (None: not sent from the inbox)
    quoted_body: str
    quoted_external_id: str
    reactions: dict
    sent_at: datetime
    edited_at: datetime | None
    deleted_at: datetime | None
    error: str
    media_filename: str
    media_size: int | None
    media: object  # its MediaFile, None when not stored (message_media.html reads it as ``f``)

    @classmethod
    def of(cls, m, is_group: bool) -> "BubbleMessage":
        """Of a Message (``sender_user`` loaded, and ``media`` for a message with a file)."""
        return cls(m.pk, m.conversation_id, is_group, m.direction, m.status, m.type, m.body, m.sender_jid,
                   m.sender_name, m.sender_user.get_username() if m.sender_user_id is not None else None,
                   m.quoted_body, m.quoted_external_id, m.reactions, m.sent_at, m.edited_at, m.deleted_at, m.error,
                   m.media_filename, m.media_size, getattr(m, "media", None) if m.type != "text" else None)


MESSAGE_COLUMNS = ("id", "conversation_id", "conversation__is_group", "direction", "status", "type", "body",
                   "sender_jid", "sender_name")  # then the agent's username
MORE_MESSAGE_COLUMNS = ("quoted_body", "quoted_external_id", "reactions", "sent_at", "edited_at", "deleted_at",
                        "error", "media_filename", "media_size")
MEDIA_COLUMNS = ("id", "kind", "state", "mimetype", "thumbnail_name", "size", "error")  # message_media.html


def bubble_columns() -> tuple[str, ...]:
    """The columns of a values query that ``bubble_message`` makes a BubbleMessage of (the live push reads no
    more than these: whole message, conversation and user rows were ~15 timestamps parsed per message)."""
    return (*MESSAGE_COLUMNS, f"sender_user__{get_user_model().USERNAME_FIELD}", *MORE_MESSAGE_COLUMNS,
            *(f"media__{name}" for name in MEDIA_COLUMNS))


def bubble_message(row: tuple) -> BubbleMessage:
    """A BubbleMessage of a row of ``bubble_columns()``."""
    from inbox.models import MediaFile

    n = len(MESSAGE_COLUMNS) + 1 + len(MORE_MESSAGE_COLUMNS)
    media = row[n:]
    file = MediaFile(**dict(zip(MEDIA_COLUMNS, media, strict=True))) if media[0] is not None else None
    return BubbleMessage(*row[:n], media=file)


def message_bubble(m: BubbleMessage, *, live: bool = False, clock: Clock | None = None) -> SafeString:
    """``m``'s bubble. ``live``: the pushed copy, which static/inbox/live.js inserts or replaces in an open
    thread (``data-upsert``)."""
    deleted, t = m.deleted_at is not None, (clock or Clock.now()).stamp(m.sent_at)
    html = "\n".join([
        _opening(m, t, live),
        '  <div class="bubble">',
        *_senders(m),
        *(_deleted_note() if deleted else _content(m)),
        _footer(m, t, deleted),
        *_not_sent(m),
        "  </div>",
        *_reactions(m),
        "</article>",
    ])
    return mark_safe(html)  # noqa: S308 - every value above is escaped or already safe HTML


def _opening(m, t, live: bool) -> str:
    classes = f"msg msg-{escape(m.direction)}"
    if m.deleted_at is not None:
        classes += " msg-deleted"
    if m.status == "failed":
        classes += " msg-failed"
    upsert = ' data-upsert="thread"' if live else ""
    return (f'<article id="msg-{m.pk}" class="{classes}"{upsert} data-conversation="{m.conversation_id}"'
            f' data-sort="{sort_key((m.sent_at, m.pk))}" data-direction="{escape(m.direction)}"\n'
            f'  data-day="{t.day}" data-day-label="{escape(t.day_label)}">')


def _senders(m) -> list[str]:
    """An inbound group message's sender; an outbound message's agent ("From the phone": none)."""
    if m.direction == "in":
        if not m.is_group:
            return []
        return [f'    <div class="msg-sender">{escape(m.sender_name or m.sender_jid)}</div>']
    if m.direction != "out":
        return []
    name = escape(m.agent) if m.agent is not None else _("From the phone")
    return [f'    <div class="msg-sender msg-sender-out">{name}</div>']


def _deleted_note() -> list[str]:
    note = _("This message was deleted")
    return [f'    <p class="msg-body msg-deleted-note"><span aria-hidden="true">⊘</span> {note}</p>']


def _content(m) -> list[str]:
    """The quote, the file and the text, each when there is one."""
    lines = []
    if m.quoted_body:
        lines.append(f'    <blockquote class="msg-quote">{escape(Truncator(m.quoted_body).chars(200))}</blockquote>')
    elif m.quoted_external_id:  # the quoted message's text is not known
        lines.append('    <blockquote class="msg-quote">' + _("Quoted message") + "</blockquote>")
    if m.type != "text":  # its file may not be stored (yet, or ever): the template shows the type then
        lines.append(get_template("inbox/partials/message_media.html").render({"f": m.media, "m": m}))
    if m.body:
        lines.append(f'    <p class="msg-body">{format_whatsapp(m.body)}</p>')
    return lines


def _footer(m, t, deleted: bool) -> str:
    """Edited, the time and, on an outbound message, its status tick (separated by white space: they are
    inline)."""
    items = []
    if m.edited_at is not None and not deleted:
        items.append('<span class="msg-edited">' + _("edited") + "</span>")
    items.append(f'<time datetime="{t.iso}">{t.hm}</time>')
    if m.direction == "out":
        status, label = escape(m.status), escape(tick_label(m.status))
        title = f"{label}: {escape(m.error)}" if m.error else label
        items.append(f'<span class="tick tick-{status}" data-status="{status}" title="{title}" aria-label="{label}">'
                     f"{escape(tick_symbol(m.status))}</span>")
    return '    <footer class="msg-foot">\n      ' + "\n      ".join(items) + "\n    </footer>"


def _not_sent(m) -> list[str]:
    """A failed outbound message's error and its resend button. The button posts relative to the
    conversation page (/t/<slug>/c/<id>/), the only page that shows messages."""
    if m.direction != "out" or m.status != "failed":
        return []
    not_sent, resend = _("Not sent"), _("Resend")
    error = f": {escape(m.error)}" if m.error else ""
    return [f'    <p class="msg-error" role="note">{not_sent}{error}',
            f'      <button type="button" class="btn btn-sm msg-resend" hx-post="m/{m.pk}/resend/"'
            f' hx-target="#msg-{m.pk}" hx-swap="outerHTML">{resend}</button>',
            "    </p>"]


def _reactions(m) -> list[str]:
    """Each emoji once, with how many reacted with it when more than one, most used first."""
    summary = reaction_summary(m.reactions) if m.reactions else []
    if not summary:
        return []
    spans = "".join(f'<span class="reaction">{escape(str(emoji))}{f" {n}" if n > 1 else ""}</span>' for emoji, n in summary)
    return [f'  <div class="reactions">{spans}</div>']
