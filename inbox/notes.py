"""Private notes between agents inside a thread, and the @mentions that notify (issue 15).

A note is never a Message: nothing that sends, syncs, counts or exports messages sees it. Writes here
follow inbox.actions (``check_*`` validates, ``do_*`` writes and schedules side effects on commit); the
reads that merge notes into a thread page are here too, so the thread's selector stays untouched.

Mentions: ``@username`` of a member of the tenant (case-insensitive; the author is not notified of their
own mention). Each is a ``NoteMention`` row, unread until the member opens it from the mentions page;
on commit the member's open pages get their unread count (``#mentions-badge``, over their user group)
and a Celery task e-mails them through Django's mail backend.
"""

from __future__ import annotations

import logging
import re

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from inbox.languages import recipient_language
from inbox.models import Note, NoteMention

logger = logging.getLogger(__name__)

MAX_NOTE_LENGTH = 4096
MAX_MENTIONS = 20
NOTES_PER_PAGE = 200  # notes merged into one page of a thread, at most
# "@ana", "@ana.silva", "@ops+1" (Django's username characters), not the "@" of an e-mail address.
MENTION_RE = re.compile(r"(?<![\w@.+-])@([\w.@+-]*[\w+-])")


class NoteRefused(ValueError):
    """A note that cannot be added; the message is shown back in the form."""


def mentioned_names(body: str) -> list[str]:
    seen: dict[str, None] = {}
    for name in MENTION_RE.findall(body or ""):
        seen.setdefault(name.lower())
    return list(seen)[:MAX_MENTIONS]


def mentioned_members(tenant_id: int, body: str) -> list:
    """The tenant's members named with @username in ``body`` (one query; none if nobody is named)."""
    names = mentioned_names(body)
    if not names:
        return []
    by_name = Q()
    for name in names:
        by_name |= Q(username__iexact=name)
    return list(get_user_model().objects.filter(by_name, memberships__tenant_id=tenant_id).distinct())


def check_add_note(conversation, author, body: str) -> Note:
    text = (body or "").replace("\r\n", "\n").strip()
    if not text:
        raise NoteRefused(_("Write the note before adding it."))
    if len(text) > MAX_NOTE_LENGTH:
        raise NoteRefused(_("The note is %(length)d characters long; notes hold at most %(max)d.")
                          % {"length": len(text), "max": MAX_NOTE_LENGTH})
    if "\x00" in text:
        raise NoteRefused(_("The note contains a character that cannot be stored."))
    return do_add_note(conversation, author, text)


def do_add_note(conversation, author, body: str) -> Note:
    """Write a note and its mentions; on commit the thread's viewers get it, the mentioned get notified."""
    from inbox import events

    with transaction.atomic():
        note = Note.objects.create(tenant_id=conversation.tenant_id, conversation_id=conversation.pk,
                                   author=author, body=body)
        members = [u for u in mentioned_members(conversation.tenant_id, body) if u.pk != getattr(author, "pk", None)]
        NoteMention.objects.bulk_create([NoteMention(tenant_id=note.tenant_id, note=note, user=u) for u in members])
        tenant_id, conversation_id, user_ids = note.tenant_id, conversation.pk, [u.pk for u in members]
        events.publish_on_commit("note", lambda: _note_sends(tenant_id, conversation_id, note.pk, user_ids))
        if user_ids:
            from inbox.tasks import send_mention_emails_task

            transaction.on_commit(lambda: send_mention_emails_task.delay(note.pk))
    logger.info("inbox.note_added", extra={"note_id": note.pk, "conversation_id": conversation.pk,
                                           "mentions": len(members), "user_id": getattr(author, "pk", None)})
    return note


def do_mark_mentions_read(tenant, user, mention_ids=None) -> int:
    """Mark this user's unread mentions in the tenant read (all, or these ids); their badges follow."""
    from inbox import events

    with transaction.atomic():
        qs = NoteMention.objects.for_tenant(tenant).filter(user=user, read_at__isnull=True)
        if mention_ids is not None:
            qs = qs.filter(pk__in=list(mention_ids))
        count = qs.update(read_at=timezone.now())
        tenant_id = tenant if isinstance(tenant, int) else tenant.pk
        events.publish_on_commit("mentions", lambda: _badge_sends(tenant_id, [user.pk]))
    return count


# --- reads -------------------------------------------------------------------------------------------


