from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from inbox.tenancy import TenantOwned


def default_transport():
    return settings.WHATSAPP_TRANSPORT


class Connection(TenantOwned):
    """A tenant's linked WhatsApp number, kept connected 24/7 by whichever runner holds its lease."""

    class Status(models.TextChoices):
        NEW = "new", _("New")
        PAIRING = "pairing", _("Pairing")
        CONNECTING = "connecting", _("Connecting")
        CONNECTED = "connected", _("Connected")
        DISCONNECTED = "disconnected", _("Disconnected")
        LOGGED_OUT = "logged_out", _("Logged out")
        FAILED = "failed", _("Failed")

    class DesiredState(models.TextChoices):
        CONNECTED = "connected", _("Connected")
        STOPPED = "stopped", _("Stopped")
        LOGGED_OUT = "logged_out", _("Logged out")

    class Transport(models.TextChoices):
        SIMULATOR = "simulator", _("Simulator")
        NEONIZE = "neonize", _("neonize (WhatsApp)")

    name = models.CharField(max_length=120, verbose_name=_("name"))
    transport = models.CharField(max_length=16, choices=Transport.choices, default=default_transport, verbose_name=_("transport"))
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW, verbose_name=_("status"))
    desired_state = models.CharField(max_length=16, choices=DesiredState.choices, default=DesiredState.CONNECTED,
                                     verbose_name=_("desired state"))
    # Set once paired ("5511987654321:12@s.whatsapp.net"); unique across the platform when set.
    jid = models.CharField(max_length=128, null=True, blank=True, verbose_name=_("jid"))
    phone_number = models.CharField(max_length=32, blank=True, verbose_name=_("phone number"))
    push_name = models.CharField(max_length=255, blank=True, verbose_name=_("push name"))
    paired_at = models.DateTimeField(null=True, blank=True, verbose_name=_("paired at"))
    last_heartbeat_at = models.DateTimeField(null=True, blank=True, verbose_name=_("last heartbeat at"))
    last_connected_at = models.DateTimeField(null=True, blank=True, verbose_name=_("last connected at"))
    status_detail = models.CharField(max_length=500, blank=True, help_text=_("why it is in this status"),
                                     verbose_name=_("status detail"))
    # Pairing: the current QR string or phone pair code, shown to the tenant admin while pairing.
    pairing_code = models.TextField(blank=True, verbose_name=_("pairing code"))
    pairing_expires_at = models.DateTimeField(null=True, blank=True, verbose_name=_("pairing expires at"))
    # Reconnect bookkeeping.
    reconnect_attempts = models.PositiveIntegerField(default=0, verbose_name=_("reconnect attempts"))
    next_retry_at = models.DateTimeField(null=True, blank=True, verbose_name=_("next retry at"))
    # Runner lease: the runner that holds it owns the live session until lease_expires_at.
    runner_id = models.CharField(max_length=120, blank=True, verbose_name=_("runner id"))
    lease_expires_at = models.DateTimeField(null=True, blank=True, verbose_name=_("lease expires at"))
    # Filters (exact JID server, never substrings); every skip is counted by reason on the SyncRun.
    skip_status_broadcasts = models.BooleanField(default=True, help_text=_("status@broadcast"),
                                                 verbose_name=_("skip status broadcasts"))
    skip_newsletters = models.BooleanField(default=True, help_text=_("@newsletter channels"), verbose_name=_("skip newsletters"))
    skip_broadcast_lists = models.BooleanField(default=False, help_text=_("@broadcast lists"),
                                               verbose_name=_("skip broadcast lists"))
    skip_groups = models.BooleanField(default=False, help_text=_("@g.us groups"), verbose_name=_("skip groups"))
    # Deleted by its tenant with its history kept: logged out, hidden from the numbers page, not counted
    # against the tenant's limit; its conversations stay in the inbox. Purging deletes the row instead.
    archived_at = models.DateTimeField(null=True, blank=True, verbose_name=_("archived at"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("connection")
        verbose_name_plural = _("connections")
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
        CONNECTING = "connecting", _("Connecting")
        CONNECTED = "connected", _("Connected")
        DISCONNECTED = "disconnected", _("Disconnected")
        RECONNECT_ATTEMPT = "reconnect_attempt", _("Reconnect attempt")
        CONNECT_FAILED = "connect_failed", _("Connect failed")
        PAIRING = "pairing", _("Pairing started")
        PAIRED = "paired", _("Paired")
        QR_EXPIRED = "qr_expired", _("QR expired")
        LOGGED_OUT = "logged_out", _("Logged out")
        BANNED = "banned", _("Temporarily banned")
        STREAM_REPLACED = "stream_replaced", _("Stream replaced")
        FAILED = "failed", _("Failed (gave up)")
        STOPPED = "stopped", _("Stopped")
        LEASE_ACQUIRED = "lease_acquired", _("Lease acquired")
        LEASE_RELEASED = "lease_released", _("Lease released")
        HEARTBEAT_STALE = "heartbeat_stale", _("Heartbeat stale")
        RUNNER_LOST = "runner_lost", _("Runner lost")
        ADDED = "added", _("Added")
        RENAMED = "renamed", _("Renamed")
        FILTERS_CHANGED = "filters_changed", _("Filters changed")
        ARCHIVED = "archived", _("Deleted (history kept)")
        RESTORED = "restored", _("Restored")

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="events", verbose_name=_("connection"))
    kind = models.CharField(max_length=24, choices=Kind.choices, verbose_name=_("kind"))
    detail = models.TextField(blank=True, verbose_name=_("detail"))
    runner_id = models.CharField(max_length=120, blank=True, verbose_name=_("runner id"))
    created_at = models.DateTimeField(auto_now_add=True, db_index=False, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("connection event")
        verbose_name_plural = _("connection events")
        indexes = [models.Index(fields=["connection", "-created_at"], name="connevent_connection_time")]

    def __str__(self):
        return f"{self.connection_id} {self.kind}"
