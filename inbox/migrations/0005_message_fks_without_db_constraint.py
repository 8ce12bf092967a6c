"""A message's conversation and sender_user foreign keys lose their database constraint (ADR-6).

Each deferred FK check is a query per inserted row at commit: ~4 us of every history message
(bench/ingest.py: commit 0.53 s -> 0.07 s for 100,000 messages). The relations stay ORM foreign keys.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("inbox", "0004_message_denormalised_fks_without_db_constraint"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="message",
            name="conversation",
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                    related_name="messages", to="inbox.conversation"),
        ),
        migrations.AlterField(
            model_name="message",
            name="sender_user",
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False,
                                    help_text="the agent who wrote an outbound reply", null=True,
                                    on_delete=django.db.models.deletion.SET_NULL, related_name="+",
                                    to=settings.AUTH_USER_MODEL),
        ),
    ]
