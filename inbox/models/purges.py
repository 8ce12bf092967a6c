from django.db import models
from django.utils.translation import gettext_lazy as _


class PurgeJob(models.Model):
    """One confirmed purge of a number or a whole tenant, carried out in bounded batches by a Celery task
    (``inbox.deletion``): its progress (``counts`` so far) and outcome, for the operators.

    Platform data, not the tenant's: it outlives what it purged, so it names its target by id and label
    (the number's name, the tenant's slug) rather than by foreign key.
    """

    class Kind(models.TextChoices):
        CONNECTION = "connection", _("Number")
        TENANT = "tenant", _("Tenant")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    kind = models.CharField(max_length=10, choices=Kind.choices)
    target_id = models.BigIntegerField(help_text=_("the number's or tenant's id"))
    target_label = models.CharField(max_length=200, help_text=_("the number's name or the tenant's slug"))
    tenant_id_value = models.BigIntegerField(help_text=_("the tenant the target belonged to"))
    requested_by = models.CharField(max_length=150, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    counts = models.JSONField(default=dict, blank=True, help_text=_("rows (and files) deleted so far, by kind"))
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["kind", "target_id"], name="purgejob_target")]

    def __str__(self):
        return f"purge of {self.kind} {self.target_label} ({self.status})"
