"""Bad input: the row fails (or is stored with a clear error), later events still flow, runs count it."""

from datetime import timedelta

import pytest
from django.utils import timezone

from inbox.models import Alert, Message
from sync import events_builder as b
from sync.models import RawEvent, SyncRun
from sync.processor import MAX_ATTEMPTS, process_pending
from sync.selectors import sync_report
from tests.sync.helpers import PN_ANA, feed, incoming

pytestmark = pytest.mark.django_db


def _bytes(ev):
    return b.serialize(ev)[1]


@pytest.mark.smoke
def test_corrupt_unknown_and_wrong_type_payloads_fail_alone(acme_connection):
    bad = [
        ("MessageEv", _bytes(incoming("TRUNC", "x" * 50))[:-7]),  # truncated protobuf
        ("MysteryEv", b"\x08\x01"),  # unknown event name
        ("MessageEv", _bytes(b.receipt_ev(PN_ANA, ["A"], "read"))),  # a ReceiptEv's bytes labelled MessageEv
        ("MessageEv", b""),  # empty: parses, but required fields are missing
    ]
    summary = feed(acme_connection, ("MessageEv", _bytes(incoming("OK-1", "antes"))), *bad,
                   ("MessageEv", _bytes(incoming("OK-2", "depois"))))
    assert set(Message.objects.unscoped().values_list("external_id", flat=True)) == {"OK-1", "OK-2"}
    assert summary.processed == 2 and summary.failed == 4
    rows = list(RawEvent.objects.unscoped().filter(state="failed").order_by("id"))
    # nothing lost: the exact bytes stay in the journal for a fix and a replay
    assert [(r.event_name, bytes(r.payload)) for r in rows] == bad
    errors = [r.error for r in rows]
    assert "payload is not a valid neonize.Message" in errors[0]
    assert errors[1] == "unknown event name 'MysteryEv'"
    assert "payload is not a valid neonize.Message" in errors[2]
    assert "lacks required fields (Info" in errors[3]
    for row in rows:
        assert row.attempts == 1 and row.next_attempt_at > timezone.now()
    run = SyncRun.objects.unscoped().get(pk=summary.run_ids[0])
    assert run.failed == 4 and run.received == 6 and run.saved == 2 and run.balanced


def test_invalid_utf8_is_replaced_and_noted_on_the_row(acme_connection):
    data = _bytes(incoming("UTF", "XXXX-texto"))
    data = data.replace(b"XXXX", b"\xff\xfe\xfdX")
    feed(acme_connection, ("MessageEv", data))
    msg = Message.objects.unscoped().get(external_id="UTF")
    assert msg.body == "\ufffd\ufffd\ufffdX-texto"
    row = RawEvent.objects.unscoped().get()
    assert row.state == "processed" and "invalid UTF-8" in row.error


def test_one_megabyte_text_is_stored_cut_with_a_clear_note(acme_connection):
    feed(acme_connection, incoming("BIG", "a" * 1_000_000), incoming("AFTER", "ok"))
    big = Message.objects.unscoped().get(external_id="BIG")
    assert len(big.body) == 65_536 and big.extra["truncated_from"] == 1_000_000
    assert len(big.conversation.last_message_preview) <= 200
    row = RawEvent.objects.unscoped().get(digest__isnull=False, payload__isnull=False, error__contains="cut")
    assert "1000000 characters cut" in row.error and row.state == "processed"
    assert Message.objects.unscoped().filter(external_id="AFTER").exists()


def test_a_row_that_breaks_ingestion_is_isolated_from_its_batch(acme_connection):
    # A chat JID longer than the column: the database refuses it; only that row fails.
    too_long = "9" * 200 + "@s.whatsapp.net"
    summary = feed(acme_connection, incoming("BAD", "x", chat=too_long), incoming("A1", "um"), incoming("A2", "dois"))
    assert set(Message.objects.unscoped().values_list("external_id", flat=True)) == {"A1", "A2"}
    assert summary.failed == 1
    row = RawEvent.objects.unscoped().get(state="failed")
    assert row.error.startswith("ingest error:")
    run = SyncRun.objects.unscoped().get(pk=row.sync_run_id)
    assert (run.received, run.saved, run.failed) == (3, 2, 1) and run.balanced


def test_failed_row_is_retried_then_quarantined_with_an_alert(acme_connection):
    feed(acme_connection, ("MessageEv", b"\x0a\x05broken"))
    row = RawEvent.objects.unscoped().get()
    for attempt in range(2, MAX_ATTEMPTS + 1):
        RawEvent.objects.unscoped().filter(pk=row.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
        process_pending(acme_connection.pk, wait=True)
        row.refresh_from_db()
        assert row.attempts == attempt
    assert row.state == "quarantined"
    alert = Alert.objects.unscoped().get(kind="journal_quarantine")
    assert f"#{row.pk}" in alert.message
    # later events keep flowing
    feed(acme_connection, incoming("LATER"))
    assert Message.objects.unscoped().filter(external_id="LATER").exists()
    report = sync_report(acme_connection)
    assert report["journal"]["quarantined"] == 1 and report["quarantined_events"][0]["id"] == row.pk
    # a failed row counts once in its run, not once per attempt
    assert sum(SyncRun.objects.unscoped().values_list("failed", flat=True)) == 1


def test_discrepancy_is_flagged_logged_and_alerted(acme_connection, caplog):
    from django.db import transaction

    from sync.processor import finish_run, start_run

    with transaction.atomic():
        run = start_run(acme_connection, SyncRun.Kind.HISTORY)
    SyncRun.objects.unscoped().filter(pk=run.pk).update(received=10, saved=7, duplicates=1)
    with caplog.at_level("INFO", logger="sync.processor"), transaction.atomic():
        run = finish_run(run)
    assert run.discrepancy
    assert Alert.objects.unscoped().get(kind="sync_discrepancy").connection == acme_connection
    records = {r.getMessage(): r for r in caplog.records}
    assert records["sync.run.discrepancy"].levelname == "ERROR" and records["sync.run.discrepancy"].received == 10
    assert records["sync.run.finished"].saved == 7


def test_history_sync_without_its_envelope_fails_clearly(acme_connection):
    summary = feed(acme_connection, ("HistorySyncEv", b""), ("HistorySyncEv", _bytes(incoming("NOT-HISTORY"))))
    assert summary.failed == 2
    errors = sorted(RawEvent.objects.unscoped().values_list("error", flat=True))
    assert all("HistorySyncEv" in e for e in errors), errors
