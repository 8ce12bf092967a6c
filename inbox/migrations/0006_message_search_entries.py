"""Message-text search moves to its own table, off the history sync's hot path (ADR-10).

Creates ``inbox_messagesearchentry`` (one row per message with a body that is not deleted), fills it from
the existing messages, builds the trigram GIN index on its body (PostgreSQL) and drops the one on
``inbox_message.body`` (``msg_body_utrgm`` from migration 0003), which cost ~7 us per inserted message.

On a large live database the fill and the index build take a while (~10 s per million messages on a
small machine) and block writes meanwhile; run it in a maintenance window, or create the index
beforehand with CREATE INDEX CONCURRENTLY under the same name (IF NOT EXISTS then skips it).
"""

import django.db.models.deletion
from django.db import migrations, models

FILL = """
INSERT INTO inbox_messagesearchentry (message_id, tenant_id, conversation_id, body)
SELECT id, tenant_id, conversation_id, body FROM inbox_message WHERE body <> '' AND deleted_at IS NULL
"""


def fill_and_index(apps, schema_editor):
    schema_editor.execute(FILL)
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute("CREATE INDEX IF NOT EXISTS msgsearch_body_utrgm ON inbox_messagesearchentry "
                          "USING gin ((UPPER(body::text)) gin_trgm_ops)")
    schema_editor.execute("DROP INDEX IF EXISTS msg_body_utrgm")


def unindex(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE INDEX IF NOT EXISTS msg_body_utrgm ON inbox_message USING gin ((UPPER(body::text)) gin_trgm_ops)")
    schema_editor.execute("DROP INDEX IF EXISTS msgsearch_body_utrgm")


class Migration(migrations.Migration):

    dependencies = [
        ("inbox", "0005_message_fks_without_db_constraint"),
    ]

    operations = [
        migrations.CreateModel(
            name="MessageSearchEntry",
            fields=[
                ("message", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True,
                                                 related_name="search_entry", serialize=False, to="inbox.message")),
                ("body", models.TextField()),
                ("conversation", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+",
                                                   to="inbox.conversation")),
                ("tenant", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+",
                                             to="inbox.tenant")),
            ],
            options={"abstract": False},
        ),
        migrations.RunPython(fill_and_index, unindex),
    ]
