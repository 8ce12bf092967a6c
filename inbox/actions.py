"""Writes of the inbox core. ``do_*`` change state and validate nothing; ``check_*`` validate first.

Side effects (live events, tasks, runner nudges) are scheduled on commit from here, never from views.
"""

import logging

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from connections.protocol import Nudge
from inbox import integrations
from inbox.models import Contact, ContactIdentity, Conversation

logger = logging.getLogger(__name__)


def get_or_create_conversation(connection, chat_jid: str, contact: Contact, *, is_group: bool = False) -> Conversation:
    """The conversation for (connection, chat_jid), created if missing; safe under concurrency.

    Two callers racing on the same chat both get the one row: the loser's INSERT hits the unique
    constraint inside a savepoint and it reads the winner's row instead. Never looks up by contact.
    """
    existing = Conversation.objects.for_tenant(connection.tenant_id).filter(connection=connection, chat_jid=chat_jid).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return Conversation.objects.create(
                tenant_id=connection.tenant_id,
                connection=connection,
                chat_jid=chat_jid,
                contact=contact,
                is_group=is_group,
            )
    except IntegrityError:
        return Conversation.objects.for_tenant(connection.tenant_id).get(connection=connection, chat_jid=chat_jid)


_KIND_OF_SERVER = {
    "s.whatsapp.net": ContactIdentity.Kind.PN,
    "c.us": ContactIdentity.Kind.PN,
    "lid": ContactIdentity.Kind.LID,
    "g.us": ContactIdentity.Kind.GROUP,
}


def identity_kind_for_jid(jid: str) -> str:
    """What kind of identity a JID is, by its server: a phone number, a LID, a group, or other. The one
    place this is decided (the sync's bulk inserts call it too)."""
    return _KIND_OF_SERVER.get(jid.rpartition("@")[2], ContactIdentity.Kind.OTHER)


def get_or_create_contact_for_jid(tenant, jid: str, **defaults) -> Contact:
    """The contact owning this JID in the tenant, created with one identity if missing; race-safe."""
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    identity = ContactIdentity.objects.for_tenant(tenant_id).select_related("contact").filter(jid=jid).first()
    if identity is not None:
        return identity.contact
    kind = identity_kind_for_jid(jid)
    try:
        with transaction.atomic():
            contact = Contact.objects.create(
                tenant_id=tenant_id,
                kind=Contact.Kind.GROUP if kind == ContactIdentity.Kind.GROUP else Contact.Kind.PERSON,
                **defaults,
            )
            ContactIdentity.objects.create(tenant_id=tenant_id, contact=contact, jid=jid, kind=kind)
            return contact
    except IntegrityError:
        return ContactIdentity.objects.for_tenant(tenant_id).select_related("contact").get(jid=jid).contact


# --- Inbox work: replies, assignment, status, read state, older history (issue 5) -------------------

MAX_REPLY_LENGTH = 4096


class ReplyRefused(ValueError):
    """A reply that cannot be queued; the message is shown back to the agent in the form."""


def _nudge_on_commit(connection_id: int, action: str, **payload) -> None:
    from connections.nudge import nudge_on_commit

    nudge_on_commit(connection_id, action, **payload)


def check_writable(conversation) -> None:
    """A conversation of an archived (deleted) number is read-only (inbox.deletion): nothing more is sent."""
    from django.utils.translation import gettext as _

    if conversation.connection.archived_at is not None:
        raise ReplyRefused(_("This conversation's number was deleted; its history is read-only."))


def check_queue_reply(conversation, user, body: str):
    """Validate an agent's reply, then queue it. Raises ReplyRefused with a message for the form."""
    check_writable(conversation)
    text = (body or "").replace("\r\n", "\n").strip()
    if not text:
        raise ReplyRefused(_("Type a message before sending."))
    if len(text) > MAX_REPLY_LENGTH:
        raise ReplyRefused(_("The reply is %(length)d characters long; WhatsApp accepts at most %(max)d.")
                           % {"length": len(text), "max": MAX_REPLY_LENGTH})
    return do_queue_reply(conversation, user, text)


