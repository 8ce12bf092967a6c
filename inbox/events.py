"""Live-update publisher: the ONLY module that talks to the channel layer.

Callers (actions in inbox, sync and connections) call these inside their transaction; the send
happens on commit, so a rolled-back write never shows up in a browser. Payloads are re-rendered
from the latest database state at send time, so out-of-order commits cannot show stale data.

Group names (ASCII, < 100 chars):
    tenant-<id>.inbox           conversation list of a tenant
    conversation-<id>           an open thread
    tenant-<id>.connections     connection status banners, sync progress
"""


def inbox_group(tenant_id: int) -> str:
    return f"tenant-{tenant_id}.inbox"


def conversation_group(conversation_id: int) -> str:
    return f"conversation-{conversation_id}"


def connections_group(tenant_id: int) -> str:
    return f"tenant-{tenant_id}.connections"


def publish_messages_on_commit(tenant_id: int, conversation_ids, message_ids=()) -> None:
    """New or changed messages (and the conversations whose list row they move)."""


def publish_conversations_on_commit(tenant_id: int, conversation_ids) -> None:
    """Conversation row changes: assignment, status, unread count, position in the list."""


def publish_connection_on_commit(tenant_id: int, connection_id: int) -> None:
    """Connection status or history-sync progress changed."""
