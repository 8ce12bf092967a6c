from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from inbox.tenancy import TenantOwned


class Contact(TenantOwned):
    """A person (or a group) as the tenant knows it, whatever WhatsApp ids it shows up under."""

    class Kind(models.TextChoices):
        PERSON = "person", _("Person")
        GROUP = "group", _("Group")

    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.PERSON, verbose_name=_("kind"))
    display_name = models.CharField(max_length=255, blank=True, verbose_name=_("name"))
    # Set when an agent named the contact (inbox.contacts): the sync's names (address book, group subject)
    # never overwrite ``display_name`` then; the push name is kept apart either way.
    name_locked = models.BooleanField(default=False, db_default=False, verbose_name=_("name set by an agent"))
    push_name = models.CharField(max_length=255, blank=True, verbose_name=_("push name"))
    # E.164 ("+5511987654321"), normalized with the phonenumbers library; empty when unknown.
    phone_number = models.CharField(max_length=32, blank=True, verbose_name=_("phone number"))
    # The agents' own: free text, and the team's key/value pairs ({"CPF": "...", "Pedido": "..."}: inbox.contacts).
    # Database defaults too: the sync inserts contacts with raw SQL naming only its columns (sync.statements).
    notes = models.TextField(blank=True, default="", db_default="", verbose_name=_("notes"))
    attributes = models.JSONField(default=dict, db_default={}, blank=True, verbose_name=_("attributes"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        indexes = [
            models.Index(fields=["tenant", "phone_number"], name="contact_tenant_phone"),
            models.Index(fields=["tenant", "display_name"], name="contact_tenant_name"),
        ]

    def __str__(self):
        return self.name

    @property
    def name(self) -> str:
        return self.display_name or self.push_name or self.phone_number or f"Contact {self.pk}"


class ContactIdentity(TenantOwned):
    """One WhatsApp id of a contact: a phone-number JID, a LID, or a group JID.

    Unique per (tenant, jid): the same JID can never belong to two contacts of one tenant, so a
    person seen once as ``...@lid`` and once as ``...@s.whatsapp.net`` is one contact with two rows.
    """

    class Kind(models.TextChoices):
        PN = "pn", _("Phone number")
        LID = "lid", _("LID")
        GROUP = "group", _("Group")
        OTHER = "other", _("Other")

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="identities", verbose_name=_("contact"))
    jid = models.CharField(max_length=128, verbose_name=_("jid"))
    kind = models.CharField(max_length=10, choices=Kind.choices, verbose_name=_("kind"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("contact identity")
        verbose_name_plural = _("contact identities")
        constraints = [
            models.UniqueConstraint(fields=["tenant", "jid"], name="identity_unique_tenant_jid"),
            models.CheckConstraint(condition=~Q(jid=""), name="identity_jid_not_empty"),
        ]
        indexes = [models.Index(fields=["contact"], name="identity_contact")]

    def __str__(self):
        return self.jid


class GroupParticipant(TenantOwned):
    group = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="participants", verbose_name=_("group"))
    member = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="group_memberships", verbose_name=_("member"))
    is_admin = models.BooleanField(default=False, verbose_name=_("is admin"))

    class Meta:
        verbose_name = _("group participant")
        verbose_name_plural = _("group participants")
        constraints = [models.UniqueConstraint(fields=["group", "member"], name="participant_unique_group_member")]
