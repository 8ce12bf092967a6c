from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

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
        PENDING = "pending", _("Waiting to download")
        FETCHED = "fetched", _("Stored")
        FAILED = "failed", _("Download failed")
        EXPIRED = "expired", _("No longer on WhatsApp")
        REMOVED = "removed", _("Removed by retention")  # the file was deleted by the tenant's media retention

    message = models.OneToOneField("inbox.Message", on_delete=models.CASCADE, related_name="media",
                                   # like the message's own FKs (ADR-6); purge deletes both
                                   db_constraint=False, verbose_name=_("message"))
    connection = models.ForeignKey("connections.Connection", on_delete=models.CASCADE, related_name="+",
                                   db_index=False, db_constraint=False, verbose_name=_("connection"))
    kind = models.CharField(max_length=12, help_text=_("the message type: image, video, audio, document, sticker"),
                            verbose_name=_("kind"))
    history = models.BooleanField(default=False, help_text=_("from a history sync: fetched after live media"),
                                  verbose_name=_("history"))
    ref = models.BinaryField(blank=True, default=b"", help_text=_("the media part of WhatsApp's message, to download it"),
                             verbose_name=_("ref"))
    declared_mimetype = models.CharField(max_length=128, blank=True, help_text=_("what the sender said; not trusted"),
                                         verbose_name=_("declared mimetype"))
    declared_size = models.BigIntegerField(null=True, blank=True, verbose_name=_("declared size"))
    filename = models.CharField(max_length=255, blank=True, verbose_name=_("filename"))
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING, verbose_name=_("state"))
    attempts = models.PositiveSmallIntegerField(default=0, verbose_name=_("attempts"))
    next_attempt_at = models.DateTimeField(null=True, blank=True, verbose_name=_("next attempt at"))
    error = models.TextField(blank=True, verbose_name=_("error"))
    sha256 = models.CharField(max_length=64, blank=True, verbose_name=_("sha256"))
    size = models.BigIntegerField(null=True, blank=True, verbose_name=_("size"))
    mimetype = models.CharField(max_length=128, blank=True,
                                help_text=_("sniffed from the stored bytes"), verbose_name=_("mimetype"))
    storage_name = models.CharField(max_length=255, blank=True, verbose_name=_("storage name"))
    thumbnail_name = models.CharField(max_length=255, blank=True, verbose_name=_("thumbnail name"))
    fetched_at = models.DateTimeField(null=True, blank=True, verbose_name=_("fetched at"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("media file")
        verbose_name_plural = _("media files")
        indexes = [
            # The runner's fetch queue: pending rows of one connection, live before history, oldest first.
            models.Index(fields=["connection", "history", "id"], name="media_fetch_queue",
                         condition=Q(state="pending")),
            models.Index(fields=["tenant", "sha256"], name="media_tenant_sha"),
        ]

    def __str__(self):
        return f"{self.kind} of message {self.message_id} ({self.state})"
