"""The outbox: queued outbound Message rows, sent by the runner that holds their connection.

"Never sent twice": a row is claimed (status ``sending``, send_attempts + 1) and COMMITTED before the
transport is called. If the process dies between the send and ``do_mark_sent``, the row is found in
``sending`` when the session connects again (``interrupted_sends``, called by the child's
``recover_sends``): a transport that can tell (the simulator remembers what it sent) completes it
without sending again; one that cannot (neonize: WhatsApp does not let us choose the message id)
marks it ``failed`` with an explanation instead of risking a duplicate. An agent can resend it by hand.
See docs/runner.md.

Order per conversation: only the oldest unsent message of a conversation is claimed, and not while an
earlier one of the same conversation is sending or waiting for its retry.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from config.backoff import backoff
from inbox import integrations
from inbox.events import publish_messages_on_commit
from inbox.models import Message
from sync.operations import apply_pending_operations

logger = logging.getLogger(__name__)
Status = Message.Status
INTERRUPTED = "the runner stopped while sending; WhatsApp cannot tell whether it arrived, so it is not resent automatically"


def retry_delay(attempt: int) -> timedelta:
    """After the ``attempt``-th failed send: the reconnect base doubling per attempt, at most 5 minutes."""
    return timedelta(seconds=backoff(attempt + 1, base=settings.RUNNER_BACKOFF_BASE_SECONDS, cap=300.0))


def due_sends(connection) -> QuerySet:
    """Queued rows of ``connection`` (an id or an ``OuterRef``) whose send may be tried now (never tried, or
    their retry time came): ``claim_outbound`` claims nothing for a connection that has none."""
    return (Message.objects.unscoped()
            .filter(connection_id=connection, direction=Message.Direction.OUTBOUND, status=Status.QUEUED)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=timezone.now())))


def claim_outbound(connection_id: int, limit: int = 20) -> list[Message]:
    """Claim the next sendable message of each conversation (status -> sending, committed)."""
    now = timezone.now()
    with transaction.atomic():
        pending = list(
            Message.objects.unscoped()
            .filter(connection_id=connection_id, direction=Message.Direction.OUTBOUND,
                    status__in=[Status.QUEUED, Status.SENDING])
            .order_by("conversation_id", "sent_at", "id")
            .select_for_update(of=("self",))
            .select_related("conversation", "connection")
        )
        first_per_conv = {}
        for m in pending:
            first_per_conv.setdefault(m.conversation_id, m)
        ready = [m for m in first_per_conv.values()
                 if m.status == Status.QUEUED and (m.next_attempt_at is None or m.next_attempt_at <= now)]
        ready.sort(key=lambda m: (m.sent_at, m.id))
        ready = ready[:limit]
        if not ready:
            return []
        Message.objects.unscoped().filter(pk__in=[m.pk for m in ready], status=Status.QUEUED).update(
            status=Status.SENDING, send_attempts=F("send_attempts") + 1, updated_at=now)
        for m in ready:
            m.status = Status.SENDING
            m.send_attempts += 1
        tenant_ids = {m.tenant_id for m in ready}
        for tenant_id in tenant_ids:
            mine = [m for m in ready if m.tenant_id == tenant_id]
            publish_messages_on_commit(tenant_id, sorted({m.conversation_id for m in mine}), [m.pk for m in mine])
    return ready


def do_mark_sent(message: Message, external_id: str, sent_at) -> bool:
    """Store WhatsApp's id and timestamp; False if the row was no longer ours to complete.

    A receipt (or reaction, edit, ...) for ``external_id`` can reach the journal before this commit
    (the phone answers fast; the worker may process it first): ingestion keeps it as a
    PendingOperation because no message had that id yet. It is applied here, in the same
    transaction, so the message never shows ``sent`` after it was delivered. (A receipt whose
    processing commits concurrently with this transaction is left to the journal safety net.)
    """
    with transaction.atomic():
        updated = Message.objects.unscoped().filter(pk=message.pk, status=Status.SENDING).update(
            status=Status.SENT, external_id=external_id, sent_at=sent_at, error="", next_attempt_at=None,
            updated_at=timezone.now())
        applied = 0
        if updated:
            publish_messages_on_commit(message.tenant_id, [message.conversation_id], [message.pk])
            integrations.record_events(message.tenant_id, [integrations.message_event(
                integrations.MESSAGE_SENT, message.pk, message.conversation_id, status=Status.SENT)])
            applied = apply_pending_operations(message.connection, [external_id])
    if updated:
        logger.info("outbox.sent", extra={"message_id": message.pk, "connection_id": message.connection_id,
                                          "external_id": external_id, "pending_applied": applied})
    return bool(updated)


def do_record_send_failure(message: Message, error: str, *, retryable: bool = True) -> str:
    """Back to ``queued`` with a retry time, or ``failed`` with the error after OUTBOX_MAX_ATTEMPTS."""
    now = timezone.now()
    give_up = not retryable or message.send_attempts >= settings.OUTBOX_MAX_ATTEMPTS
    fields = {"error": error[:2000], "updated_at": now}
    if give_up:
        fields.update(status=Status.FAILED, next_attempt_at=None)
    else:
        fields.update(status=Status.QUEUED, next_attempt_at=now + retry_delay(message.send_attempts))
    with transaction.atomic():
        updated = Message.objects.unscoped().filter(pk=message.pk, status=Status.SENDING).update(**fields)
        publish_messages_on_commit(message.tenant_id, [message.conversation_id], [message.pk])
        if updated and give_up:
            integrations.record_events(message.tenant_id, [integrations.message_event(
                integrations.MESSAGE_STATUS, message.pk, message.conversation_id, status=Status.FAILED,
                error=error[:300])])
    logger.warning("outbox.send_failed", extra={"message_id": message.pk, "connection_id": message.connection_id,
                                                "attempt": message.send_attempts, "gave_up": give_up, "error": error})
    return fields["status"]


def interrupted_sends(connection_id: int) -> list[Message]:
    """Rows left in ``sending`` by a process that died (call only while holding the connection's lease)."""
    return list(Message.objects.unscoped().filter(connection_id=connection_id, direction=Message.Direction.OUTBOUND,
                                                  status=Status.SENDING).select_related("conversation", "connection"))
