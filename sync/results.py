"""What ingesting a batch did, per connection: the counts a SyncRun keeps and what to publish."""

from __future__ import annotations

from dataclasses import dataclass, field

from inbox.integrations import Event


@dataclass
class IngestResult:
    received: int = 0
    saved: int = 0
    duplicates: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    failed: int = 0  # items of the events that failed on their own (``Decoded.failures``)
    # Operations not applied because their sender may not make them: {"refused_edit": n, ...}. Not part
    # of received = saved + duplicates + skipped + failed: operations are not counted as received.
    refused: dict[str, int] = field(default_factory=dict)
    # Notes for the journal rows of this batch (raw event id -> notes): refused operations.
    notes: dict[int, list[str]] = field(default_factory=dict)
    conversation_ids: set[int] = field(default_factory=set)
    message_ids: set[int] = field(default_factory=set)
    # Live messages stored by this batch, (message id, conversation id, from me): their integration events.
    live_messages: list[tuple[int, int, bool]] = field(default_factory=list)
    # What the batch's operations changed (statuses, edits, deletions), for inbox.integrations: recorded
    # with the batch's new messages, once per batch (sync.ingest).
    events: list[Event] = field(default_factory=list)
    merges: int = 0
    # Snoozed conversations a live inbound message of this batch opened (inbox.snooze.do_wake_for_inbound).
    woken: set[int] = field(default_factory=set)

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n
