"""Events the outside world hears about (the API app's webhooks), recorded with the change that made them.

The core (inbox, sync, connections) never imports the app that delivers them: it describes what happened
as ``Event``s and calls ``record_events(tenant_id, events)`` inside the transaction of the change. An app
that delivers events registers its recorder when it is ready (``api.apps``: ``api.webhooks.record_events``);
a recorder writes its rows in that same transaction and queues its work on commit (an outbox: a change
that rolls back leaves no event, a committed one always has its rows). Without a recorder (an install
without the api app), recording does nothing.

The sync engine records once per ingested batch (``sync.ingest``): the batch's new messages and the
changes its operations made, in that order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

MESSAGE_RECEIVED = "message.received"
MESSAGE_SENT = "message.sent"
MESSAGE_STATUS = "message.status"
MESSAGE_EDITED = "message.edited"
MESSAGE_DELETED = "message.deleted"
CONVERSATION_STATUS = "conversation.status"
CONVERSATION_ASSIGNED = "conversation.assigned"
CONVERSATION_LABELS = "conversation.labels"
CONTACT_UPDATED = "contact.updated"
CONTACT_MERGED = "contact.merged"
NUMBER_STATUS = "number.status"
ALERT_RAISED = "alert.raised"


def _(text: str) -> str:
    """Marks a description for the message catalogs (makemessages reads ``_("...")``) without importing
    Django here; the api app shows it translated (``gettext_lazy(description)``)."""
    return text


EVENTS = {
    MESSAGE_RECEIVED: _("a customer's message arrived (live, not history sync)"),
    MESSAGE_SENT: _("an outbound message was sent (WhatsApp's id known)"),
    MESSAGE_STATUS: _("an outbound message was delivered, read, played, or failed"),
    MESSAGE_EDITED: _("a message was edited (body is the new text)"),
    MESSAGE_DELETED: _("a message was deleted by its sender"),
    CONVERSATION_STATUS: _("a conversation was opened, set pending, resolved, snoozed or woken"),
    CONVERSATION_ASSIGNED: _("a conversation was assigned or unassigned"),
    CONVERSATION_LABELS: _("labels were put on or taken off a conversation"),
    CONTACT_UPDATED: _("an agent changed a contact's name, notes or attributes"),
    CONTACT_MERGED: _("two contacts were merged into one by hand"),
    NUMBER_STATUS: _("a number connected, disconnected, was logged out, failed..."),
    ALERT_RAISED: _("an alert was raised for the tenant"),
}


@dataclass(frozen=True, slots=True)
class Event:
    """What happened (``name``, one of ``EVENTS``) to which object, with the event's own data; events of
    one ``ordering_key`` (a conversation, a number, an alert) are delivered in the order recorded."""

    name: str
    ordering_key: str
    object_id: int
    data: dict = field(default_factory=dict)


def message_event(name: str, message_id: int, conversation_id: int, **data) -> Event:
    return Event(name, f"conversation:{conversation_id}", message_id, data)


def conversation_event(name: str, conversation_id: int, **data) -> Event:
    return Event(name, f"conversation:{conversation_id}", conversation_id, data)


def labels_event(conversation_id: int, *, added=(), removed=()) -> Event:
    return Event(CONVERSATION_LABELS, f"conversation:{conversation_id}", conversation_id,
                 {"added": sorted(added), "removed": sorted(removed)})


def contact_event(name: str, contact_id: int, **data) -> Event:
    return Event(name, f"contact:{contact_id}", contact_id, data)


def number_event(connection_id: int, status: str, detail: str = "") -> Event:
    return Event(NUMBER_STATUS, f"number:{connection_id}", connection_id, {"status": status, "detail": detail[:300]})


def alert_event(alert_id: int) -> Event:
    return Event(ALERT_RAISED, f"alert:{alert_id}", alert_id)


Recorder = Callable[[int, list[Event]], int]
_recorders: list[Recorder] = []


def register_recorder(recorder: Recorder) -> None:
    """Called by an app's ``ready()``; registering the same recorder again changes nothing."""
    if recorder not in _recorders:
        _recorders.append(recorder)


def record_events(tenant_id: int | None, events: list[Event]) -> int:
    """Hand the tenant's events to every registered recorder; returns how many rows they wrote. Call
    inside the transaction of the change (a recorder's database error is that transaction's)."""
    if not events or not tenant_id:
        return 0
    return sum(recorder(tenant_id, events) for recorder in _recorders)
