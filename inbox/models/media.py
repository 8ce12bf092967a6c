from django.db import models
from django.db.models import Q

from inbox.tenancy import ScopedTenantManager, TenantOwned


class MediaFile(TenantOwned):
    """The file of one media message (image, video, audio, document, sticker), received or sent.

    Received media starts ``pending`` with ``ref``: the serialized WhatsApp message holding only the
    media part (direct path, media key, hashes), what the transport needs to download it. The runner's
    child fetches it (``inbox.media``), then the row is ``fetched`` with the stored file's checksum,
    size and MIME type sniffed from its bytes; ``failed`` after its last attempt; ``expired`` when
    WhatsApp no longer has it. An agent can ask for another try of either ("retry").

    Files are content-addressed per tenant (``storage_name`` = ``media/<tenant>/<sha[:2]>/<sha256>``):
    the same bytes twice in a tenant are stored once; a file is deleted when no row of its tenant names
    it any more. Outbound attachments are ``fetched`` from the start (the agent uploaded them).
    """

    objects = ScopedTenantManager()  # fails closed outside a tenant scope (inbox.tenancy)

    class State(models.TextChoices):
        PENDING = "pending", "Waiting to download"
        FETCHED = "fetched", "Stored"
        FAILED = "failed", "Download failed"
        EXPIRED = "expired", "No longer on WhatsApp"
        REMOVED = "removed", "Removed by retention"  # the file was deleted by the tenant's media retention

    message = models.OneToOneField("inbox.Message", on_delete=models.CASCADE, related_name="media",
                                   db_constraint=False)  # like the message's own FKs (ADR-6); purge deletes both
    connection = models.ForeignKey("connections.Connection", on_delete=models.CASCADE, related_name="+",
                                   db_index=False, db_constraint=False)
    kind = models.CharField(max_length=12, help_text="the message type: image, video, audio, document, sticker")
    history = models.BooleanField(default=False, help_text="from a history sync: fetched after live media")
    ref = models.BinaryField(blank=True, default=b"", help_text="the media part of WhatsApp's message, to download it")
    declared_mimetype = models.CharField(max_length=128, blank=True, help_text="what the sender said; not trusted")
    declared_size = models.BigIntegerField(null=True, blank=True)
    filename = models.CharField(max_length=255, blank=True)
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    size = models.BigIntegerField(null=True, blank=True)
    mimetype = models.CharField(max_length=128, blank=True, help_text="sniffed from the stored bytes")
    storage_name = models.CharField(max_length=255, blank=True)
    thumbnail_name = models.CharField(max_length=255, blank=True)
    fetched_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            # The runner's fetch queue: pending rows of one connection, live before history, oldest first.
            models.Index(fields=["connection", "history", "id"], name="media_fetch_queue",
                         condition=Q(state="pending")),
            models.Index(fields=["tenant", "sha256"], name="media_tenant_sha"),
        ]

    def __str__(self):
        return f"{self.kind} of message {self.message_id} ({self.state})"
