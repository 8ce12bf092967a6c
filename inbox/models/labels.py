from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from inbox.tenancy import ScopedTenantManager, TenantOwned


class Label(TenantOwned):
    """A tenant's label for conversations ("VIP", "billing"), with a color; names unique per tenant
    whatever their case."""

    objects = ScopedTenantManager()  # fails closed outside a tenant scope (inbox.tenancy)

    class Color(models.TextChoices):
        # A palette, not any hex: the CSP allows no inline style, so each color is a class in app.css.
        GRAY = "gray", _("Gray")
        RED = "red", _("Red")
        ORANGE = "orange", _("Orange")
        YELLOW = "yellow", _("Yellow")
        GREEN = "green", _("Green")
        BLUE = "blue", _("Blue")
        PURPLE = "purple", _("Purple")
        PINK = "pink", _("Pink")

    name = models.CharField(_("name"), max_length=50)
    color = models.CharField(_("color"), max_length=10, choices=Color.choices, default=Color.GRAY)
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))

    class Meta:
        verbose_name_plural = _("labels")
        verbose_name = _("label")
        constraints = [
            models.UniqueConstraint("tenant", Lower("name"), name="label_unique_tenant_name"),
            models.CheckConstraint(condition=~models.Q(name=""), name="label_name_not_empty"),
        ]

    def __str__(self):
        return self.name


class ConversationLabel(TenantOwned):
    """A label on a conversation (once)."""

    objects = ScopedTenantManager()  # fails closed outside a tenant scope (inbox.tenancy)

    conversation = models.ForeignKey("inbox.Conversation", on_delete=models.CASCADE, related_name="label_links",
                                     verbose_name=_("conversation"))
    label = models.ForeignKey(Label, on_delete=models.CASCADE, related_name="conversation_links", verbose_name=_("label"))
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+", verbose_name=_("added by"))
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))

    class Meta:
        verbose_name_plural = _("conversation labels")
        verbose_name = _("conversation label")
        constraints = [models.UniqueConstraint(fields=["conversation", "label"], name="conversation_label_unique")]
        # The list's label filter: the conversations carrying a label (conversation first is the unique one).
        indexes = [models.Index(fields=["label", "conversation"], name="conversation_label_by_label")]

    def __str__(self):
        return f"{self.label_id} on {self.conversation_id}"
