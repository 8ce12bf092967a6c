"""The webhook safety net's periodic schedule (beside the others, connections 0003): every enabled
endpoint with a due pending delivery gets a delivery task, in case the one enqueued on commit was lost."""

from django.db import migrations

from config.beat_migrations import interval_schedules

SCHEDULES = [
    ("api: webhook safety net", "api.tasks.webhook_safety_net_task", 60),
]

create, remove = interval_schedules(SCHEDULES)


class Migration(migrations.Migration):
    dependencies = [
        ("api", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
