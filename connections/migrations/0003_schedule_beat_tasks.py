"""Periodic schedules, in one place: rows in django-celery-beat (editable in the admin).

supervise (stale heartbeats), the journal safety net (pending rows older than 30 s), and the slow
retry of failed connections. Re-running is harmless (get_or_create on the task name).
"""

from django.db import migrations

SCHEDULES = [
    # (name, task, every seconds)
    ("connections: supervise heartbeats", "connections.tasks.supervise_connections_task", 30),
    ("sync: journal safety net", "sync.tasks.journal_safety_net_task", 30),
    ("connections: slow retry of failed connections", "connections.tasks.retry_failed_connections_task", 300),
]


def create(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, seconds in SCHEDULES:
        interval, _ = IntervalSchedule.objects.get_or_create(every=seconds, period="seconds")
        PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, "interval": interval, "enabled": True})


def remove(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[name for name, _, _ in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("connections", "0002_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
