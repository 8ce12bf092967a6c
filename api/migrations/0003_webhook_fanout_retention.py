"""Webhook fan-out (partition shards, per-endpoint batches) and retention of deliveries and idempotency keys."""

import zlib

from django.db import migrations, models

from config.beat_migrations import interval_schedules

SHARDS = 1024  # api.webhooks.SHARDS, copied: a migration does not import the code that changes after it

SCHEDULES = [
    ("api: retention", "api.tasks.api_retention_task", 3600),
]
create_schedules, remove_schedules = interval_schedules(SCHEDULES)


def shard_pending(apps, schema_editor):
    """Rows recorded before partitions existed: their shard from their key, so a pending conversation's old
    and new events are in one partition (in order)."""
    Delivery = apps.get_model("api", "WebhookDelivery")
    rows = list(Delivery._base_manager.filter(status="pending").only("id", "ordering_key"))
    for row in rows:
        row.shard = zlib.crc32(row.ordering_key.encode()) % SHARDS
    Delivery._base_manager.bulk_update(rows, ["shard"], batch_size=1000)


class Migration(migrations.Migration):

    dependencies = [
        ('api', '0002_schedule_webhook_safety_net'),
        ('inbox', '0018_merge_media'),
        ('django_celery_beat', '0019_alter_periodictasks_options'),
    ]

    operations = [
        migrations.AddField(
            model_name='webhookdelivery',
            name='shard',
            field=models.PositiveSmallIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='webhookendpoint',
            name='batch_size',
            field=models.PositiveSmallIntegerField(default=1, help_text='events per request: 1 sends one event object per POST (the original format); more sends a JSON array of up to this many events (docs/api.md, batches)'),
        ),
        migrations.AddIndex(
            model_name='idempotencykey',
            index=models.Index(fields=['created_at'], name='idempotency_retention'),
        ),
        migrations.AddIndex(
            model_name='webhookdelivery',
            index=models.Index(condition=models.Q(('status__in', ['succeeded', 'failed'])), fields=['created_at'], name='webhook_retention'),
        ),
        migrations.RunPython(shard_pending, migrations.RunPython.noop),
        migrations.RunPython(create_schedules, remove_schedules),
    ]
