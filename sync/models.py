from django.db import models

from inbox.tenancy import TenantOwned


class RawEvent(TenantOwned):
    """The journal: one raw WhatsApp event, committed before any processing.

    ``payload`` is the neonize protobuf exactly as serialised by the library. A row is never deleted
    by processing: it is marked processed, or keeps its error and is retried, then quarantined.
    ``digest`` (sha256 of event name + payload) makes journaling the same event twice a no-op.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSED = "processed", "Processed"
        FAILED = "failed", "Failed (will retry)"
        QUARANTINED = "quarantined", "Quarantined"

    connection = models.ForeignKey("connections.Connection", on_delete=models.CASCADE, related_name="raw_events")
    event_name = models.CharField(max_length=64)
    payload = models.BinaryField()
    digest = models.CharField(max_length=64)
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    received_at = models.DateTimeField()
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    sync_run = models.ForeignKey("sync.SyncRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
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
        HISTORY = "history", "History sync"
        CATCHUP = "catchup", "Reconnect catch-up"
        LIVE = "live", "Live"
        IMPORT = "import", "Capture import"
        REPLAY = "replay", "Replay"
        ON_DEMAND = "on_demand", "On-demand history"

    connection = models.ForeignKey("connections.Connection", on_delete=models.CASCADE, related_name="sync_runs")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    sync_type = models.CharField(max_length=32, blank=True, help_text="WhatsApp's history sync type")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    chunks = models.PositiveIntegerField(default=0)
    last_chunk_order = models.PositiveIntegerField(null=True, blank=True)
    progress = models.PositiveSmallIntegerField(null=True, blank=True, help_text="percent, from WhatsApp")
    received = models.PositiveIntegerField(default=0)
    saved = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    skipped = models.JSONField(default=dict, blank=True, help_text="{reason: count}")
    failed = models.PositiveIntegerField(default=0)
    # Operations (edits, revokes, reactions, receipts) not applied because their sender may not make
    # them. Outside the balance: operations are not counted as received (they change messages).
    refused = models.JSONField(default=dict, blank=True, help_text="{refused_<kind>: count}")
    discrepancy = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    last_activity_at = models.DateTimeField(null=True, blank=True, help_text="last batch accounted to this run")

    class Meta:
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
        RECEIPT = "receipt", "Receipt"
        EDIT = "edit", "Edit"
        REVOKE = "revoke", "Revoke"
        REACTION = "reaction", "Reaction"

    connection = models.ForeignKey("connections.Connection", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    target_external_id = models.CharField(max_length=128)
    data = models.JSONField(default=dict)
    chat_jid = models.CharField(max_length=128, blank=True)
    sender_jid = models.CharField(max_length=128, blank=True, help_text="empty when from_me")
    from_me = models.BooleanField(default=False)
    raw_event = models.ForeignKey(RawEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
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

    lid_jid = models.CharField(max_length=128)
    pn_jid = models.CharField(max_length=128)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
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
                                   db_index=False)  # searchbacklog_connection leads with it
    after_id = models.BigIntegerField()
    through_id = models.BigIntegerField()
    messages = models.PositiveIntegerField(help_text="messages the batch inserted")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["connection", "id"], name="searchbacklog_connection")]

    def __str__(self):
        return f"search backlog of connection {self.connection_id}: ids {self.after_id + 1}..{self.through_id}"
