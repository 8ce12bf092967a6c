from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from inbox.timezones import validate_time_zone


class Tenant(models.Model):
    """A company using the inbox; owns its numbers, contacts, conversations and members."""

    name = models.CharField(max_length=200, verbose_name=_("name"))
    slug = models.SlugField(max_length=60, unique=True, verbose_name=_("slug"))
    # Alerts are POSTed here as JSON (inbox.tasks.send_alert_webhook_task) when set.
    alert_webhook_url = models.URLField(max_length=500, blank=True, verbose_name=_("alert webhook url"))
    # IANA zone the team's pages show times in (a user may override it: UserProfile); empty: the
    # deployment's default (inbox.timezones.default_tenant_time_zone).
    time_zone = models.CharField(max_length=64, blank=True, validators=[validate_time_zone], verbose_name=_("time zone"))
    # Media files older than this many days are removed by beat (inbox.retention); the messages stay,
    # their media marked "removed". Empty: kept forever.
    media_retention_days = models.PositiveIntegerField(
        null=True, blank=True, verbose_name=_("media retention (days)"),
        help_text=_("Media files older than this are removed from storage; the messages stay. Empty: kept forever."))
    # Deleted without a purge (inbox.deletion): hidden from its members, its numbers logged out, nothing
    # lost; platform admins restore it or purge it with a typed confirmation.
    archived_at = models.DateTimeField(null=True, blank=True, verbose_name=_("archived at"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("tenant")
        verbose_name_plural = _("tenants")
        ordering = ["name"]

    def __str__(self):
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", _("Owner")
        ADMIN = "admin", _("Admin")
        AGENT = "agent", _("Agent")

    # Roles that manage numbers and members; agents only work the inbox.
    MANAGER_ROLES = (Role.OWNER, Role.ADMIN)

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships",
                             verbose_name=_("user"))
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("tenant"))
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.AGENT, verbose_name=_("role"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [models.UniqueConstraint(fields=["user", "tenant"], name="membership_unique_user_tenant")]
        indexes = [models.Index(fields=["tenant", "role"], name="membership_tenant_role")]

    def __str__(self):
        return f"{self.user} @ {self.tenant} ({self.role})"

    @property
    def is_manager(self) -> bool:
        return self.role in self.MANAGER_ROLES
