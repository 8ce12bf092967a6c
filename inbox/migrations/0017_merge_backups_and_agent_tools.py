"""Merges two lines of migrations written side by side: backups (issue 14) and the agent tools (issue 15).
Neither touches the other's tables; nothing to do but join them."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("inbox", "0011_backups_and_data_schedules"),
        ("inbox", "0016_canned_responses"),
    ]

    operations = []
