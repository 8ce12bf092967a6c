"""Journal retention (sync/retention.py): old processed rows pruned in batches, everything else kept."""

from datetime import timedelta

import pytest
from django.utils import timezone

from inbox.models import Message
from sync.models import PendingOperation, RawEvent
from sync.retention import prune_processed_events
from sync.tasks import prune_journal_task
from tests.factories import ConnectionFactory
from tests.sync.helpers import feed, incoming


def journal(conn, n, *, state, age_days, start=0):
    when = timezone.now() - timedelta(days=age_days)
    rows = [RawEvent(tenant=conn.tenant, connection=conn, event_name="MessageEv", payload=b"x", digest=f"{state}-{start + i}",
                     state=state, received_at=when, processed_at=when if state == "processed" else None)
            for i in range(n)]
    RawEvent.objects.bulk_create(rows)
    return rows


@pytest.mark.django_db
@pytest.mark.smoke
def test_old_processed_rows_go_in_batches_and_the_rest_stays(acme, settings):
    settings.JOURNAL_RETENTION_DAYS = 30
    a, b = ConnectionFactory(tenant=acme), ConnectionFactory(tenant=acme)
    journal(a, 7, state="processed", age_days=40)
    journal(b, 3, state="processed", age_days=40, start=100)
    recent = journal(a, 2, state="processed", age_days=5, start=200)
    failed = journal(a, 2, state="failed", age_days=40, start=300)
    quarantined = journal(a, 1, state="quarantined", age_days=40, start=400)
    pending = journal(a, 1, state="pending", age_days=40, start=500)

    summary = prune_processed_events(batch=3)
    assert summary.deleted == 10 and summary.connections == {a.pk: 7, b.pk: 3} and not summary.more
    kept = set(RawEvent.objects.unscoped().values_list("digest", flat=True))
    assert kept == {r.digest for r in recent + failed + quarantined + pending}
    assert prune_processed_events().deleted == 0


@pytest.mark.django_db
def test_a_time_budget_leaves_the_rest_for_the_next_run_and_zero_days_keeps_everything(acme, settings):
    conn = ConnectionFactory(tenant=acme)
    journal(conn, 5, state="processed", age_days=400)
    settings.JOURNAL_RETENTION_DAYS = 0
    assert prune_journal_task()["deleted"] == 0
    settings.JOURNAL_RETENTION_DAYS = 1
    assert prune_processed_events(time_budget=0).more
    assert RawEvent.objects.unscoped().count() == 5
    assert prune_processed_events(batch=2).deleted == 5


@pytest.mark.django_db
def test_pruning_keeps_messages_and_unlinks_pending_operations(acme_connection, settings):
    settings.JOURNAL_RETENTION_DAYS = 1
    feed(acme_connection, incoming("R1", "kept"))
    row = RawEvent.objects.unscoped().get(connection=acme_connection)
    assert row.state == "processed"
    op = PendingOperation.objects.create(tenant=acme_connection.tenant, connection=acme_connection, kind="receipt",
                                         target_external_id="later", raw_event=row, digest="op-1")
    RawEvent.objects.unscoped().filter(pk=row.pk).update(processed_at=timezone.now() - timedelta(days=2))
    assert prune_processed_events().deleted == 1
    assert Message.objects.for_tenant(acme_connection.tenant).filter(external_id="R1").exists()
    op.refresh_from_db()
    assert op.raw_event_id is None
