"""Periodic schedules, in one place: rows in django-celery-beat (editable in the admin).

supervise (stale heartbeats), the journal safety net (pending rows older than 30 s), and the slow
retry of failed connections. Re-running is harmless (get_or_create on the task name).
"""

from django.db import migrations

from config.beat_migrations import interval_schedules

SCHEDULES = [
    # (name, task, every seconds)
    ("connections: supervise heartbeats", "connections.tasks.supervise_connections_task", 30),
    ("sync: journal safety net", "sync.tasks.journal_safety_net_task", 30),
    ("connections: slow retry of failed connections", "connections.tasks.retry_failed_connections_task", 300),
]

create, remove = interval_schedules(SCHEDULES)


class Migration(migrations.Migration):
    dependencies = [
        ("connections", "0002_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
