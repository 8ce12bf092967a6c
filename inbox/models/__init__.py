from .alerts import Alert, AlertEmailOptOut
from .contacts import Contact, ContactIdentity, GroupParticipant
from .conversations import Conversation, Message, MessageRevision, MessageSearchEntry
from .notes import Note, NoteMention
from .profiles import UserProfile
from .tenants import Membership, Tenant

__all__ = [
    "Alert",
    "AlertEmailOptOut",
    "Contact",
    "ContactIdentity",
    "Conversation",
    "GroupParticipant",
    "Membership",
    "Message",
    "MessageRevision",
    "MessageSearchEntry",
    "Note",
    "NoteMention",
    "Tenant",
    "UserProfile",
]
