from django.conf import settings
from django.db import models
from django.db.models import Q

from inbox.tenancy import TenantOwned


def default_transport():
    return settings.WHATSAPP_TRANSPORT


class Connection(TenantOwned):
    """A tenant's linked WhatsApp number, kept connected 24/7 by whichever runner holds its lease."""

    class Status(models.TextChoices):
        NEW = "new", "New"
        PAIRING = "pairing", "Pairing"
        CONNECTING = "connecting", "Connecting"
        CONNECTED = "connected", "Connected"
        DISCONNECTED = "disconnected", "Disconnected"
        LOGGED_OUT = "logged_out", "Logged out"
        FAILED = "failed", "Failed"

    class DesiredState(models.TextChoices):
        CONNECTED = "connected", "Connected"
        STOPPED = "stopped", "Stopped"
        LOGGED_OUT = "logged_out", "Logged out"

    class Transport(models.TextChoices):
        SIMULATOR = "simulator", "Simulator"
        NEONIZE = "neonize", "neonize (WhatsApp)"

    name = models.CharField(max_length=120)
    transport = models.CharField(max_length=16, choices=Transport.choices, default=default_transport)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    desired_state = models.CharField(max_length=16, choices=DesiredState.choices, default=DesiredState.CONNECTED)
    # Set once paired ("5511987654321:12@s.whatsapp.net"); unique across the platform when set.
    jid = models.CharField(max_length=128, null=True, blank=True)
    phone_number = models.CharField(max_length=32, blank=True)
    push_name = models.CharField(max_length=255, blank=True)
    paired_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    last_connected_at = models.DateTimeField(null=True, blank=True)
    status_detail = models.CharField(max_length=500, blank=True, help_text="why it is in this status")
    # Pairing: the current QR string or phone pair code, shown to the tenant admin while pairing.
    pairing_code = models.TextField(blank=True)
    pairing_expires_at = models.DateTimeField(null=True, blank=True)
    # Reconnect bookkeeping.
    reconnect_attempts = models.PositiveIntegerField(default=0)
    next_retry_at = models.DateTimeField(null=True, blank=True)
    # Runner lease: the runner that holds it owns the live session until lease_expires_at.
    runner_id = models.CharField(max_length=120, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # Filters (exact JID server, never substrings); every skip is counted by reason on the SyncRun.
    skip_status_broadcasts = models.BooleanField(default=True, help_text="status@broadcast")
    skip_newsletters = models.BooleanField(default=True, help_text="@newsletter channels")
    skip_broadcast_lists = models.BooleanField(default=False, help_text="@broadcast lists")
    skip_groups = models.BooleanField(default=False, help_text="@g.us groups")
    # Deleted by its tenant with its history kept: logged out, hidden from the numbers page, not counted
    # against the tenant's limit; its conversations stay in the inbox. Purging deletes the row instead.
    archived_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["jid"], condition=Q(jid__isnull=False) & ~Q(jid=""), name="connection_unique_jid"),
        ]
        indexes = [
            models.Index(fields=["tenant", "name"], name="connection_tenant_name"),
            models.Index(fields=["desired_state", "lease_expires_at"], name="connection_lease"),
        ]

    def __str__(self):
        return f"{self.name} ({self.tenant_id})"

    @property
    def is_paired(self) -> bool:
        return bool(self.jid)


class ConnectionEvent(TenantOwned):
    """One state change of a connection: the reconnection history shown to admins."""

    class Kind(models.TextChoices):
        CONNECTING = "connecting", "Connecting"
        CONNECTED = "connected", "Connected"
        DISCONNECTED = "disconnected", "Disconnected"
        RECONNECT_ATTEMPT = "reconnect_attempt", "Reconnect attempt"
        CONNECT_FAILED = "connect_failed", "Connect failed"
        PAIRING = "pairing", "Pairing started"
        PAIRED = "paired", "Paired"
        QR_EXPIRED = "qr_expired", "QR expired"
        LOGGED_OUT = "logged_out", "Logged out"
        BANNED = "banned", "Temporarily banned"
        STREAM_REPLACED = "stream_replaced", "Stream replaced"
        FAILED = "failed", "Failed (gave up)"
        STOPPED = "stopped", "Stopped"
        LEASE_ACQUIRED = "lease_acquired", "Lease acquired"
        LEASE_RELEASED = "lease_released", "Lease released"
        HEARTBEAT_STALE = "heartbeat_stale", "Heartbeat stale"
        RUNNER_LOST = "runner_lost", "Runner lost"
        ADDED = "added", "Added"
        RENAMED = "renamed", "Renamed"
        FILTERS_CHANGED = "filters_changed", "Filters changed"
        ARCHIVED = "archived", "Deleted (history kept)"
        RESTORED = "restored", "Restored"

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    detail = models.TextField(blank=True)
    runner_id = models.CharField(max_length=120, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=False)

    class Meta:
        indexes = [models.Index(fields=["connection", "-created_at"], name="connevent_connection_time")]

    def __str__(self):
        return f"{self.connection_id} {self.kind}"
