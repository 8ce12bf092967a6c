"""Trigram GIN indexes for the inbox search (inbox.selectors.conversation_list_for_agent).

PostgreSQL only. Django writes ``icontains`` / ``istartswith`` as ``UPPER(col::text) LIKE UPPER('%term%')``,
so the indexes are on that expression: a pg_trgm GIN index serves LIKE with a leading wildcard (and a
prefix); a B-tree serves neither. SQLite has neither, so there this migration does nothing and search stays a
plain LIKE scan (fine at laptop sizes). The indexes are not declared on the models because Django's
GinIndex would be created on SQLite too.

Cost on writes (measured, PostgreSQL 15, 2 CPUs, 100k-row inserts): msg_body_utrgm adds ~10 us per short
repetitive message and ~50 us per message with varied text (0.57 s -> 1.55 s and 0.71 s -> 5.8 s); a bigger
gin_pending_list_limit did not help. History-sync ingestion pays this; it is the price of a message-text
search that stays under 100 ms at 1M messages. A tsvector (word) index would be cheaper to write but
would only find whole words and prefixes.

Creating them locks the tables for writes while they build (~5 s for 1M messages on a small machine).
On a large live database, create them beforehand with CREATE INDEX CONCURRENTLY under the same names;
IF NOT EXISTS then makes this migration a no-op.
"""

from django.db import migrations

INDEXES = [
    ("contact_name_utrgm", "inbox_contact", "display_name"),
    ("contact_push_name_utrgm", "inbox_contact", "push_name"),
    ("contact_phone_utrgm", "inbox_contact", "phone_number"),
    ("identity_jid_utrgm", "inbox_contactidentity", "jid"),
    ("conv_chat_jid_utrgm", "inbox_conversation", "chat_jid"),
    ("msg_body_utrgm", "inbox_message", "body"),
]


def create_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, table, column in INDEXES:
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin ((UPPER({column}::text)) gin_trgm_ops)")


def drop_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _, _ in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [
        ("inbox", "0002_message_fewer_indexes"),
    ]

    operations = [
        migrations.RunPython(create_indexes, drop_indexes),
    ]
