"""What integrations hold: API tokens, idempotency records of API sends, webhook endpoints and their
delivery log. Every row carries its tenant and the default managers fail closed (inbox.tenancy)."""

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q

from inbox.tenancy import ScopedTenantManager, TenantOwned


class ApiToken(TenantOwned):
    """A tenant's API credential. Only the SHA-256 of the token is stored; the token itself is shown once,
    when an owner or admin creates it (api.tokens). ``prefix`` is its visible start, to tell tokens apart."""

    objects = ScopedTenantManager()

    class Scope(models.TextChoices):
        READ = "read", "Read"
        READ_WRITE = "read_write", "Read and write"

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64, unique=True)
    scope = models.CharField(max_length=12, choices=Scope.choices, default=Scope.READ)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
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

    key = models.CharField(max_length=200)
    request_hash = models.CharField(max_length=64)
    token = models.ForeignKey(ApiToken, null=True, on_delete=models.SET_NULL, related_name="+")
    message = models.ForeignKey("inbox.Message", null=True, on_delete=models.SET_NULL, related_name="+",
                                db_constraint=False)
    response_status = models.PositiveSmallIntegerField(default=0)
    response_body = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="idempotency_unique_tenant_key")]
        indexes = [models.Index(fields=["created_at"], name="idempotency_retention")]


class WebhookEndpoint(TenantOwned):
    """A URL of the tenant's that gets the events it subscribed to, signed with ``secret`` (api.webhooks)."""

    objects = ScopedTenantManager()

    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=80)
    events = models.JSONField(default=list, help_text="event names subscribed to (api.webhooks.EVENTS)")
    enabled = models.BooleanField(default=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    batch_size = models.PositiveSmallIntegerField(
        default=1, help_text="events per request: 1 sends one event object per POST (the original format); more "
                             "sends a JSON array of up to this many events (docs/api.md, batches)")
    disabled_reason = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
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

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Delivered"
        FAILED = "failed", "Gave up"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40)
    ordering_key = models.CharField(max_length=60)
    # crc32(ordering_key) % SHARDS, fixed when recorded: a delivery task's partition is shard % WEBHOOK_PARTITIONS,
    # so every event of one key is in one partition whatever the partition count (api.webhooks).
    shard = models.PositiveSmallIntegerField(default=0)
    object_id = models.BigIntegerField()
    data = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    payload = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    redelivery_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(fields=["endpoint", "id"], name="webhook_pending", condition=Q(status="pending")),
            models.Index(fields=["endpoint", "-id"], name="webhook_log"),
            # Retention's scan (api.retention); partial, so recording a pending delivery does not touch it.
            models.Index(fields=["created_at"], name="webhook_retention", condition=Q(status__in=["succeeded", "failed"])),
        ]

    def __str__(self):
        return f"{self.event} #{self.pk} -> {self.endpoint_id} ({self.status})"
