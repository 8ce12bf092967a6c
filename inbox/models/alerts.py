from django.conf import settings
from django.db import models

from inbox.tenancy import TenantOwned


class Alert(TenantOwned):
    """Something a tenant admin or an operator must look at (a failed number, a sync discrepancy)."""

    class Kind(models.TextChoices):
        CONNECTION_FAILED = "connection_failed", "Connection failed"
        LOGGED_OUT = "logged_out", "Logged out on the phone"
        BANNED = "banned", "Temporarily banned"
        STREAM_REPLACED = "stream_replaced", "Session opened elsewhere"
        SYNC_DISCREPANCY = "sync_discrepancy", "Sync discrepancy"
        JOURNAL_QUARANTINE = "journal_quarantine", "Event quarantined"
        OTHER = "other", "Other"

    connection = models.ForeignKey(
        "connections.Connection", null=True, blank=True, on_delete=models.CASCADE, related_name="alerts"
    )
    kind = models.CharField(max_length=32, choices=Kind.choices)
    message = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        indexes = [models.Index(fields=["tenant", "acknowledged_at", "-created_at"], name="alert_tenant_open")]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.message[:60]}"
