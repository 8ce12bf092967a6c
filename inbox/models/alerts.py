from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from inbox.tenancy import TenantOwned


class Alert(TenantOwned):
    """Something a tenant admin or an operator must look at (a failed number, a sync discrepancy).

    Raised through ``inbox.alerts.do_raise_alert(cause, ...)``: at most one open (unresolved) alert per
    ``cause`` (a partial unique constraint), updated when raised again, resolved when the cause clears.
    ``tenant`` is empty for platform alerts (a dead runner, worker or beat), which go to staff. Rows from
    before causes existed have cause "" and are not deduplicated.
    """

    class Kind(models.TextChoices):
        CONNECTION_FAILED = "connection_failed", "Connection failed"
        LOGGED_OUT = "logged_out", "Logged out on the phone"
        BANNED = "banned", "Temporarily banned"
        STREAM_REPLACED = "stream_replaced", "Session opened elsewhere"
        SYNC_DISCREPANCY = "sync_discrepancy", "Sync discrepancy"
        JOURNAL_QUARANTINE = "journal_quarantine", "Event quarantined"
        NUMBER_DOWN = "number_down", "Number down"
        JOURNAL_FAILED = "journal_failed", "Journal rows failed"
        PLATFORM = "platform", "Platform process down"
        BACKUP = "backup", "Backup failed or late"
        OTHER = "other", "Other"

    tenant = models.ForeignKey("inbox.Tenant", null=True, blank=True, on_delete=models.CASCADE, related_name="+",
                               help_text="empty for a platform alert (sent to staff)")
    cause = models.CharField(max_length=200, blank=True, help_text="one open alert per cause, e.g. connection:12:down")

    connection = models.ForeignKey(
        "connections.Connection", null=True, blank=True, on_delete=models.CASCADE, related_name="alerts"
    )
    kind = models.CharField(max_length=32, choices=Kind.choices)
    message = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    last_raised_at = models.DateTimeField(default=timezone.now)
    times_raised = models.PositiveIntegerField(default=1)
    resolved_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
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

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_email_opt_out")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.user} opted out of alert e-mails"
