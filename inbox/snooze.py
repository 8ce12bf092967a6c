"""Snooze (issue 15): a conversation leaves "open" until a time, then comes back to open, live.

``do_snooze`` sets the status ``snoozed``, keeps the time in a ``Snooze`` row and, on commit, enqueues
``wake_snoozed_conversation_task`` with that ETA. Beat runs ``wake_due_snoozes_task`` every minute as the
safety net for an ETA task lost with its worker or its broker (the same shape as the journal's safety
net), so a snooze wakes at most about a minute late whatever happens to Celery. Waking re-checks under a
row lock, so the ETA task and the sweep cannot both publish, and a snooze moved later is not woken early.
An agent who sets another status by hand ends the snooze (the row is then only cleaned up). Integrations
hear each change as ``conversation.status`` (``inbox.integrations``): ``snoozed`` with ``until``, and ``open``
with ``woken_by`` (``time``, ``by_hand``, ``inbound_message``: the sync's batch records that one).

A new inbound message wakes it early: the sync's batch calls ``do_wake_for_inbound`` with the conversations
that got live inbound messages (one statement per batch, after the aggregates' UPDATE; history messages
never wake anything), and publishes the woken ones like a timed wake.

Locks, in this order everywhere: the conversation row, then its snooze row. The sync's batch holds the
conversation's lock from its aggregates UPDATE before it deletes the snooze; ``do_snooze`` and ``_wake``
lock the conversation first too, so none of them can wait on the other in a cycle.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time, timedelta

from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _

from inbox import integrations, statements
from inbox.models import Conversation, Snooze

logger = logging.getLogger(__name__)

MIN_SNOOZE = timedelta(minutes=1)
MAX_SNOOZE = timedelta(days=366)
MORNING = time(9, 0)
WAKE_BATCH = 500


class SnoozeRefused(ValueError):
    """A time the conversation cannot be snoozed until; the message is shown to the agent."""


def until_for_preset(preset: str, now: datetime | None = None) -> datetime:
    """A preset's time, in the active zone (the viewer's): in an hour, tomorrow 09:00, next Monday 09:00."""
    now = timezone.localtime(now or timezone.now())
    if preset == "in_1h":
        return now + timedelta(hours=1)
    zone = timezone.get_current_timezone()
    if preset == "tomorrow":
        day = now.date() + timedelta(days=1)
    elif preset == "next_week":
        day = now.date() + timedelta(days=7 - now.weekday())
    else:
        raise SnoozeRefused(_("Unknown snooze choice."))
    return datetime.combine(day, MORNING, tzinfo=zone)


def check_snooze(conversation, until: datetime, user) -> Snooze:
    now = timezone.now()
    if timezone.is_naive(until):
        until = timezone.make_aware(until)  # in the active zone: what the agent typed
    if until < now + MIN_SNOOZE:
        raise SnoozeRefused(_("Choose a time in the future."))
    if until > now + MAX_SNOOZE:
        raise SnoozeRefused(_("A conversation can be snoozed for a year at most."))
    return do_snooze(conversation, until, user)


def do_snooze(conversation, until: datetime, user=None) -> Snooze:
    from inbox import events
    from inbox.tasks import wake_snoozed_conversation_task

    with transaction.atomic():
        _lock_conversation(conversation.tenant_id, conversation.pk)
        snooze, _ = Snooze.objects.for_tenant(conversation.tenant_id).update_or_create(
            conversation_id=conversation.pk,
            defaults={"tenant_id": conversation.tenant_id, "until": until, "snoozed_by": user})
        Conversation.objects.for_tenant(conversation.tenant_id).filter(pk=conversation.pk).update(
            status=Conversation.Status.SNOOZED)
        conversation.status = Conversation.Status.SNOOZED
        events.publish_conversations_on_commit(conversation.tenant_id, [conversation.pk])
        _publish_bar(conversation.tenant_id, conversation.pk)
        integrations.record_events(conversation.tenant_id, [integrations.conversation_event(
            integrations.CONVERSATION_STATUS, conversation.pk, status=Conversation.Status.SNOOZED,
            until=until.astimezone(UTC).isoformat().replace("+00:00", "Z"))])  # UTC, as the API's times
        snooze_id = snooze.pk
        transaction.on_commit(lambda: wake_snoozed_conversation_task.apply_async((snooze_id,), eta=until))
    logger.info("inbox.snoozed", extra={"conversation_id": conversation.pk, "until": until.isoformat(),
                                        "user_id": getattr(user, "pk", None)})
    return snooze


def do_unsnooze(conversation, user=None) -> bool:
    """Open a snoozed conversation now (an agent's "Unsnooze")."""
    return _wake(conversation.tenant_id, conversation.pk, force=True, user=user)


def wake_snooze(snooze_id: int) -> bool:
    """The ETA task's body: wake this snooze if it is due (it may have been moved or cancelled)."""
    row = Snooze.objects.unscoped().filter(pk=snooze_id).values("tenant_id", "conversation_id").first()
    return bool(row) and _wake(row["tenant_id"], row["conversation_id"])


def wake_due_snoozes(now: datetime | None = None) -> int:
    """Beat's sweep: wake every snooze whose time has come (every tenant). Returns how many woke."""
    now = now or timezone.now()
    due = list(Snooze.objects.unscoped().filter(until__lte=now).order_by("until")
               .values_list("tenant_id", "conversation_id")[:WAKE_BATCH])
    return sum(_wake(tenant_id, conversation_id, now=now) for tenant_id, conversation_id in due)


def _wake(tenant_id, conversation_id, *, force=False, now=None, user=None) -> bool:
    from inbox import events

    now = now or timezone.now()
    with transaction.atomic():
        _lock_conversation(tenant_id, conversation_id)
        snooze = Snooze.objects.for_tenant(tenant_id).select_for_update().filter(conversation_id=conversation_id).first()
        if snooze is None or (not force and snooze.until > now):
            return False
        snooze.delete()
        woke = (Conversation.objects.for_tenant(tenant_id)
                .filter(pk=conversation_id, status=Conversation.Status.SNOOZED)
                .update(status=Conversation.Status.OPEN))
        if woke:
            events.publish_conversations_on_commit(tenant_id, [conversation_id])
            _publish_bar(tenant_id, conversation_id)
            integrations.record_events(tenant_id, [wake_event(conversation_id, "by_hand" if force else "time")])
    logger.info("inbox.snooze_woke", extra={"conversation_id": conversation_id, "reopened": bool(woke),
                                            "by_hand": force, "user_id": getattr(user, "pk", None)})
    return bool(woke)


def _lock_conversation(tenant_id: int, conversation_id: int) -> None:
    """The conversation's row lock, taken before its snooze's (the module's lock order)."""
    list(Conversation.objects.for_tenant(tenant_id).select_for_update().filter(pk=conversation_id).values_list("pk"))


def do_wake_for_inbound(tenant_id: int, conversation_ids) -> list[int]:
    """Open the snoozed ones among these conversations (each just got a live inbound message) and delete
    their snoozes; returns the woken ids. One statement whatever the number of conversations (PostgreSQL).
    Call inside the batch's transaction after its aggregates' UPDATE of these rows (the lock order above);
    publish with ``publish_woken_on_commit``."""
    ids = sorted(set(conversation_ids))
    if not ids:
        return []
    return statements.wake_snoozed(tenant_id, ids)


def wake_event(conversation_id: int, woken_by: str) -> integrations.Event:
    """``conversation.status`` (open) of a snooze that ended: ``time``, ``by_hand`` or ``inbound_message``."""
    return integrations.conversation_event(integrations.CONVERSATION_STATUS, conversation_id,
                                           status=Conversation.Status.OPEN, woken_by=woken_by)


def publish_woken_on_commit(tenant_id: int, conversation_ids) -> None:
    """Conversations an inbound message woke: their headers, list rows and snooze bars, on commit."""
    from inbox import events

    conversation_ids = sorted(set(conversation_ids))
    if not conversation_ids:
        return
    events.publish_conversations_on_commit(tenant_id, conversation_ids)
    for conversation_id in conversation_ids[:events.MAX_CONVERSATIONS_NOTIFIED]:
        _publish_bar(tenant_id, conversation_id)
    logger.info("inbox.snooze_woke", extra={"tenant_id": tenant_id, "conversation_ids": conversation_ids[:100],
                                            "reopened": True, "by": "inbound_message"})


def snooze_of(conversation) -> Snooze | None:
    """The conversation's snooze when it is snoozed (one query), else None without a query."""
    if conversation.status != Conversation.Status.SNOOZED:
        return None
    return Snooze.objects.for_tenant(conversation.tenant_id).filter(conversation_id=conversation.pk).first()


def render_snooze_bar(conversation, slug: str, snooze, *, oob: bool = False) -> str:
    return render_to_string("inbox/partials/snooze_bar.html",
                            {"conversation": conversation, "slug": slug, "snooze": snooze, "oob": oob})


def _publish_bar(tenant_id: int, conversation_id: int) -> None:
    from inbox import events

    def build():
        from inbox.models import Tenant

        conversation = Conversation.objects.for_tenant(tenant_id).filter(pk=conversation_id).first()
        if conversation is None:
            return []
        slug = Tenant.objects.values_list("slug", flat=True).get(pk=tenant_id)
        return [(events.conversation_group(conversation_id),
                 render_snooze_bar(conversation, slug, snooze_of(conversation), oob=True))]

    events.publish_on_commit("snooze", build)
