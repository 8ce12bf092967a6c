from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from inbox.tenancy import TenantOwned


class Alert(TenantOwned):
    """Something a tenant admin or an operator must look at (a failed number, a sync discrepancy).

    Raised through ``inbox.alerts.do_raise_alert(cause, ...)``: at most one open (unresolved) alert per
    ``cause`` (a partial unique constraint), updated when raised again, resolved when the cause clears.
    ``tenant`` is empty for platform alerts (a dead runner, worker or beat), which go to staff. Rows from
    before causes existed have cause "" and are not deduplicated.
    """

    class Kind(models.TextChoices):
        CONNECTION_FAILED = "connection_failed", _("Connection failed")
        LOGGED_OUT = "logged_out", _("Logged out on the phone")
        BANNED = "banned", _("Temporarily banned")
        STREAM_REPLACED = "stream_replaced", _("Session opened elsewhere")
        SYNC_DISCREPANCY = "sync_discrepancy", _("Sync discrepancy")
        JOURNAL_QUARANTINE = "journal_quarantine", _("Event quarantined")
        NUMBER_DOWN = "number_down", _("Number down")
        JOURNAL_FAILED = "journal_failed", _("Journal rows failed")
        PLATFORM = "platform", _("Platform process down")
        BACKUP = "backup", _("Backup failed or late")
        OTHER = "other", _("Other")

    tenant = models.ForeignKey("inbox.Tenant", null=True, blank=True, on_delete=models.CASCADE, related_name="+",
                               help_text=_("empty for a platform alert (sent to staff)"), verbose_name=_("tenant"))
    cause = models.CharField(max_length=200, blank=True, help_text=_("one open alert per cause, e.g. connection:12:down"),
                             verbose_name=_("cause"))

    connection = models.ForeignKey(
        "connections.Connection", null=True, blank=True, on_delete=models.CASCADE, related_name="alerts"
    , verbose_name=_("connection"))
    kind = models.CharField(max_length=32, choices=Kind.choices, verbose_name=_("kind"))
    message = models.TextField(verbose_name=_("message"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    last_raised_at = models.DateTimeField(default=timezone.now, verbose_name=_("last raised at"))
    times_raised = models.PositiveIntegerField(default=1, verbose_name=_("times raised"))
    resolved_at = models.DateTimeField(null=True, blank=True, verbose_name=_("resolved at"))
    acknowledged_at = models.DateTimeField(null=True, blank=True, verbose_name=_("acknowledged at"))
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    , verbose_name=_("acknowledged by"))

    class Meta:
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")
        indexes = [models.Index(fields=["tenant", "acknowledged_at", "-created_at"], name="alert_tenant_open")]
        constraints = [
            models.UniqueConstraint(fields=["cause"], condition=Q(resolved_at__isnull=True) & ~Q(cause=""),
                                    name="alert_one_open_per_cause"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.message[:60]}"


class AlertEmailOptOut(models.Model):
    """A user who asked not to get alert e-mails (tenant and platform alerts alike); they still see alerts
    on the pages."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_email_opt_out",
                                verbose_name=_("user"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("alert email opt out")
        verbose_name_plural = _("alert email opt outs")

    def __str__(self):
        return f"{self.user} opted out of alert e-mails"
