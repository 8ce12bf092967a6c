"""The database checks a message's conversation, connection and tenant again (ADR-11; ADR-6 dropped the FKs).

PostgreSQL only (``connection.vendor``): SQLite, the embedded laptop default, keeps ADR-6's app-kept
relations and ``sync_report``'s orphan count.

- ``message_conversation_insert``: a statement-level AFTER INSERT trigger over the inserted rows
  (transition table ``new_messages``). One check per statement, not per row: every row must name a
  conversation whose (id, connection_id, tenant_id) are the row's own, so a wrong tenant or connection
  copy and a dangling conversation id are refused (SQLSTATE 23503, IntegrityError). One query: the
  distinct triples, each looked up by the conversation's primary key. The named conversations are
  locked ``FOR KEY SHARE``, as a foreign-key check locks its parent: a concurrent delete of one
  waits for this transaction (and is then refused by the guard below), and a check that waited for a
  committed delete sees the conversation gone (READ COMMITTED).
- ``message_conversation_update``: the same rule for an UPDATE that changes a row's conversation,
  connection or tenant (a row-level trigger with a WHEN clause: other updates do not fire it).
- ``conversation_refuse_delete_with_messages``: a conversation that still has messages cannot be deleted
  (a raw ``DELETE`` would orphan them); ``inbox.purge.do_purge_conversations`` deletes messages first.
  The ORM's cascades delete messages before their conversation, so ``Model.delete()`` keeps working.
- ``conversation_refuse_rekey_with_messages``: a conversation's id, connection or tenant cannot change
  while it has messages (their copies would no longer match).

Forward first verifies that the rows already stored keep the rule, and stops with the count if not.
"""

from django.db import migrations

CHECK_MESSAGES = """
CREATE OR REPLACE FUNCTION inbox_message_rows_match_conversation() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    -- One query: the statement's distinct (conversation, connection, tenant) triples (a history chunk:
    -- thousands of rows, a few hundred triples), each looked up by the conversation's primary key alone
    -- (whatever the table's statistics) and locked FOR KEY SHARE as a foreign-key check locks its parent.
    SELECT t.conversation_id, t.connection_id, t.tenant_id INTO bad
      FROM (SELECT DISTINCT n.conversation_id, n.connection_id, n.tenant_id FROM new_messages n) t
      LEFT JOIN LATERAL (SELECT c.id, c.connection_id, c.tenant_id FROM inbox_conversation c
                          WHERE c.id = t.conversation_id
                            FOR KEY SHARE) c ON true
     WHERE c.id IS NULL OR c.connection_id <> t.connection_id OR c.tenant_id <> t.tenant_id
     LIMIT 1;
    IF FOUND THEN
        SELECT n.id, n.external_id, n.conversation_id, n.connection_id, n.tenant_id INTO bad
          FROM new_messages n
         WHERE n.conversation_id = bad.conversation_id AND n.connection_id = bad.connection_id
           AND n.tenant_id = bad.tenant_id
         LIMIT 1;
        RAISE EXCEPTION 'message % (%) names conversation % with connection % and tenant %, '
                        'and no such conversation exists', bad.id, bad.external_id, bad.conversation_id,
                        bad.connection_id, bad.tenant_id
              USING ERRCODE = 'foreign_key_violation', TABLE = 'inbox_message',
                    CONSTRAINT = 'message_conversation_connection_tenant';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER message_conversation_insert AFTER INSERT ON inbox_message
    REFERENCING NEW TABLE AS new_messages
    FOR EACH STATEMENT EXECUTE FUNCTION inbox_message_rows_match_conversation();

-- Updates: only a row whose conversation, connection or tenant changes is checked (a merge moving messages);
-- receipts, edits and the outbox's status changes do not fire it (the WHEN clause is evaluated in C).
CREATE OR REPLACE FUNCTION inbox_message_row_matches_conversation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM inbox_conversation c
     WHERE c.id = NEW.conversation_id AND c.connection_id = NEW.connection_id AND c.tenant_id = NEW.tenant_id
       FOR KEY SHARE OF c;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'message % (%) names conversation % with connection % and tenant %, '
                        'and no such conversation exists', NEW.id, NEW.external_id, NEW.conversation_id,
                        NEW.connection_id, NEW.tenant_id
              USING ERRCODE = 'foreign_key_violation', TABLE = 'inbox_message',
                    CONSTRAINT = 'message_conversation_connection_tenant';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER message_conversation_update AFTER UPDATE ON inbox_message
    FOR EACH ROW
    WHEN (OLD.conversation_id IS DISTINCT FROM NEW.conversation_id OR OLD.connection_id IS DISTINCT FROM NEW.connection_id
          OR OLD.tenant_id IS DISTINCT FROM NEW.tenant_id)
    EXECUTE FUNCTION inbox_message_row_matches_conversation();

CREATE OR REPLACE FUNCTION inbox_conversation_refuse_orphaning() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM inbox_message m WHERE m.conversation_id = OLD.id) THEN
        RAISE EXCEPTION 'conversation % still has messages: % would leave them without it '
                        '(delete through inbox.purge.do_purge_conversations)', OLD.id, lower(TG_OP)
              USING ERRCODE = 'foreign_key_violation', TABLE = 'inbox_conversation',
                    CONSTRAINT = 'message_conversation_connection_tenant';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER conversation_refuse_delete_with_messages BEFORE DELETE ON inbox_conversation
    FOR EACH ROW EXECUTE FUNCTION inbox_conversation_refuse_orphaning();
CREATE TRIGGER conversation_refuse_rekey_with_messages BEFORE UPDATE ON inbox_conversation
    FOR EACH ROW
    WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.connection_id IS DISTINCT FROM NEW.connection_id
          OR OLD.tenant_id IS DISTINCT FROM NEW.tenant_id)
    EXECUTE FUNCTION inbox_conversation_refuse_orphaning();
"""

DROP = """
DROP TRIGGER IF EXISTS conversation_refuse_rekey_with_messages ON inbox_conversation;
DROP TRIGGER IF EXISTS conversation_refuse_delete_with_messages ON inbox_conversation;
DROP FUNCTION IF EXISTS inbox_conversation_refuse_orphaning();
DROP TRIGGER IF EXISTS message_conversation_update ON inbox_message;
DROP TRIGGER IF EXISTS message_conversation_insert ON inbox_message;
DROP FUNCTION IF EXISTS inbox_message_row_matches_conversation();
DROP FUNCTION IF EXISTS inbox_message_rows_match_conversation();
"""

STORED_MISMATCHES = """
SELECT count(*) FROM inbox_message m
 WHERE NOT EXISTS (SELECT 1 FROM inbox_conversation c
                    WHERE c.id = m.conversation_id AND c.connection_id = m.connection_id
                      AND c.tenant_id = m.tenant_id)
"""


def add_guards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(STORED_MISMATCHES)
        (bad,) = cursor.fetchone()
        if bad:
            raise RuntimeError(
                f"{bad} stored messages name a conversation that does not exist or has another connection or "
                "tenant (sync_report's orphaned_messages); fix or purge them before this migration")
        cursor.execute(CHECK_MESSAGES)  # no parameters: the % of RAISE formats stay as they are


def drop_guards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(DROP)


class Migration(migrations.Migration):

    dependencies = [
        ("inbox", "0007_message_tenant_without_index"),
    ]

    operations = [
        migrations.RunPython(add_guards, drop_guards, elidable=False),
    ]