def thread_with_notes(conversation, page, before_at=None) -> list:
    """A thread page's messages (oldest first) with the notes written in the window they cover, in time
    order (one query). The window starts at the page's oldest message (or at the beginning when no older
    page exists) and ends before the cursor the page was read ``before_at`` (or now)."""
    qs = Note.objects.for_tenant(conversation.tenant_id).filter(conversation_id=conversation.pk).select_related("author")
    items = list(page.items)
    if items and not page.extra.get("exhausted", True):
        qs = qs.filter(created_at__gte=items[0].sent_at)
    if before_at is not None:
        qs = qs.filter(created_at__lt=before_at)
    notes = list(qs.order_by("-created_at", "-id")[:NOTES_PER_PAGE])
    if not notes:
        return items
    return sorted(items + notes, key=lambda item: (item.sent_at, item.pk))


def access_mention(tenant, user, mention_id) -> NoteMention:
    """One of this user's mentions in this tenant, else 404 (another's is the same 404 as none)."""
    from django.http import Http404

    mention = (NoteMention.objects.for_tenant(tenant).select_related("note").filter(pk=mention_id, user=user).first())
    if mention is None:
        raise Http404
    return mention


def unread_mention_count(tenant, user) -> int:
    return NoteMention.objects.for_tenant(tenant).filter(user=user, read_at__isnull=True).count()


def recent_mentions(tenant, user, limit: int = 50) -> list[NoteMention]:
    """The user's mentions in this tenant, unread first, newest first (one query)."""
    return list(NoteMention.objects.for_tenant(tenant).filter(user=user)
                .select_related("note__author", "note__conversation__contact")
                .order_by(F("read_at").asc(nulls_first=True), "-created_at")[:limit])


# --- rendering and live pushes -----------------------------------------------------------------------


def render_note(note, *, live: bool = False) -> str:
    return render_to_string("inbox/partials/note.html", {"n": note, "live": live})


def render_mentions_badge(slug: str, count: int, *, oob: bool = False) -> str:
    return render_to_string("inbox/partials/mentions_badge.html", {"slug": slug, "count": count, "oob": oob})


def _note_sends(tenant_id, conversation_id, note_id, user_ids):
    from inbox import events

    note = Note.objects.for_tenant(tenant_id).select_related("author").filter(pk=note_id).first()
    sends = [(events.conversation_group(conversation_id), render_note(note, live=True))] if note else []
    return sends + _badge_sends(tenant_id, user_ids)


def _badge_sends(tenant_id, user_ids):
    """Each user's unread count, to their open pages (their user group: every tenant's pages of theirs;
    the badge's id names the tenant, so another tenant's page has no element to swap)."""
    from inbox import events
    from inbox.models import Tenant

    if not user_ids:
        return []
    slug = Tenant.objects.values_list("slug", flat=True).get(pk=tenant_id)
    counts = dict.fromkeys(user_ids, 0)
    rows = (NoteMention.objects.for_tenant(tenant_id).filter(user_id__in=user_ids, read_at__isnull=True)
            .values_list("user_id", flat=True))
    for user_id in rows:
        counts[user_id] += 1
    return [(events.user_group(u), render_mentions_badge(slug, n, oob=True)) for u, n in counts.items()]


def send_mention_emails(note_id: int) -> int:
    """E-mail each member mentioned in the note (once; those with an address), each in their own language.
    Returns how many were sent."""
    from django.urls import reverse

    note = Note.objects.unscoped().select_related("author", "conversation__contact", "tenant").filter(pk=note_id).first()
    if note is None:
        return 0
    mentions = list(NoteMention.objects.for_tenant(note.tenant_id).filter(note_id=note.pk, emailed_at__isnull=True)
                    .select_related("user__inbox_profile"))
    sent = 0
    path = reverse("conversation", args=[note.tenant.slug, note.conversation_id])
    for mention in mentions:
        if not mention.user.email or not mention.user.is_active:
            continue
        with translation.override(recipient_language(mention.user)):
            sent += _send_mention_email(note, mention.user.email, settings.SITE_URL.rstrip("/") + path)
        NoteMention.objects.for_tenant(note.tenant_id).filter(pk=mention.pk).update(emailed_at=timezone.now())
    logger.info("inbox.mentions_emailed", extra={"note_id": note.pk, "sent": sent})
    return sent


def _send_mention_email(note, address: str, url: str) -> int:
    """One mention e-mail, in the active language."""
    author = note.author.get_username() if note.author else _("Someone")
    subject = _("[Inbox] %(author)s mentioned you: %(contact)s") % {
        "author": author, "contact": note.conversation.contact.name}
    body = _("%(author)s mentioned you in a private note on the conversation with %(contact)s (%(tenant)s):"
             "\n\n%(body)s\n\nOpen it: %(path)s\n") % {
        "author": author, "contact": note.conversation.contact.name, "tenant": note.tenant.name,
        "body": note.body, "path": url}
    return send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [address], fail_silently=False)
