"""The database checks a message's conversation, connection and tenant (ADR-11, migration inbox/0001).

PostgreSQL only: these are triggers; SQLite keeps ADR-6's app-kept relations (tests/sync/test_storage.py).
"""

import threading

import psycopg
import pytest
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from inbox.models import Conversation, Message, MessageRevision, MessageSearchEntry
from inbox.purge import do_purge_conversations
from sync.ingest import MESSAGE_COLUMNS
from sync.upsert import insert_new
from tests.factories import ConnectionFactory, ConversationFactory, MessageFactory
from tests.locks import wait_blocked_on_lock

REFUSED = (IntegrityError, psycopg.errors.ForeignKeyViolation)


@pytest.fixture(autouse=True)
def _postgresql_only(db):
    if connection.vendor != "postgresql":
        pytest.fail("PostgreSQL-only test run on another database (the guards are PostgreSQL triggers)")


def _row(conversation, external_id, *, tenant_id=None, connection_id=None, conversation_id=None):
    """One message row in the sync's COPY column order (sync.ingest.MESSAGE_COLUMNS)."""
    now = timezone.now()
    values = {
        "tenant_id": conversation.tenant_id if tenant_id is None else tenant_id,
        "conversation_id": conversation.pk if conversation_id is None else conversation_id,
        "connection_id": conversation.connection_id if connection_id is None else connection_id,
        "external_id": external_id, "direction": "in", "status": "received", "type": "text", "raw_type": "",
        "body": "hello", "media_mimetype": "", "media_size": None, "media_filename": "", "extra": "{}",
        "sender_jid": "", "sender_name": "", "quoted_external_id": "", "quoted_body": "", "reactions": "{}",
        "sent_at": now, "send_attempts": 0, "error": "", "created_at": now, "updated_at": now,
    }
    return tuple(values[c] for c in MESSAGE_COLUMNS)


def _copy(rows):
    """The sync engine's own write path: a binary COPY of new message rows (sync.upsert.insert_new)."""
    with transaction.atomic():
        return insert_new(Message, MESSAGE_COLUMNS, rows, {}, ("connection_id", "external_id"))


def test_copy_of_rows_matching_their_conversation_is_accepted():
    conversation = ConversationFactory()
    assert len(_copy([_row(conversation, f"OK{i}") for i in range(3)])) == 3
    assert Message.objects.unscoped().filter(conversation=conversation).count() == 3


def test_copy_with_another_tenants_id_is_refused_and_inserts_nothing():
    conversation = ConversationFactory()
    other = ConversationFactory()  # another tenant's number and conversation
    assert other.tenant_id != conversation.tenant_id
    rows = [_row(conversation, "GOOD1"), _row(conversation, "WRONG-TENANT", tenant_id=other.tenant_id)]
    with pytest.raises(REFUSED, match="WRONG-TENANT.*no such conversation"):
        _copy(rows)
    assert not Message.objects.unscoped().exists()  # the whole statement is refused, the good row too


def test_copy_with_another_connection_of_the_same_tenant_is_refused():
    conversation = ConversationFactory()
    sibling = ConnectionFactory(tenant=conversation.tenant)
    with pytest.raises(REFUSED, match="no such conversation"):
        _copy([_row(conversation, "WRONG-NUMBER", connection_id=sibling.pk)])
    assert not Message.objects.unscoped().exists()


def test_dangling_conversation_id_is_refused_by_copy_and_by_the_orm():
    conversation = ConversationFactory()
    missing = Conversation.objects.unscoped().order_by("-pk").values_list("pk", flat=True)[0] + 1000
    with pytest.raises(REFUSED, match=f"conversation {missing} "):
        _copy([_row(conversation, "DANGLING", conversation_id=missing)])
    with pytest.raises(IntegrityError, match="no such conversation"), transaction.atomic():
        Message.objects.create(tenant_id=conversation.tenant_id, connection_id=conversation.connection_id,
                               conversation_id=missing, external_id="DANGLING-ORM", direction="in",
                               sent_at=timezone.now())
    assert not Message.objects.unscoped().exists()


def test_moving_a_message_to_another_tenants_conversation_is_refused():
    message = MessageFactory()
    foreign = ConversationFactory()
    with pytest.raises(IntegrityError, match="no such conversation"), transaction.atomic():
        Message.objects.unscoped().filter(pk=message.pk).update(conversation_id=foreign.pk)
    # Moving it with its copies to a conversation of the same connection (what a merge does) is fine.
    sibling = ConversationFactory(connection=message.connection, tenant=message.tenant)
    assert Message.objects.unscoped().filter(pk=message.pk).update(conversation_id=sibling.pk) == 1


