"""What one message of a thread shows, worked out in Python once per message.

``templates/inbox/partials/message.html`` prints these values (built by ``inbox.rendering.render_message``,
or by the ``bubble`` filter where the thread templates include it) and decides little else; the thread
pages and the pushed thread fragments both render it, so both show the same markup. Resolving every
value through Django's template variables and filters (the date conversions, ``default``,
``truncatechars``, the status labels and ticks, a dozen ``{% if %}``) was the largest part of the Celery
worker's CPU in a live flood; this way a message renders in ~25 % less CPU (docs/measurements.md, "The
worker's share, second pass").

Values depend on the active language and time zone: build them where the message is rendered. Strings
are printed through the template's autoescaping, as before; only ``body`` is already HTML
(``inbox.formatting.format_whatsapp``, which escapes the untrusted text first). No queries beyond what the
template read before: ``sender_user`` and, for a media message, ``media`` come loaded.
"""

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.utils.text import Truncator

from inbox.formatting import format_whatsapp
from inbox.templatetags.inbox_tags import reaction_summary, sort_key, stamp, tick_label, tick_symbol


@dataclass(slots=True)
class MessageBubble:
    id: str
    classes: str  # "msg msg-in msg-deleted msg-failed"
    conversation_id: str
    sort_key: str
    direction: str
    day: str  # the time in the viewer's zone (inbox_tags.Stamp): data-day
    day_label: str  # "Today", "Yesterday" or the date
    iso: str  # <time datetime>
    hm: str  # "14:05"
    group_sender: str | None  # an inbound group message's sender (None: no sender line)
    out: bool
    sender_user: str  # an outbound message's agent ("": sent from the phone)
    deleted: bool
    quote: str | None  # the quoted text, "" for a quote without it (None: no quote)
    media: bool  # a message with a file: message_media.html
    body: str  # safe HTML (format_whatsapp), "" when none
    edited: bool
    status: str
    error: str
    tick_label: str
    tick_symbol: str
    failed_out: bool
    reactions: list  # [(emoji, count)], most used first
    message: object  # the Message (message_media.html prints its file)


def message_bubble(m, is_group: bool) -> MessageBubble:
    """The values message.html prints for ``m`` (a Message with ``sender_user`` loaded)."""
    direction, status, deleted = m.direction, m.status, m.deleted_at is not None
    out = direction == "out"
    classes = f"msg msg-{direction}"
    if deleted:
        classes += " msg-deleted"
    if status == "failed":
        classes += " msg-failed"
    quote = None
    if m.quoted_body:
        quote = Truncator(m.quoted_body).chars(200)
    elif m.quoted_external_id:
        quote = ""
    t = stamp(m.sent_at)
    user = m.sender_user if out and m.sender_user_id is not None else None
    return MessageBubble(
        id=str(m.pk),
        classes=classes,
        conversation_id=str(m.conversation_id),
        sort_key=sort_key((m.sent_at, m.pk)),
        direction=direction,
        day=t.day,
        day_label=t.day_label,
        iso=t.iso,
        hm=t.hm,
        group_sender=(m.sender_name or m.sender_jid) if is_group and direction == "in" else None,
        out=out,
        sender_user=user.get_username() if user is not None else "",
        deleted=deleted,
        quote=quote,
        media=m.type != "text",
        body=format_whatsapp(m.body) if m.body else "",
        edited=m.edited_at is not None and not deleted,
        status=status,
        error=m.error,
        tick_label=tick_label(status) if out else "",
        tick_symbol=tick_symbol(status) if out else "",
        failed_out=out and status == "failed",
        reactions=reaction_summary(m.reactions) if m.reactions else [],
        message=m,
    )


BUBBLE_MESSAGE_FIELDS = ("conversation", "direction", "status", "type", "body", "sender_jid", "sender_name",
                         "sender_user", "quoted_body", "quoted_external_id", "reactions", "sent_at", "edited_at",
                         "deleted_at", "error", "media_filename", "media_size")
BUBBLE_MEDIA_FIELDS = ("kind", "state", "mimetype", "thumbnail_name", "size", "error")  # message_media.html


def bubble_fields() -> tuple[str, ...]:
    """The columns a bubble reads, for ``QuerySet.only`` (``inbox.selectors.messages_for_bubbles``, the live
    push). Whole rows of the message, its conversation and its agent were ~15 timestamps parsed per pushed
    message (docs/measurements.md). A field read but not listed here costs a query per message
    (tests/inbox/test_page_queries.py counts them)."""
    return (*BUBBLE_MESSAGE_FIELDS, "conversation__is_group", f"sender_user__{get_user_model().USERNAME_FIELD}",
            *(f"media__{name}" for name in BUBBLE_MEDIA_FIELDS))