def do_queue_reply(conversation, user, body: str):
    """Write an outbound reply into the outbox (status=queued) in the caller's transaction.

    The runner holding the connection sends it (nudged on commit) and records WhatsApp's id.
    """
    from uuid import uuid4

    from django.utils import timezone

    from inbox import events
    from inbox.formatting import message_preview
    from inbox.models import Message
    from inbox.search import index_messages

    now = timezone.now()
    with transaction.atomic():
        message = Message.objects.create(
            tenant_id=conversation.tenant_id,
            conversation=conversation,
            connection_id=conversation.connection_id,
            external_id=f"local-{uuid4().hex}",
            direction=Message.Direction.OUTBOUND,
            status=Message.Status.QUEUED,
            type=Message.Type.TEXT,
            body=body,
            sender_user=user,
            sent_at=now,
        )
        index_messages([message.pk])  # searchable at once (inbox.search)
        preview = message_preview(body)
        Conversation.objects.for_tenant(conversation.tenant_id).filter(pk=conversation.pk).update(
            last_message_at=now, last_message_preview=preview, updated_at=now)
        conversation.last_message_at, conversation.last_message_preview = now, preview
        events.publish_messages_on_commit(conversation.tenant_id, [conversation.pk], [message.pk])
        _nudge_on_commit(conversation.connection_id, Nudge.SEND, message_id=message.pk)
    logger.info("inbox.reply_queued", extra={"conversation_id": conversation.pk, "message_id": message.pk,
                                              "user_id": getattr(user, "pk", None)})
    return message


class ResendRefused(ValueError):
    """Only an outbound reply that failed can be sent again."""


def check_resend_message(message, user):
    from inbox.models import Message

    if message.direction != Message.Direction.OUTBOUND or message.status != Message.Status.FAILED:
        raise ResendRefused(_("Only a reply that failed to send can be sent again."))
    return do_resend_message(message, user)


def do_resend_message(message, user):
    """Put a failed reply back in the outbox (same row, attempts reset); the runner sends it on the nudge.

    Resending is a person's decision: a send interrupted by a crash may have reached WhatsApp (see
    docs/runner.md, "never sent twice"), which is why the runner never does this by itself.
    """
    from inbox import events
    from inbox.models import Message

    with transaction.atomic():
        Message.objects.for_tenant(message.tenant_id).filter(pk=message.pk).update(
            status=Message.Status.QUEUED, send_attempts=0, next_attempt_at=None, error="")
        message.refresh_from_db()
        events.publish_messages_on_commit(message.tenant_id, [message.conversation_id], [message.pk])
        _nudge_on_commit(message.connection_id, Nudge.SEND, message_id=message.pk)
    logger.info("inbox.reply_resent", extra={"message_id": message.pk, "user_id": getattr(user, "pk", None)})
    return message


class AssignRefused(ValueError):
    """The chosen assignee is not a member of the conversation's tenant."""


def check_assign_conversation(conversation, assignee_id, *, acting_user):
    """Assign to ``acting_user`` ("me"), to a member of the tenant (an id), or unassign (None / "")."""
    from inbox.selectors import tenant_member

    if assignee_id == "me":
        assignee = acting_user
    elif assignee_id in (None, ""):
        assignee = None
    else:
        assignee = tenant_member(conversation.tenant_id, int(assignee_id))
        if assignee is None:
            raise AssignRefused(_("That user is not a member of this team."))
    return do_assign_conversation(conversation, assignee, acting_user=acting_user)


def do_assign_conversation(conversation, assignee, *, acting_user=None):
    """Assign (or, with assignee=None, unassign). The caller has checked the assignee is a member."""
    from inbox import events

    with transaction.atomic():
        Conversation.objects.for_tenant(conversation.tenant_id).filter(pk=conversation.pk).update(assignee=assignee)
        conversation.assignee = assignee
        events.publish_conversations_on_commit(conversation.tenant_id, [conversation.pk])
        integrations.record_events(conversation.tenant_id, [integrations.conversation_event(
            integrations.CONVERSATION_ASSIGNED, conversation.pk, assignee_id=getattr(assignee, "pk", None))])
    logger.info("inbox.assigned", extra={"conversation_id": conversation.pk, "assignee_id": getattr(assignee, "pk", None),
                                          "user_id": getattr(acting_user, "pk", None)})
    return conversation


