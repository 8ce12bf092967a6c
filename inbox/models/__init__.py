from .alerts import Alert, AlertEmailOptOut
from .backups import BackupRun
from .contacts import Contact, ContactIdentity, GroupParticipant
from .conversations import Conversation, Message, MessageRevision, MessageSearchEntry
from .tenants import Membership, Tenant

__all__ = [
    "Alert",
    "AlertEmailOptOut",
    "BackupRun",
    "Contact",
    "ContactIdentity",
    "Conversation",
    "GroupParticipant",
    "Membership",
    "Message",
    "MessageRevision",
    "MessageSearchEntry",
    "Tenant",
]
