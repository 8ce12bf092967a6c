"""What a batch's messages give their conversations: last message and preview, the synced window, live
unread messages (``ConversationAggregate``), and the reset of a conversation created with values that
counted a message the COPY then found stored. The UPDATE that applies aggregates to existing
conversations is ``sync.statements.update_conversation_aggregates``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from inbox.formatting import message_preview
from inbox.models import Conversation
from sync.records import MessageRecord


@dataclass
class ConversationAggregate:
    """What a set of messages gives a conversation: last message and its preview, the synced window,
    live inbound messages to add to the unread count; ``unread_set``: a history chunk's own count."""

    last_at: datetime | None = None
    oldest: datetime | None = None
    newest: datetime | None = None
    unread_add: int = 0
    unread_set: int | None = None
    _last: MessageRecord | None = None  # the preview is made once, from the last message

    def add(self, messages: list[MessageRecord]) -> None:
        """Fold in ``messages`` (journal order): the last of the newest is the last message."""
        stamps = [m.timestamp for m in messages]
        newest, oldest = max(stamps), min(stamps)
        if self.last_at is None or newest >= self.last_at:
            self.last_at = newest
            self._last = messages[len(stamps) - 1 - stamps[::-1].index(newest)]
        if self.oldest is None or oldest < self.oldest:
            self.oldest = oldest
        if self.newest is None or newest > self.newest:
            self.newest = newest
        self.unread_add += sum(1 for m in messages if m.live and not m.from_me)

    def merge(self, other: ConversationAggregate) -> None:
        """Fold another chat's messages in (a person's LID and phone chats, in that order)."""
        if other.last_at is not None and (self.last_at is None or other.last_at >= self.last_at):
            self.last_at, self._last = other.last_at, other._last
        if other.oldest is not None and (self.oldest is None or other.oldest < self.oldest):
            self.oldest = other.oldest
        if other.newest is not None and (self.newest is None or other.newest > self.newest):
            self.newest = other.newest
        self.unread_add += other.unread_add

    @property
    def preview(self) -> str:
        return message_preview(self._last.body, self._last.type) if self._last is not None else ""


def reset_conversation_aggregates(conversation_ids, listed_at: dict[int, datetime], unread_set: dict[int, int]) -> None:
    """Conversations this batch created with values that counted a message the COPY then found stored
    (another chat's id): back to the values of an empty conversation listed at ``listed_at`` (its first
    stored message), for ``update_conversation_aggregates`` to apply the messages really inserted.
    Rare; one statement."""
    now = timezone.now()
    Conversation.objects.bulk_update(
        [Conversation(pk=cid, last_message_at=listed_at.get(cid, now), last_message_preview="", oldest_synced_at=None,
                      newest_synced_at=None, unread_count=unread_set.get(cid, 0), updated_at=now)
         for cid in conversation_ids],
        ["last_message_at", "last_message_preview", "oldest_synced_at", "newest_synced_at", "unread_count",
         "updated_at"])
