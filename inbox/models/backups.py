from django.db import models


class BackupRun(models.Model):
    """One scheduled (or asked-for) backup of one tenant: an export file in BACKUP_DIR (inbox.snapshot.backups).

    Platform data, not the tenant's: operators read it on /ops/ and /health/detailed. ``tenant_slug`` keeps
    the name when the tenant is deleted (its files stay in the backup directory until they are pruned).
    """

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        OK = "ok", "OK"
        FAILED = "failed", "Failed"

    tenant = models.ForeignKey("inbox.Tenant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    tenant_slug = models.CharField(max_length=60)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    path = models.CharField(max_length=500, blank=True)
    size = models.BigIntegerField(null=True, blank=True, help_text="bytes")
    rows = models.JSONField(default=dict, blank=True, help_text="{member: rows}")
    error = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant_slug", "-started_at"], name="backuprun_tenant_time")]

    def __str__(self):
        return f"backup of {self.tenant_slug} at {self.started_at:%Y-%m-%d %H:%M} ({self.status})"