def test_raw_delete_of_a_conversation_with_messages_is_refused():
    message = MessageFactory()
    empty = ConversationFactory()
    with pytest.raises(IntegrityError, match=f"conversation {message.conversation_id} still has messages"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("DELETE FROM inbox_conversation WHERE id = %s", [message.conversation_id])
    assert Conversation.objects.unscoped().filter(pk=message.conversation_id).exists()
    with connection.cursor() as cursor:  # an empty conversation is not held back
        cursor.execute("DELETE FROM inbox_conversation WHERE id = %s", [empty.pk])
        assert cursor.rowcount == 1


def test_moving_a_conversation_with_messages_to_another_tenant_is_refused():
    message = MessageFactory()
    other = ConnectionFactory()
    with pytest.raises(IntegrityError, match="still has messages"), transaction.atomic():
        Conversation.objects.unscoped().filter(pk=message.conversation_id).update(
            tenant_id=other.tenant_id, connection_id=other.pk)
    # Other updates of the row (the sync's aggregates, an assignment) are not affected.
    assert Conversation.objects.unscoped().filter(pk=message.conversation_id).update(unread_count=3) == 1


def test_purge_deletes_messages_revisions_search_entries_then_conversations():
    message = MessageFactory()
    MessageRevision.objects.create(tenant_id=message.tenant_id, message=message, body="before",
                                   replaced_at=timezone.now())
    second = MessageFactory(conversation=message.conversation)
    kept = MessageFactory()
    assert MessageSearchEntry.objects.unscoped().filter(conversation_id=message.conversation_id).count() == 2
    result = do_purge_conversations([message.conversation_id, 10**9])  # an unknown id is ignored
    assert (result.conversations, result.messages) == (1, 2)
    assert not Message.objects.unscoped().filter(pk__in=[message.pk, second.pk]).exists()
    assert not MessageRevision.objects.unscoped().exists()
    assert not MessageSearchEntry.objects.unscoped().filter(conversation_id=message.conversation_id).exists()
    assert not Conversation.objects.unscoped().filter(pk=message.conversation_id).exists()
    assert Message.objects.unscoped().filter(pk=kept.pk).exists()


def test_orm_cascades_of_a_connection_still_delete_messages_first():
    message = MessageFactory()
    message.connection.delete()
    assert not Message.objects.unscoped().exists() and not Conversation.objects.unscoped().exists()


def _dsn():
    db = settings.DATABASES["default"]
    return psycopg.conninfo.make_conninfo(host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"],
                                          password=db["PASSWORD"] or None, dbname=connection.settings_dict["NAME"])


@pytest.mark.django_db(transaction=True)
def test_delete_racing_an_uncommitted_insert_waits_and_is_refused():
    """As a foreign key would: the insert's check locks the conversation, so a concurrent delete waits
    for it (and would then see the committed message); an insert racing an uncommitted delete waits
    for it and then finds the conversation gone."""
    template = MessageFactory()
    first, second = (ConversationFactory(connection=template.connection, tenant=template.tenant) for _ in range(2))
    picked = ", ".join({"external_id": "%(ext)s", "conversation_id": "%(conv)s"}.get(c, c) for c in MESSAGE_COLUMNS)
    insert = (f"INSERT INTO inbox_message ({', '.join(MESSAGE_COLUMNS)}) "  # noqa: S608
              f"SELECT {picked} FROM inbox_message WHERE id = %(template)s")
    with psycopg.connect(_dsn()) as writer, psycopg.connect(_dsn()) as deleter:
        writer.execute(insert, {"ext": "RACE-1", "conv": first.pk, "template": template.pk})  # not committed
        deleter.execute("SET lock_timeout = '300ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            deleter.execute("DELETE FROM inbox_conversation WHERE id = %s", [first.pk])
        deleter.rollback()
        writer.commit()
        with pytest.raises(psycopg.errors.ForeignKeyViolation, match="still has messages"):
            deleter.execute("DELETE FROM inbox_conversation WHERE id = %s", [first.pk])
        deleter.rollback()

        deleter.execute("DELETE FROM inbox_conversation WHERE id = %s", [second.pk])  # empty: allowed, not committed
        outcome = {}

        def write():
            try:
                writer.execute(insert, {"ext": "RACE-2", "conv": second.pk, "template": template.pk})
                writer.commit()
                outcome["result"] = "inserted"
            except psycopg.Error as exc:
                writer.rollback()
                outcome["result"] = exc

        thread = threading.Thread(target=write)
        thread.start()
        wait_blocked_on_lock(writer.info.backend_pid)  # waiting for the delete's lock on the conversation
        assert thread.is_alive() and not outcome
        deleter.commit()
        thread.join(10)
    assert isinstance(outcome.get("result"), psycopg.errors.ForeignKeyViolation), outcome
    assert not Message.objects.unscoped().filter(external_id="RACE-2").exists()
    assert Message.objects.unscoped().filter(external_id="RACE-1", conversation=first).exists()
