from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from inbox.tenancy import TenantOwned


class Conversation(TenantOwned):
    """One chat on one linked number: unique per (connection, chat_jid), never looked up by contact alone.

    ``chat_jid`` is the canonical JID of the chat: the contact's phone-number JID for a 1:1 chat when
    it is known (its LID otherwise), the group JID for a group.
    """

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        PENDING = "pending", _("Pending")
        RESOLVED = "resolved", _("Resolved")
        SNOOZED = "snoozed", _("Snoozed")  # until a time, then open again (inbox.snooze)

    # No index of their own for these three foreign keys: each begins one the table has anyway (tenant:
    # ``conv_inbox_all``; connection: the unique (connection, chat_jid); contact: ``conv_contact``). A live
    # message updates its conversation's row, and with ``last_message_at`` indexed that update is never HOT:
    # every index of the table takes a new entry each time (docs/measurements.md).
    tenant = models.ForeignKey("inbox.Tenant", on_delete=models.CASCADE, related_name="+", verbose_name=_("tenant"),
                               db_index=False)
    connection = models.ForeignKey("connections.Connection", on_delete=models.CASCADE, related_name="conversations",
                                   verbose_name=_("connection"), db_index=False)
    contact = models.ForeignKey("inbox.Contact", on_delete=models.PROTECT, related_name="conversations",
                                verbose_name=_("contact"), db_index=False)
    chat_jid = models.CharField(max_length=128, verbose_name=_("chat jid"))
    is_group = models.BooleanField(default=False, verbose_name=_("is group"))
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN, verbose_name=_("status"))
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    , verbose_name=_("assignee"))
    # Denormalised for the inbox list, kept by the actions that write messages.
    # Never null (creation time until the first message) so the inbox keyset needs no NULLS LAST.
    last_message_at = models.DateTimeField(default=timezone.now, verbose_name=_("last message at"))
    last_message_preview = models.CharField(max_length=200, blank=True, verbose_name=_("last message preview"))
    unread_count = models.PositiveIntegerField(default=0, verbose_name=_("unread count"))
    # The synced window, for incremental catch-up and "load older".
    oldest_synced_at = models.DateTimeField(null=True, blank=True, verbose_name=_("oldest synced at"))
    newest_synced_at = models.DateTimeField(null=True, blank=True, verbose_name=_("newest synced at"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")
        constraints = [
            models.UniqueConstraint(fields=["connection", "chat_jid"], name="conversation_unique_connection_chat"),
            models.CheckConstraint(condition=~Q(chat_jid=""), name="conversation_chat_jid_not_empty"),
        ]
        indexes = [
            models.Index(
                "tenant", "status", models.F("last_message_at").desc(), models.F("id").desc(),
                name="conv_inbox_status",
            ),
            models.Index(
                "tenant", models.F("last_message_at").desc(), models.F("id").desc(), name="conv_inbox_all"
            ),
            models.Index(fields=["tenant", "assignee", "status"], name="conv_tenant_assignee"),
            models.Index(fields=["contact"], name="conv_contact"),
        ]

    def __str__(self):
        return f"{self.chat_jid} via {self.connection_id}"


class Message(TenantOwned):
    """One WhatsApp message: unique per (connection, external_id); the id is required and non-empty.

    Outbound replies start as ``status=queued`` with a local ``external_id`` ("local-<uuid>") and get
    WhatsApp's id from the send response; receipts then move the status forward, never backward.
    """

    class Direction(models.TextChoices):
        INBOUND = "in", _("Inbound")
        OUTBOUND = "out", _("Outbound")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        DELIVERED = "delivered", _("Delivered")
        READ = "read", _("Read")
        PLAYED = "played", _("Played")
        FAILED = "failed", _("Failed")
        RECEIVED = "received", _("Received")

    # Receipts only ever move a status up this ladder.
    STATUS_RANK = {
        Status.QUEUED: 0,
        Status.SENDING: 1,
        Status.SENT: 2,
        Status.DELIVERED: 3,
        Status.READ: 4,
        Status.PLAYED: 5,
    }

    class Type(models.TextChoices):
        TEXT = "text", _("Text")
        IMAGE = "image", _("Image")
        VIDEO = "video", _("Video")
        AUDIO = "audio", _("Audio")
        DOCUMENT = "document", _("Document")
        STICKER = "sticker", _("Sticker")
        CONTACT = "contact", _("Contact card")
        LOCATION = "location", _("Location")
        SYSTEM = "system", _("System")
        UNSUPPORTED = "unsupported", _("Unsupported")

    # No single-column indexes on conversation/connection: msg_thread leads with conversation and the
    # unique (connection, external_id) constraint leads with connection; every extra index is paid on
    # each of the hundreds of thousands of rows a history sync inserts.
    # The message's foreign keys are ORM relations without database FK constraints (ADR-6): a deferred
    # FK check is an extra query per row at commit (its cost: ADR-6). ``tenant`` and
    # ``connection`` are denormalised copies of the conversation's; all three are written from a
    # conversation row the writer just read or created in the same transaction (sync.ingest, the
    # outbox), conversations are only deleted through the ORM (cascades are Django's) or by a merge that
    # moves their messages first, and ``sync_report`` counts orphans. The unique and check constraints,
    # which are what make duplicates impossible, stay in the database.
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages", db_index=False,
                                     db_constraint=False, verbose_name=_("conversation"))
    # No index of its own either: every read of messages goes through a conversation (msg_thread), a
    # primary key or (connection, external_id), with the tenant as an extra filter; the index cost
    # every inserted row (docs/measurements.md). A tenant's ORM delete scans the table once.
    tenant = models.ForeignKey("inbox.Tenant", on_delete=models.CASCADE, related_name="+", db_constraint=False,
                               db_index=False, verbose_name=_("tenant"))
    connection = models.ForeignKey(
        "connections.Connection", on_delete=models.CASCADE, related_name="messages", db_index=False,
        db_constraint=False,
    verbose_name=_("connection"),)
    external_id = models.CharField(max_length=128, verbose_name=_("external id"))
    direction = models.CharField(max_length=3, choices=Direction.choices, verbose_name=_("direction"))
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RECEIVED, verbose_name=_("status"))
    type = models.CharField(max_length=12, choices=Type.choices, default=Type.TEXT, verbose_name=_("type"))
    raw_type = models.CharField(max_length=64, blank=True, help_text=_("WhatsApp's content type, for unsupported ones"),
                                verbose_name=_("raw type"))
    body = models.TextField(blank=True, verbose_name=_("body"))
    media_mimetype = models.CharField(max_length=128, blank=True, verbose_name=_("media mimetype"))
    media_size = models.BigIntegerField(null=True, blank=True, verbose_name=_("media size"))
    media_filename = models.CharField(max_length=255, blank=True, verbose_name=_("media filename"))
    extra = models.JSONField(default=dict, blank=True,
                             help_text=_("location, contact card, ... details"), verbose_name=_("extra"))
    sender_jid = models.CharField(max_length=128, blank=True, verbose_name=_("sender jid"))
    sender_name = models.CharField(max_length=255, blank=True, verbose_name=_("sender name"))
    sender_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text=_("the agent who wrote an outbound reply"), db_index=False,  # partial index msg_sender_user
        db_constraint=False,
    verbose_name=_("sender user"),)
    quoted_external_id = models.CharField(max_length=128, blank=True, verbose_name=_("quoted external id"))
    quoted_body = models.CharField(max_length=300, blank=True, verbose_name=_("quoted body"))
    reactions = models.JSONField(default=dict, blank=True, help_text=_("{reactor jid: emoji}"), verbose_name=_("reactions"))
    sent_at = models.DateTimeField(verbose_name=_("sent at"))
    edited_at = models.DateTimeField(null=True, blank=True, verbose_name=_("edited at"))
    deleted_at = models.DateTimeField(null=True, blank=True, verbose_name=_("deleted at"))
    # Outbox bookkeeping (outbound only).
    send_attempts = models.PositiveSmallIntegerField(default=0, verbose_name=_("send attempts"))
    next_attempt_at = models.DateTimeField(null=True, blank=True, verbose_name=_("next attempt at"))
    error = models.TextField(blank=True, verbose_name=_("error"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        constraints = [
            models.UniqueConstraint(fields=["connection", "external_id"], name="message_unique_connection_external_id"),
            models.CheckConstraint(condition=~Q(external_id=""), name="message_external_id_not_empty"),
        ]
        indexes = [
            models.Index(fields=["conversation", "sent_at", "id"], name="msg_thread"),
            models.Index(
                fields=["connection", "status", "id"],
                name="msg_outbox",
                condition=Q(status__in=["queued", "sending"]),
            ),
            # Only agent replies have a sender_user; synced messages (nearly all rows) stay out of it.
            models.Index(fields=["sender_user"], name="msg_sender_user", condition=Q(sender_user__isnull=False)),
        ]

    def __str__(self):
        return f"{self.external_id} ({self.direction})"


class MessageRevision(TenantOwned):
    """A previous body of an edited message (newest edit last)."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="revisions", verbose_name=_("message"))
    body = models.TextField(blank=True, verbose_name=_("body"))
    replaced_at = models.DateTimeField(verbose_name=_("replaced at"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("message revision")
        verbose_name_plural = _("message revisions")
        indexes = [models.Index(fields=["message", "replaced_at"], name="revision_message")]


class MessageSearchEntry(TenantOwned):
    """The searchable text of one message: what the inbox's message-text search reads (ADR-10).

    Kept out of ``Message`` so the trigram index that makes "contains" search fast is not paid on every
    row a history sync inserts. Written by ``inbox.search``: at once for replies and live messages, from
    the sync's search backlog for history batches (``sync.search_index``). Only messages with a body that
    are not deleted have an entry; ``conversation`` follows merges.
    """

    message = models.OneToOneField(Message, on_delete=models.CASCADE, primary_key=True, related_name="search_entry",
                                   verbose_name=_("message"))
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="+", verbose_name=_("conversation"))
    body = models.TextField(verbose_name=_("body"))

    class Meta:
        verbose_name = _("message search entry")
        verbose_name_plural = _("message search entries")

    def __str__(self):
        return f"search text of message {self.message_id}"
