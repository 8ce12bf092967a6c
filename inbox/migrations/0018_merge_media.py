"""Joins the media migration (issue 13), written beside the backups and agent-tools lines; no operations."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("inbox", "0011_media_files"),
        ("inbox", "0017_merge_backups_and_agent_tools"),
    ]

    operations = []
