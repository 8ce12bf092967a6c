from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from inbox.tenancy import ScopedTenantManager, TenantOwned


class Snooze(TenantOwned):
    """A snoozed conversation (status ``snoozed``) and when it comes back to open (inbox.snooze).

    One per conversation; deleted when it wakes or is cancelled. A Celery task with an ETA wakes it on
    time, and beat's periodic sweep wakes any whose task was lost (``snooze_due`` index)."""

    objects = ScopedTenantManager()  # fails closed outside a tenant scope (inbox.tenancy)

    conversation = models.OneToOneField("inbox.Conversation", on_delete=models.CASCADE, related_name="snooze",
                                        verbose_name=_("conversation"))
    until = models.DateTimeField(_("snoozed until"))
    snoozed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", verbose_name=_("snoozed by"))
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))

    class Meta:
        verbose_name_plural = _("snoozes")
        verbose_name = _("snooze")
        indexes = [models.Index(fields=["until"], name="snooze_due")]

    def __str__(self):
        return f"conversation {self.conversation_id} until {self.until:%Y-%m-%d %H:%M}"
