from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from inbox.tenancy import TenantOwned


class Contact(TenantOwned):
    """A person (or a group) as the tenant knows it, whatever WhatsApp ids it shows up under."""

    class Kind(models.TextChoices):
        PERSON = "person", "Person"
        GROUP = "group", "Group"

    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.PERSON)
    display_name = models.CharField(_("name"), max_length=255, blank=True)
    # Set when an agent named the contact (inbox.contacts): the sync's names (address book, group subject)
    # never overwrite ``display_name`` then; the push name is kept apart either way.
    name_locked = models.BooleanField(default=False, db_default=False)
    push_name = models.CharField(max_length=255, blank=True)
    # E.164 ("+5511987654321"), normalized with the phonenumbers library; empty when unknown.
    phone_number = models.CharField(max_length=32, blank=True)
    # The agents' own: free text, and the team's key/value pairs ({"CPF": "...", "Pedido": "..."}: inbox.contacts).
    # Database defaults too: the sync inserts contacts with raw SQL naming only its columns (sync.statements).
    notes = models.TextField(_("notes"), blank=True, default="", db_default="")
    attributes = models.JSONField(_("attributes"), default=dict, db_default={}, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
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
        PN = "pn", "Phone number"
        LID = "lid", "LID"
        GROUP = "group", "Group"
        OTHER = "other", "Other"

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="identities")
    jid = models.CharField(max_length=128)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "contact identities"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "jid"], name="identity_unique_tenant_jid"),
            models.CheckConstraint(condition=~Q(jid=""), name="identity_jid_not_empty"),
        ]
        indexes = [models.Index(fields=["contact"], name="identity_contact")]

    def __str__(self):
        return self.jid


class GroupParticipant(TenantOwned):
    group = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="participants")
    member = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="group_memberships")
    is_admin = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["group", "member"], name="participant_unique_group_member")]