def do_set_conversation_status(conversation, status: str, *, acting_user=None):
    from inbox import events

    with transaction.atomic():
        Conversation.objects.for_tenant(conversation.tenant_id).filter(pk=conversation.pk).update(status=status)
        conversation.status = status
        events.publish_conversations_on_commit(conversation.tenant_id, [conversation.pk])
        integrations.record_events(conversation.tenant_id, [integrations.conversation_event(
            integrations.CONVERSATION_STATUS, conversation.pk, status=status)])
    logger.info("inbox.status_changed", extra={"conversation_id": conversation.pk, "status": status,
                                                "user_id": getattr(acting_user, "pk", None)})
    return conversation


def do_mark_conversation_read(conversation) -> int:
    """Zero the unread count and, on commit, ask the runner to send read receipts.

    Receipts name the unread inbound messages (the newest ``unread_count`` of them), one nudge per
    sender (group receipts are per participant). Returns how many messages were unread.
    """
    from inbox import events
    from inbox.models import Message

    with transaction.atomic():
        row = (Conversation.objects.for_tenant(conversation.tenant_id).select_for_update().filter(pk=conversation.pk)
               .values("unread_count").first())
        unread = row["unread_count"] if row else 0
        if not unread:
            conversation.unread_count = 0
            return 0
        Conversation.objects.for_tenant(conversation.tenant_id).filter(pk=conversation.pk).update(unread_count=0)
        conversation.unread_count = 0
        latest = list(
            Message.objects.for_tenant(conversation.tenant_id)
            .filter(conversation_id=conversation.pk, direction=Message.Direction.INBOUND)
            .order_by("-sent_at", "-id")
            .values_list("external_id", "sender_jid")[:unread]
        )
        by_sender: dict[str, list[str]] = {}
        for external_id, sender_jid in latest:
            by_sender.setdefault(sender_jid or conversation.chat_jid, []).append(external_id)
        for sender_jid, ids in by_sender.items():
            _nudge_on_commit(conversation.connection_id, Nudge.MARK_READ, chat_jid=conversation.chat_jid,
                             message_ids=ids, sender_jid=sender_jid)
        events.publish_conversations_on_commit(conversation.tenant_id, [conversation.pk])
    return unread


def do_request_older_history(conversation, before) -> None:
    """Ask the runner to fetch history older than ``before`` from the phone (arrives via the journal)."""
    with transaction.atomic():
        _nudge_on_commit(conversation.connection_id, Nudge.REQUEST_HISTORY, conversation_id=conversation.pk,
                         chat_jid=conversation.chat_jid, before=before.isoformat() if before else None)
    logger.info("inbox.history_requested", extra={"conversation_id": conversation.pk})


def do_acknowledge_alert(alert, user) -> None:
    from django.utils import timezone

    from inbox.models import Alert

    Alert.objects.unscoped().filter(pk=alert.pk, acknowledged_at__isnull=True).update(acknowledged_at=timezone.now(),
                                                                          acknowledged_by=user)
    logger.info("inbox.alert_acknowledged", extra={"alert_id": alert.pk, "user_id": user.pk})


# --- Access: memberships and accounts (open sockets follow, inbox.consumers) -----------------------


def do_save_membership(membership, *, previous_user_id=None):
    """Create or change a membership (role, or even its user); every socket of the users concerned
    re-checks its access on commit (a demoted admin's socket must leave the numbers page's group)."""
    from inbox import events

    with transaction.atomic():
        membership.save()
        events.publish_access_changed_on_commit([membership.user_id, previous_user_id])
    logger.info("inbox.membership_saved", extra={"membership_id": membership.pk, "user_id": membership.user_id,
                                                  "tenant_id": membership.tenant_id, "role": membership.role})
    return membership


def do_remove_memberships(memberships) -> int:
    """Delete these memberships (a queryset or a list); the users' sockets in those tenants close on commit."""
    from inbox import events
    from inbox.models import Membership

    pks = [m.pk for m in memberships]
    with transaction.atomic():
        rows = list(Membership.objects.filter(pk__in=pks).values_list("user_id", "tenant_id"))
        Membership.objects.filter(pk__in=pks).delete()
        events.publish_access_changed_on_commit([user_id for user_id, _ in rows])
    logger.info("inbox.memberships_removed", extra={"count": len(rows), "pairs": rows[:50]})
    return len(rows)


def do_notify_access_changed(user_ids) -> None:
    """Tell these users' open sockets to re-check their access on commit: for changes made elsewhere
    (a logout, an account deactivated or deleted, a password set, a tenant deleted with its members)."""
    from inbox import events

    events.publish_access_changed_on_commit(user_ids)
