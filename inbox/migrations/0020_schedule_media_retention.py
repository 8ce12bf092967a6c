"""Media retention's schedule (inbox.retention), a row in django-celery-beat like the others: hourly.
Re-running is harmless."""

from django.db import migrations

from config.beat_migrations import interval_schedules

SCHEDULES = [
    # (name, task, every seconds)
    ("inbox: media retention", "inbox.tasks.media_retention_task", 3600),
]

create, remove = interval_schedules(SCHEDULES)


class Migration(migrations.Migration):
    dependencies = [
        ("inbox", "0019_safe_deletes_and_media_retention"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
