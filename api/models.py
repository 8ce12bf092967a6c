"""What integrations hold: API tokens, idempotency records of API sends, webhook endpoints and their
delivery log. Every row carries its tenant and the default managers fail closed (inbox.tenancy)."""

import secrets

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from inbox.snapshot.tables import Table
from inbox.tenancy import ScopedTenantManager, TenantOwned


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


class ApiToken(TenantOwned):
    """A tenant's API credential. Only the SHA-256 of the token is stored; the token itself is shown once,
    when an owner or admin creates it (api.tokens). ``prefix`` is its visible start, to tell tokens apart."""

    objects = ScopedTenantManager()
    # In tenant snapshots (inbox.snapshot.tables): the hash only, as stored; a restored token keeps working.
    snapshot_table = Table("api_tokens.jsonl.gz", "api.ApiToken",
                           ("name", "prefix", "key_hash", "scope", "created_at", "last_used_at", "revoked_at"),
                           key=("key_hash",), across_tenants=True, users=("created_by",))

    class Scope(models.TextChoices):
        READ = "read", pgettext_lazy("token scope", "Read")
        READ_WRITE = "read_write", _("Read and write")

    name = models.CharField(max_length=100, verbose_name=_("name"))
    prefix = models.CharField(max_length=16, unique=True, verbose_name=_("prefix"))
    key_hash = models.CharField(max_length=64, unique=True, verbose_name=_("key hash"))
    scope = models.CharField(max_length=12, choices=Scope.choices, default=Scope.READ, verbose_name=_("scope"))
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", verbose_name=_("created by"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    last_used_at = models.DateTimeField(null=True, blank=True, verbose_name=_("last used at"))
    revoked_at = models.DateTimeField(null=True, blank=True, verbose_name=_("revoked at"))

    class Meta:
        verbose_name = _("api token")
        verbose_name_plural = _("api tokens")
        indexes = [models.Index(fields=["tenant", "-created_at"], name="apitoken_tenant")]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def can_write(self) -> bool:
        return self.scope == self.Scope.READ_WRITE


class IdempotencyKey(TenantOwned):
    """One API send made with an ``Idempotency-Key``: the same key again gets the stored answer, and no
    second message. Unique per tenant; written in the send's transaction (api.idempotency)."""

    objects = ScopedTenantManager()
    # Not in tenant snapshots: a short-lived replay guard (api.retention prunes it within days) that names
    # messages and tokens by this install's ids; a restore answers a retried send by sending it once more.
    snapshot_excluded = ("a short-lived replay guard of API sends (pruned by retention), naming this install's "
                         "message and token ids")

    key = models.CharField(max_length=200, verbose_name=_("key"))
    request_hash = models.CharField(max_length=64, verbose_name=_("request hash"))
    token = models.ForeignKey(ApiToken, null=True, on_delete=models.SET_NULL, related_name="+", verbose_name=_("token"))
    message = models.ForeignKey("inbox.Message", null=True, on_delete=models.SET_NULL, related_name="+",
                                db_constraint=False, verbose_name=_("message"))
    response_status = models.PositiveSmallIntegerField(default=0, verbose_name=_("response status"))
    response_body = models.JSONField(default=dict, encoder=DjangoJSONEncoder, verbose_name=_("response body"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("idempotency key")
        verbose_name_plural = _("idempotency keys")
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="idempotency_unique_tenant_key")]
        indexes = [models.Index(fields=["created_at"], name="idempotency_retention")]


