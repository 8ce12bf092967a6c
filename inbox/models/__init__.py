from .alerts import Alert, AlertEmailOptOut
from .backups import BackupRun
from .canned import CannedResponse
from .contacts import Contact, ContactIdentity, GroupParticipant
from .conversations import Conversation, Message, MessageRevision, MessageSearchEntry
from .labels import ConversationLabel, Label
from .media import MediaFile
from .notes import Note, NoteMention
from .profiles import UserProfile
from .purges import PurgeJob
from .snooze import Snooze
from .tenants import Membership, Tenant

__all__ = [
    "Alert",
    "AlertEmailOptOut",
    "BackupRun",
    "CannedResponse",
    "Contact",
    "ConversationLabel",
    "ContactIdentity",
    "Conversation",
    "GroupParticipant",
    "Label",
    "MediaFile",
    "Membership",
    "Message",
    "MessageRevision",
    "MessageSearchEntry",
    "Note",
    "NoteMention",
    "PurgeJob",
    "Snooze",
    "Tenant",
    "UserProfile",
]
