from django.db import models
from django.utils.translation import gettext_lazy as _

from inbox.tenancy import TenantOwned


class RawEvent(TenantOwned):
    """The journal: one raw WhatsApp event, committed before any processing.

    ``payload`` is the neonize protobuf exactly as serialised by the library. A row is never deleted
    by processing: it is marked processed, or keeps its error and is retried, then quarantined.
    ``digest`` (sha256 of event name + payload) makes journaling the same event twice a no-op.
    """

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        PROCESSED = "processed", _("Processed")
        FAILED = "failed", _("Failed (will retry)")
        QUARANTINED = "quarantined", _("Quarantined")

    # No index of its own: rawevent_state and the unique (connection, digest) both begin with it, and each index
    # is one more entry per journaled event and per processing update (bench/flood.py, docs/measurements.md).
    connection = models.ForeignKey("connections.Connection", on_delete=models.CASCADE, related_name="raw_events",
                                   db_index=False, verbose_name=_("connection"))
    event_name = models.CharField(max_length=64, verbose_name=_("event name"))
    payload = models.BinaryField(verbose_name=_("payload"))
    digest = models.CharField(max_length=64, verbose_name=_("digest"))
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING, verbose_name=_("state"))
    received_at = models.DateTimeField(verbose_name=_("received at"))
    processed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("processed at"))
    attempts = models.PositiveSmallIntegerField(default=0, verbose_name=_("attempts"))
    next_attempt_at = models.DateTimeField(null=True, blank=True, verbose_name=_("next attempt at"))
    error = models.TextField(blank=True, verbose_name=_("error"))
    sync_run = models.ForeignKey("sync.SyncRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                 verbose_name=_("sync run"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("raw event")
        verbose_name_plural = _("raw events")
        constraints = [models.UniqueConstraint(fields=["connection", "digest"], name="rawevent_unique_connection_digest")]
        indexes = [
            models.Index(fields=["connection", "state", "id"], name="rawevent_state"),
            # What the processor and the safety net look for: the few rows still due, not the processed
            # millions (processed_at was never looked up, and its index cost every processing update).
            models.Index(fields=["connection", "id"], name="rawevent_due",
                         condition=models.Q(state__in=["pending", "failed"])),
        ]

    def __str__(self):
        return f"#{self.pk} {self.event_name} ({self.state})"


class SyncRun(TenantOwned):
    """One history sync session or reconnect catch-up, with its accounting.

    received must equal saved + duplicates + skipped + failed; otherwise ``discrepancy`` is set, an
    ERROR is logged and an Alert is raised.
    """

    class Kind(models.TextChoices):
        HISTORY = "history", _("History sync")
        CATCHUP = "catchup", _("Reconnect catch-up")
        LIVE = "live", _("Live")
        IMPORT = "import", _("Capture import")
        REPLAY = "replay", _("Replay")
        ON_DEMAND = "on_demand", _("On-demand history")

    connection = models.ForeignKey("connections.Connection", on_delete=models.CASCADE, related_name="sync_runs",
                                   verbose_name=_("connection"))
    kind = models.CharField(max_length=12, choices=Kind.choices, verbose_name=_("kind"))
    sync_type = models.CharField(max_length=32, blank=True,
                                 help_text=_("WhatsApp's history sync type"), verbose_name=_("sync type"))
    started_at = models.DateTimeField(verbose_name=_("started at"))
    finished_at = models.DateTimeField(null=True, blank=True, verbose_name=_("finished at"))
    chunks = models.PositiveIntegerField(default=0, verbose_name=_("chunks"))
    last_chunk_order = models.PositiveIntegerField(null=True, blank=True, verbose_name=_("last chunk order"))
    progress = models.PositiveSmallIntegerField(null=True, blank=True, help_text=_("percent, from WhatsApp"),
                                                verbose_name=_("progress"))
    received = models.PositiveIntegerField(default=0, verbose_name=_("received"))
    saved = models.PositiveIntegerField(default=0, verbose_name=_("saved"))
    duplicates = models.PositiveIntegerField(default=0, verbose_name=_("duplicates"))
    skipped = models.JSONField(default=dict, blank=True, help_text=_("{reason: count}"), verbose_name=_("skipped"))
    failed = models.PositiveIntegerField(default=0, verbose_name=_("failed"))
    # Operations (edits, revokes, reactions, receipts) not applied because their sender may not make
    # them. Outside the balance: operations are not counted as received (they change messages).
    refused = models.JSONField(default=dict, blank=True, help_text=_("{refused_<kind>: count}"), verbose_name=_("refused"))
    discrepancy = models.BooleanField(default=False, verbose_name=_("discrepancy"))
    error = models.TextField(blank=True, verbose_name=_("error"))
    last_activity_at = models.DateTimeField(null=True, blank=True, help_text=_("last batch accounted to this run"),
                                            verbose_name=_("last activity at"))

    class Meta:
        verbose_name = _("sync run")
        verbose_name_plural = _("sync runs")
        indexes = [models.Index(fields=["connection", "-started_at"], name="syncrun_connection_time")]

    def __str__(self):
        return f"{self.get_kind_display()} #{self.pk}"

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    @property
    def balanced(self) -> bool:
        return self.received == self.saved + self.duplicates + self.skipped_total + self.failed


class PendingOperation(TenantOwned):
    """A receipt, edit, revoke or reaction whose target message has not arrived yet.

    Applied (and deleted) by ingestion as soon as a message with ``target_external_id`` is stored on
    the connection, and by the journal safety net for targets written by other paths (the outbox).
    ``digest`` makes recording the same operation twice (a replay) a no-op. ``chat_jid``, ``sender_jid``
    and ``from_me`` are who claimed the operation, checked against the target when it arrives
    (``sync.operations.OperationAuthority``); rows from before they were recorded have an empty chat and
    are refused. ``raw_event``: the journal row that brought it (a refusal is noted there).
    """

    class Kind(models.TextChoices):
        RECEIPT = "receipt", _("Receipt")
        EDIT = "edit", _("Edit")
        REVOKE = "revoke", _("Revoke")
        REACTION = "reaction", _("Reaction")

    connection = models.ForeignKey("connections.Connection", on_delete=models.CASCADE, related_name="+",
                                   verbose_name=_("connection"))
    kind = models.CharField(max_length=10, choices=Kind.choices, verbose_name=_("kind"))
    target_external_id = models.CharField(max_length=128, verbose_name=_("target external id"))
    data = models.JSONField(default=dict, verbose_name=_("data"))
    chat_jid = models.CharField(max_length=128, blank=True, verbose_name=_("chat jid"))
    sender_jid = models.CharField(max_length=128, blank=True, help_text=_("empty when from_me"), verbose_name=_("sender jid"))
    from_me = models.BooleanField(default=False, verbose_name=_("from me"))
    raw_event = models.ForeignKey(RawEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                  verbose_name=_("raw event"))
    digest = models.CharField(max_length=64, verbose_name=_("digest"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("pending operation")
        verbose_name_plural = _("pending operations")
        constraints = [
            models.UniqueConstraint(fields=["connection", "digest"], name="pendingop_unique_connection_digest"),
        ]
        indexes = [models.Index(fields=["connection", "target_external_id"], name="pendingop_target")]

    def __str__(self):
        return f"{self.kind} -> {self.target_external_id}"


class JidMapping(TenantOwned):
    """A LID <-> phone-number JID pair learned from events (alternate sender fields, history sync,
    group participants) or the session store. Kept so a mapping seen once still merges identities
    that show up later."""

    lid_jid = models.CharField(max_length=128, verbose_name=_("lid jid"))
    pn_jid = models.CharField(max_length=128, verbose_name=_("pn jid"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("jid mapping")
        verbose_name_plural = _("jid mappings")
        constraints = [models.UniqueConstraint(fields=["tenant", "lid_jid"], name="jidmapping_unique_tenant_lid")]
        indexes = [models.Index(fields=["tenant", "pn_jid"], name="jidmapping_tenant_pn")]

    def __str__(self):
        return f"{self.lid_jid} = {self.pn_jid}"


class SearchBacklog(TenantOwned):
    """Messages a history batch inserted that are not in the message-text search yet (ADR-10).

    One row per large sync batch: its messages are those of ``connection`` with ``after_id < id <=
    through_id`` (the primary keys its COPY took). ``sync.search_index`` adds their search entries a
    bounded slice at a time, moving ``after_id`` forward, and deletes the row when it is done.
    """

    connection = models.ForeignKey("connections.Connection", on_delete=models.CASCADE, related_name="+",
                                   db_index=False, verbose_name=_("connection"))  # searchbacklog_connection leads with it
    after_id = models.BigIntegerField(verbose_name=_("after id"))
    through_id = models.BigIntegerField(verbose_name=_("through id"))
    messages = models.PositiveIntegerField(help_text=_("messages the batch inserted"), verbose_name=_("messages"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("search backlog")
        verbose_name_plural = _("search backlogs")
        indexes = [models.Index(fields=["connection", "id"], name="searchbacklog_connection")]

    def __str__(self):
        return f"search backlog of connection {self.connection_id}: ids {self.after_id + 1}..{self.through_id}"
