from django.db import models
from django.utils.translation import gettext_lazy as _


class BackupRun(models.Model):
    """One scheduled (or asked-for) backup of one tenant: an export file in BACKUP_DIR (inbox.snapshot.backups).

    Platform data, not the tenant's: operators read it on /ops/ and /health/detailed. ``tenant_slug`` keeps
    the name when the tenant is deleted (its files stay in the backup directory until they are pruned).
    """

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        OK = "ok", _("OK")
        FAILED = "failed", _("Failed")

    tenant = models.ForeignKey("inbox.Tenant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                               verbose_name=_("tenant"))
    tenant_slug = models.CharField(max_length=60, verbose_name=_("tenant slug"))
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.RUNNING, verbose_name=_("status"))
    started_at = models.DateTimeField(verbose_name=_("started at"))
    finished_at = models.DateTimeField(null=True, blank=True, verbose_name=_("finished at"))
    path = models.CharField(max_length=500, blank=True, verbose_name=_("path"))
    size = models.BigIntegerField(null=True, blank=True, help_text=_("bytes"), verbose_name=_("size"))
    rows = models.JSONField(default=dict, blank=True, help_text=_("{member: rows}"), verbose_name=_("rows"))
    error = models.TextField(blank=True, verbose_name=_("error"))

    class Meta:
        verbose_name = _("backup run")
        verbose_name_plural = _("backup runs")
        indexes = [models.Index(fields=["tenant_slug", "-started_at"], name="backuprun_tenant_time")]

    def __str__(self):
        return f"backup of {self.tenant_slug} at {self.started_at:%Y-%m-%d %H:%M} ({self.status})"
