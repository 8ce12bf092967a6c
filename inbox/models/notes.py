from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from inbox.tenancy import ScopedTenantManager, TenantOwned


class Note(TenantOwned):
    """A private note between agents inside a conversation's thread: never sent to WhatsApp.

    Shown among the messages in time order (``created_at`` plays ``sent_at``: inbox.notes.thread_with_notes).
    Kept out of ``Message`` so nothing that sends, syncs or counts messages can ever see one.
    """

    objects = ScopedTenantManager()  # fails closed outside a tenant scope (inbox.tenancy)

    conversation = models.ForeignKey("inbox.Conversation", on_delete=models.CASCADE, related_name="notes",
                                     verbose_name=_("conversation"))
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="+", verbose_name=_("author"))
    body = models.TextField(verbose_name=_("body"))
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))

    is_note = True  # templates tell thread items apart with this

    class Meta:
        verbose_name_plural = _("private notes")
        verbose_name = _("private note")
        indexes = [models.Index(fields=["conversation", "created_at", "id"], name="note_thread")]

    def __str__(self):
        return f"note {self.pk} on conversation {self.conversation_id}"

    @property
    def sent_at(self):
        """The thread orders and groups by day on ``sent_at``: a note's is when it was written."""
        return self.created_at


class NoteMention(TenantOwned):
    """A member @mentioned in a note: their in-app notification (unread until ``read_at``), e-mailed once."""

    objects = ScopedTenantManager()  # fails closed outside a tenant scope (inbox.tenancy)

    note = models.ForeignKey(Note, on_delete=models.CASCADE, related_name="mentions", verbose_name=_("note"))
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", verbose_name=_("user"))
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))
    read_at = models.DateTimeField(null=True, blank=True, verbose_name=_("read at"))
    emailed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("emailed at"))

    class Meta:
        verbose_name_plural = _("mentions")
        verbose_name = _("mention")
        constraints = [models.UniqueConstraint(fields=["note", "user"], name="mention_unique_note_user")]
        indexes = [models.Index(fields=["tenant", "user", "read_at"], name="mention_inbox")]

    def __str__(self):
        return f"{self.user} in note {self.note_id}"
