"""Periodic schedules as rows in django-celery-beat, written by migrations (editable in the admin).

``interval_schedules(SCHEDULES)`` gives a migration the ``RunPython`` pair for (name, task, every seconds)
tuples: get_or_create on the task name, so re-running is harmless; the reverse deletes them by name.
"""


def interval_schedules(schedules):
    def create(apps, schema_editor):
        IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
        PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
        for name, task, seconds in schedules:
            interval, _ = IntervalSchedule.objects.get_or_create(every=seconds, period="seconds")
            PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, "interval": interval, "enabled": True})

    def remove(apps, schema_editor):
        PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
        PeriodicTask.objects.filter(name__in=[name for name, _, _ in schedules]).delete()

    return create, remove
