"""Deleting conversations: the one way, messages first, in one transaction (ADR-11).

On PostgreSQL the database refuses to delete a conversation that still has messages
(``conversation_refuse_delete_with_messages``, migration ``inbox/0001``): a raw ``DELETE`` would orphan
them, since a message's conversation is not a database foreign key (ADR-6). Everything that deletes
conversations on purpose (the Django admin, a merge of two conversations) calls
``do_purge_conversations``; Django's own cascades (deleting a connection or a tenant through the ORM)
also delete messages before their conversation and keep working.
"""

from dataclasses import dataclass

from django.db import router, transaction

from inbox.media import delete_media_rows, delete_unreferenced_files_on_commit
from inbox.models import (
    Conversation,
    ConversationLabel,
    MediaFile,
    Message,
    MessageRevision,
    MessageSearchEntry,
    Note,
    NoteMention,
    Snooze,
)


@dataclass(frozen=True)
class PurgeResult:
    conversations: int
    messages: int


def do_purge_conversations(conversation_ids) -> PurgeResult:
    """Delete these conversations with their messages, revisions, search entries, media, notes, labels
    and snoozes, atomically; the media files no other message of their tenant uses are deleted from
    storage after the commit.

    Locks the conversations first (``FOR UPDATE``): a message written for one of them meanwhile waits
    and is then refused by the database (its conversation is gone) instead of being left behind.
    Ids that do not exist are ignored. Validates nothing (callers resolve access first).
    """
    ids = sorted({int(pk) for pk in conversation_ids})
    if not ids:
        return PurgeResult(conversations=0, messages=0)
    using = router.db_for_write(Conversation)
    with transaction.atomic(using=using):
        ids = list(Conversation.objects.unscoped().using(using).select_for_update().filter(pk__in=ids)
                   .order_by("pk").values_list("pk", flat=True))
        if not ids:
            return PurgeResult(conversations=0, messages=0)
        MessageSearchEntry.objects.unscoped().using(using).filter(conversation_id__in=ids).delete()
        MessageRevision.objects.unscoped().using(using).filter(message__conversation_id__in=ids).delete()
        # The agents' own rows about these conversations (notes and their mentions, labels, snoozes): the raw
        # DELETE of the conversations below does not cascade, and the database refuses the dangling keys.
        NoteMention.objects.unscoped().using(using).filter(note__conversation_id__in=ids).delete()
        Note.objects.unscoped().using(using).filter(conversation_id__in=ids).delete()
        ConversationLabel.objects.unscoped().using(using).filter(conversation_id__in=ids).delete()
        Snooze.objects.unscoped().using(using).filter(conversation_id__in=ids).delete()
        files = delete_media_rows(MediaFile.objects.unscoped().using(using).filter(message__conversation_id__in=ids),
                                  using)
        delete_unreferenced_files_on_commit(files)
        # Nothing else refers to these messages now (revisions and search entries are gone just above),
        # so one DELETE statement instead of the ORM collector loading every message of the conversations.
        messages = Message.objects.unscoped().using(using).filter(conversation_id__in=ids)._raw_delete(using)
        conversations = Conversation.objects.unscoped().using(using).filter(pk__in=ids)._raw_delete(using)
    return PurgeResult(conversations=conversations, messages=messages)


def fold_agent_rows(from_id: int, into_id: int) -> None:
    """Before a merge purges conversation ``from_id`` into ``into_id`` (``sync.identities
    .reconcile_conversations``): its private notes (with their mentions) and its labels move to ``into_id``
    (a label both carry stays once). Its snooze does not: the surviving conversation keeps its own status.
    Two statements; call inside the merge's transaction."""
    from django.db.models import Exists, OuterRef

    Note.objects.unscoped().filter(conversation_id=from_id).update(conversation_id=into_id)
    labels = ConversationLabel.objects.unscoped()
    both = labels.filter(conversation_id=into_id, label_id=OuterRef("label_id"))
    labels.filter(conversation_id=from_id).exclude(Exists(both)).update(conversation_id=into_id)
