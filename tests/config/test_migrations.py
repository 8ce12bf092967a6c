"""The migrations: the models and the migrations agree, and the operations the models cannot say (the
squashed initials' hand-carried tails, docs/operations.md "Migrations") are in the migrated database.
scripts/compare-schema.sh checks the whole PostgreSQL schema against an older chain; these check what the
suite's own database got."""

import pytest
from django.core.management import call_command
from django.db import connection
from django_celery_beat.models import PeriodicTask

TRIGRAM_INDEXES = {"contact_name_utrgm", "contact_push_name_utrgm", "contact_phone_utrgm", "identity_jid_utrgm",
                   "conv_chat_jid_utrgm", "msgsearch_body_utrgm"}
GUARDS = {"message_conversation_insert", "message_conversation_update", "conversation_refuse_delete_with_messages",
          "conversation_refuse_rekey_with_messages"}


@pytest.mark.smoke
@pytest.mark.django_db
def test_the_models_need_no_migration_that_is_not_written():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)  # SystemExit(1) if one is missing


@pytest.mark.smoke
@pytest.mark.django_db
def test_every_app_seeds_its_periodic_schedules():
    by_app = {}
    for name in PeriodicTask.objects.values_list("name", flat=True):
        by_app.setdefault(name.split(":")[0], set()).add(name)
    assert {app: len(names) for app, names in by_app.items()} == {"inbox": 4, "connections": 2, "sync": 2, "api": 2}


@pytest.mark.smoke
@pytest.mark.django_db
def test_the_postgresql_only_operations_are_there_exactly_on_postgresql():
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT indexname FROM pg_indexes WHERE indexname LIKE %s", ["%\\_utrgm"])
            indexes = {name for (name,) in cursor.fetchall()}
            cursor.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
            triggers = {name for (name,) in cursor.fetchall()}
        else:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE '%utrgm'")
            indexes = {name for (name,) in cursor.fetchall()}
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            triggers = {name for (name,) in cursor.fetchall()}
    expected = connection.vendor == "postgresql"
    assert indexes == (TRIGRAM_INDEXES if expected else set())
    assert triggers == (GUARDS if expected else set())


@pytest.mark.django_db
def test_journal_payloads_are_lz4_compressed_where_the_server_has_lz4():
    if connection.vendor != "postgresql":
        pytest.fail("PostgreSQL-only test run on another database")
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
        (has_lz4,) = cursor.fetchone()
        cursor.execute("SELECT attcompression FROM pg_attribute "
                       "WHERE attrelid = 'sync_rawevent'::regclass AND attname = 'payload'")
        (method,) = cursor.fetchone()
    assert method == ("l" if has_lz4 else "\x00")
