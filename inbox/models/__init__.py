from .alerts import Alert, AlertEmailOptOut
from .contacts import Contact, ContactIdentity, GroupParticipant
from .conversations import Conversation, Message, MessageRevision, MessageSearchEntry
from .media import MediaFile
from .tenants import Membership, Tenant

__all__ = [
    "Alert",
    "AlertEmailOptOut",
    "Contact",
    "ContactIdentity",
    "Conversation",
    "GroupParticipant",
    "MediaFile",
    "Membership",
    "Message",
    "MessageRevision",
    "MessageSearchEntry",
    "Tenant",
]
