from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from inbox.tenancy import ScopedTenantManager, TenantOwned


class CannedResponse(TenantOwned):
    """A saved reply of a team, found by its shortcut when an agent types ``/`` in the reply box;
    ``{{contact_name}}`` and the other variables of inbox.canned are filled in when it is inserted."""

    objects = ScopedTenantManager()  # fails closed outside a tenant scope (inbox.tenancy)

    shortcut = models.CharField(_("shortcut"), max_length=40)
    body = models.TextField(_("text"))
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", verbose_name=_("created by"))
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))

    class Meta:
        verbose_name_plural = _("canned responses")
        verbose_name = _("canned response")
        constraints = [models.UniqueConstraint("tenant", Lower("shortcut"), name="canned_unique_tenant_shortcut")]

    def __str__(self):
        return f"/{self.shortcut}"
