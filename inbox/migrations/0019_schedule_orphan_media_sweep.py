"""The daily sweep of stored media files no row names (inbox.media.sweep_orphan_files), a row in
django-celery-beat like the other schedules. Re-running is harmless."""

from django.db import migrations

from config.beat_migrations import interval_schedules

SCHEDULES = [
    # (name, task, every seconds)
    ("inbox: sweep orphan media files", "inbox.tasks.sweep_orphan_media_task", 24 * 3600),
]

create, remove = interval_schedules(SCHEDULES)


class Migration(migrations.Migration):
    dependencies = [
        ("inbox", "0018_merge_media"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