class WebhookEndpoint(TenantOwned):
    """A URL of the tenant's that gets the events it subscribed to, signed with ``secret`` (api.webhooks)."""

    objects = ScopedTenantManager()
    # In tenant snapshots (inbox.snapshot.tables): the signing secret only encrypted, with --with-secrets;
    # without it the endpoint is imported disabled, with a new secret its owner hands to the receiver.
    snapshot_table = Table(
        "webhook_endpoints.jsonl.gz", "api.WebhookEndpoint",
        ("url", "secret", "events", "enabled", "consecutive_failures", "batch_size", "disabled_reason", "created_at",
         "updated_at"),
        key=("url", "created_at"), users=("created_by",), secrets=("secret",),
        without_secrets={"secret": new_webhook_secret, "enabled": False,
                         "disabled_reason": "imported without its signing secret: a new one was made; give it to the "
                                            "receiver, then enable the endpoint"})

    url = models.URLField(max_length=500, verbose_name=_("url"))
    secret = models.CharField(max_length=80, verbose_name=_("secret"))
    events = models.JSONField(default=list,
                              help_text=_("event names subscribed to (api.webhooks.EVENTS)"), verbose_name=_("events"))
    enabled = models.BooleanField(default=True, verbose_name=_("enabled"))
    consecutive_failures = models.PositiveIntegerField(default=0, verbose_name=_("consecutive failures"))
    batch_size = models.PositiveSmallIntegerField(
        default=1, verbose_name=_("events per request"),
        help_text=_("events per request: 1 sends one event object per POST (the original format); more sends a JSON "
                    "array of up to this many events (docs/api.md, batches)"))
    disabled_reason = models.CharField(max_length=300, blank=True, verbose_name=_("disabled reason"))
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", verbose_name=_("created by"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")
        indexes = [models.Index(fields=["tenant", "enabled"], name="webhook_tenant_enabled")]

    def __str__(self):
        return self.url


class WebhookDelivery(TenantOwned):
    """One event for one endpoint: the outbox row the delivery task sends, and then its log entry.

    Written in the transaction of the change it reports (so an event is never lost nor sent for a change
    that rolled back) with only ids and the event's own data; the JSON body is built at the first attempt
    and kept, so a retry or a redelivery sends the same body. Deliveries of one ``ordering_key`` (a
    conversation, a number, an alert) are sent in id order: a later one waits while an earlier one retries.
    """

    objects = ScopedTenantManager()
    # Not in tenant snapshots: the delivery log and outbox; pending rows restored elsewhere would send the
    # same events to the receiver a second time.
    snapshot_excluded = ("the webhook outbox and delivery log: operational (pruned by retention); restoring pending "
                         "rows would deliver their events twice")

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SUCCEEDED = "succeeded", _("Delivered")
        FAILED = "failed", _("Gave up")

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("endpoint"))
    event = models.CharField(max_length=40, verbose_name=_("event"))
    ordering_key = models.CharField(max_length=60, verbose_name=_("ordering key"))
    # crc32(ordering_key) % SHARDS, fixed when recorded: a delivery task's partition is shard % WEBHOOK_PARTITIONS,
    # so every event of one key is in one partition whatever the partition count (api.webhooks).
    shard = models.PositiveSmallIntegerField(default=0, verbose_name=_("shard"))
    object_id = models.BigIntegerField(verbose_name=_("object id"))
    data = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder, verbose_name=_("data"))
    payload = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder, verbose_name=_("payload"))
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, verbose_name=_("status"))
    attempts = models.PositiveSmallIntegerField(default=0, verbose_name=_("attempts"))
    next_attempt_at = models.DateTimeField(null=True, blank=True, verbose_name=_("next attempt at"))
    last_attempt_at = models.DateTimeField(null=True, blank=True, verbose_name=_("last attempt at"))
    response_code = models.PositiveSmallIntegerField(null=True, blank=True, verbose_name=_("response code"))
    error = models.CharField(max_length=500, blank=True, verbose_name=_("error"))
    redelivery_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                      verbose_name=_("redelivery of"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        indexes = [
            models.Index(fields=["endpoint", "id"], name="webhook_pending", condition=Q(status="pending")),
            models.Index(fields=["endpoint", "-id"], name="webhook_log"),
            # Retention's scan (api.retention); partial, so recording a pending delivery does not touch it.
            models.Index(fields=["created_at"], name="webhook_retention", condition=Q(status__in=["succeeded", "failed"])),
        ]

    def __str__(self):
        return f"{self.event} #{self.pk} -> {self.endpoint_id} ({self.status})"
