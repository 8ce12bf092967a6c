"""BackupRun, the "backup" alert kind, and the beat schedules of issue 14's data jobs.

Schedules (django-celery-beat rows, editable in the admin; re-running is harmless):
- "inbox: daily tenant backups": ``inbox.tasks.backup_tenants_task`` at 03:15 UTC (a crontab);
- "sync: journal retention": ``sync.tasks.prune_journal_task`` every hour.
"""

import django.db.models.deletion
from django.db import migrations, models

SCHEDULE_NAMES = ["inbox: daily tenant backups", "sync: journal retention"]


def create_schedules(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    daily, _ = CrontabSchedule.objects.get_or_create(minute="15", hour="3", day_of_week="*", day_of_month="*",
                                                     month_of_year="*", timezone="UTC")
    PeriodicTask.objects.get_or_create(name=SCHEDULE_NAMES[0], defaults={
        "task": "inbox.tasks.backup_tenants_task", "crontab": daily, "enabled": True})
    hourly, _ = IntervalSchedule.objects.get_or_create(every=3600, period="seconds")
    PeriodicTask.objects.get_or_create(name=SCHEDULE_NAMES[1], defaults={
        "task": "sync.tasks.prune_journal_task", "interval": hourly, "enabled": True})


def remove_schedules(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name__in=SCHEDULE_NAMES).delete()



class Migration(migrations.Migration):

    dependencies = [
        ('inbox', '0010_merge_integrity_and_alerts'),
    ]

    operations = [
        migrations.AlterField(
            model_name='alert',
            name='kind',
            field=models.CharField(choices=[('connection_failed', 'Connection failed'), ('logged_out', 'Logged out on the phone'), ('banned', 'Temporarily banned'), ('stream_replaced', 'Session opened elsewhere'), ('sync_discrepancy', 'Sync discrepancy'), ('journal_quarantine', 'Event quarantined'), ('number_down', 'Number down'), ('journal_failed', 'Journal rows failed'), ('platform', 'Platform process down'), ('backup', 'Backup failed or late'), ('other', 'Other')], max_length=32),
        ),
        migrations.CreateModel(
            name='BackupRun',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('tenant_slug', models.CharField(max_length=60)),
                ('status', models.CharField(choices=[('running', 'Running'), ('ok', 'OK'), ('failed', 'Failed')], default='running', max_length=8)),
                ('started_at', models.DateTimeField()),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('path', models.CharField(blank=True, max_length=500)),
                ('size', models.BigIntegerField(blank=True, help_text='bytes', null=True)),
                ('rows', models.JSONField(blank=True, default=dict, help_text='{member: rows}')),
                ('error', models.TextField(blank=True)),
                ('tenant', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='inbox.tenant')),
            ],
            options={
                'indexes': [models.Index(fields=['tenant_slug', '-started_at'], name='backuprun_tenant_time')],
            },
        ),
        migrations.RunPython(create_schedules, remove_schedules),
    ]
