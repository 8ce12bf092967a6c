"""Presentation helpers for message and conversation templates. No queries, no business rules."""

from collections import Counter

from django import template
from django.utils import timezone

from inbox.formatting import format_whatsapp

register = template.Library()

MEDIA_LABELS = {
    "image": ("🖼", "Photo"),
    "video": ("🎞", "Video"),
    "audio": ("🎤", "Audio"),
    "document": ("📄", "Document"),
    "sticker": ("🏷", "Sticker"),
    "contact": ("👤", "Contact card"),
    "location": ("📍", "Location"),
    "unsupported": ("❔", "Unsupported message"),
    "system": ("ℹ", "System message"),
}

TICKS = {
    "queued": ("🕓", "Queued: waiting for the number to send it"),
    "sending": ("🕓", "Sending"),
    "sent": ("✓", "Sent"),
    "delivered": ("✓✓", "Delivered"),
    "read": ("✓✓", "Read"),
    "played": ("✓✓", "Played"),
    "failed": ("⚠", "Failed"),
}


@register.filter
def whatsapp(text):
    """Untrusted message text -> safe HTML with WhatsApp formatting and safe links."""
    return format_whatsapp(text)


@register.filter
def media_icon(kind):
    return MEDIA_LABELS.get(kind, ("", ""))[0]


@register.filter
def media_display(f):
    """How a message's media file shows: "image" (thumbnail), "audio", "video" (players) or "file" (name,
    size, download or state). Decided by the type sniffed from the stored bytes, never the sender's."""
    from inbox.mediatypes import INLINE_TYPES, THUMBNAIL_TYPES

    if not f or getattr(f, "state", "") != "fetched":
        return "file"
    if f.kind in ("image", "sticker") and f.mimetype in THUMBNAIL_TYPES:
        return "image"
    if f.mimetype in INLINE_TYPES and f.kind in ("audio", "video") and f.mimetype.split("/")[0] == f.kind:
        return f.kind
    return "file"


@register.filter
def media_label(kind):
    return MEDIA_LABELS.get(kind, ("", kind))[1]


@register.filter
def tick_symbol(status):
    return TICKS.get(status, ("", ""))[0]


@register.filter
def tick_label(status):
    return TICKS.get(status, ("", status))[1]


@register.filter
def reaction_summary(reactions):
    """{reactor jid: emoji} -> [(emoji, count)], most used first; removed reactions ("") skipped."""
    if not isinstance(reactions, dict):
        return []
    return Counter(e for e in reactions.values() if e).most_common()


@register.filter
def sort_key(dt_and_pk):
    """A string that sorts like (timestamp, id): used by live.js to place rows and messages."""
    dt, pk = dt_and_pk
    return f"{int(dt.timestamp() * 1000):015d}-{pk:012d}"


@register.simple_tag
def message_sort(m):
    return sort_key((m.sent_at, m.pk))


@register.simple_tag
def conversation_sort(c):
    return sort_key((c.last_message_at, c.pk))


@register.filter
def short_time(dt):
    """Time today, weekday this week, date otherwise (in the site's time zone)."""
    if not dt:
        return ""
    local = timezone.localtime(dt)
    now = timezone.localtime()
    if local.date() == now.date():
        return local.strftime("%H:%M")
    if (now.date() - local.date()).days < 7:
        return local.strftime("%a")
    return local.strftime("%d %b %Y") if local.year != now.year else local.strftime("%d %b")


@register.filter
def day_label(dt):
    local = timezone.localtime(dt)
    today = timezone.localtime().date()
    if local.date() == today:
        return "Today"
    if (today - local.date()).days == 1:
        return "Yesterday"
    return local.strftime("%A, %d %B %Y")


@register.filter
def initials(name):
    parts = [p for p in str(name or "?").replace("+", "").split() if p]
    return "".join(p[0] for p in parts[:2]).upper() or "?"
