"""Presentation helpers for message and conversation templates. No queries, no business rules."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, tzinfo
from functools import lru_cache
from typing import NamedTuple

from django import template
from django.utils import dateformat, timezone
from django.utils.safestring import mark_safe
from django.utils.translation import get_language, gettext_lazy
from django.utils.translation import gettext as _

from inbox.formatting import format_whatsapp

register = template.Library()

MEDIA_LABELS = {
    "image": ("🖼", gettext_lazy("Photo")),
    "video": ("🎞", gettext_lazy("Video")),
    "audio": ("🎤", gettext_lazy("Audio")),
    "document": ("📄", gettext_lazy("Document")),
    "sticker": ("🏷", gettext_lazy("Sticker")),
    "contact": ("👤", gettext_lazy("Contact card")),
    "location": ("📍", gettext_lazy("Location")),
    "unsupported": ("❔", gettext_lazy("Unsupported message")),
    "system": ("ℹ", gettext_lazy("System message")),
}

TICKS = {
    "queued": ("🕓", gettext_lazy("Queued: waiting for the number to send it")),
    "sending": ("🕓", gettext_lazy("Sending")),
    "sent": ("✓", gettext_lazy("Sent")),
    "delivered": ("✓✓", gettext_lazy("Delivered")),
    "read": ("✓✓", gettext_lazy("Read")),
    "played": ("✓✓", gettext_lazy("Played")),
    "failed": ("⚠", gettext_lazy("Failed")),
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
    return str(MEDIA_LABELS.get(kind, ("", kind))[1])


@register.filter
def tick_symbol(status):
    return TICKS.get(status, ("", ""))[0]


@register.filter
def tick_label(status):
    return str(TICKS.get(status, ("", status))[1])


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
def conversation_rows_html(rows, conversation=None):
    """The conversation list's rows (``inbox.rows.rows_html``): the same bytes as their pushed copies; the open
    ``conversation``'s row marked active."""
    from inbox.rows import rows_html

    return mark_safe(rows_html(rows, active_pk=getattr(conversation, "pk", None)))  # noqa: S308 - escaped there


@register.simple_tag
def message_bubble(m, is_group, live=False):
    """A message of a thread (``inbox.bubbles``): the same bytes as its pushed copy."""
    from inbox.bubbles import BubbleMessage
    from inbox.bubbles import message_bubble as bubble

    return bubble(BubbleMessage.of(m, bool(is_group)), live=live)


@register.filter
def short_time(dt):
    """Time today, weekday this week, date otherwise, in the active time zone (inbox.timezones)."""
    if not dt:
        return ""
    return short_time_at(dt, timezone.now())


def short_time_at(dt, now) -> str:
    return short_time_local(timezone.localtime(dt), timezone.localtime(now).date())


def short_time_local(local, today) -> str:
    """``short_time`` of a datetime already in the viewer's zone, ``today`` being that zone's date."""
    if local.date() == today:
        return f"{local.hour:02d}:{local.minute:02d}"  # dateformat's "H:i", without parsing the format each time
    if (today - local.date()).days < 7:
        return dateformat.format(local, "D")
    return dateformat.format(local, "d M Y" if local.year != today.year else "d M")


@register.filter
def day_label(dt):
    """The day separator's label in the active time zone: "Today", "Yesterday" or the date."""
    return day_label_at(dt, timezone.now())


def day_label_at(dt, now) -> str:
    return day_label_local(timezone.localtime(dt), timezone.localtime(now).date())


def day_label_local(local, today) -> str:
    """``day_label`` of a datetime already in the viewer's zone (or of its date), ``today`` being that
    zone's date."""
    day = local.date() if isinstance(local, datetime) else local
    if day == today:
        return _("Today")
    if (today - day).days == 1:
        return _("Yesterday")
    # Translators: a PHP-style date format (Django's "date" filter); month and weekday names are translated.
    return dateformat.format(local, _("l, d F Y"))


class Stamp:
    """A thread item's time as the thread prints it, in the active zone and language (or ``clock``'s)."""

    __slots__ = ("local", "day", "iso", "hm", "clock")

    def __init__(self, local, clock: Clock | None = None):
        self.local = local
        self.day = f"{local.year:04d}-{local.month:02d}-{local.day:02d}"  # data-day, the day separators
        self.iso = local.isoformat()  # <time datetime>
        self.hm = f"{local.hour:02d}:{local.minute:02d}"
        self.clock = clock

    @property
    def day_label(self) -> str:
        """"Today", "Yesterday" or the date (``day_label``); one per day and language, not per message."""
        clock = self.clock or Clock.now()
        return _day_label(self.local.date(), clock.today, clock.language)


class Clock(NamedTuple):
    """The active zone, today's date in it and the active language, read once for a batch of bubbles: read per
    message (Django's thread-and-task-local lookups) they were ~half of a pushed bubble's rendering
    (bench/flood.py, docs/measurements.md)."""

    zone: tzinfo
    today: date
    language: str

    @classmethod
    def now(cls) -> Clock:
        zone = timezone.get_current_timezone()
        return cls(zone, timezone.now().astimezone(zone).date(), get_language())

    def stamp(self, dt) -> Stamp:
        """``stamp(dt)`` in this clock's zone and language."""
        return Stamp(dt.astimezone(self.zone), self)


@lru_cache(maxsize=512)
def _day_label(day, today, language) -> str:  # the language: the label is translated in the active one
    return day_label_local(day, today)


@register.filter
def stamp(dt):
    """``dt`` converted once for all the places a message or note prints it: Django's date and time
    filters each convert the zone and read the language's formats again (five of them per message)."""
    return Stamp(timezone.localtime(dt))


@register.filter
def initials(name):
    parts = [p for p in str(name or "?").replace("+", "").split() if p]
    return "".join(p[0] for p in parts[:2]).upper() or "?"


@register.simple_tag
def attachment_limits() -> str:
    """The reply box's size limits per kind, as JSON for static/inbox/live.js (``data-limits``): it refuses a
    file over its kind's limit before uploading it. The server checks again from the file's bytes."""
    import json

    from django.conf import settings

    from inbox.media import kind_label

    return json.dumps({kind: {"bytes": int(limit), "label": kind_label(kind)}
                       for kind, limit in settings.MEDIA_MAX_BYTES.items()})
