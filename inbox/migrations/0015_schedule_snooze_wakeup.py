"""The snooze safety net's schedule (inbox.snooze), a row in django-celery-beat like the others
(connections/migrations/0003_schedule_beat_tasks.py): every minute. Re-running is harmless."""

from django.db import migrations

from config.beat_migrations import interval_schedules

SCHEDULES = [
    # (name, task, every seconds)
    ("inbox: wake snoozed conversations", "inbox.tasks.wake_due_snoozes_task", 60),
]

create, remove = interval_schedules(SCHEDULES)


class Migration(migrations.Migration):
    dependencies = [
        ("inbox", "0014_snooze"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
