"""SyncRun routing and accounting on the live path (no explicit run): history, live, catch-up."""

import json
import logging

import pytest

from inbox.models import Contact, Conversation
from sync import events_builder as b
from sync.actions import do_record_jid_mappings
from sync.models import SyncRun
from tests.sync.helpers import LID_ANA, PN_ANA, T0, feed, incoming

pytestmark = pytest.mark.django_db


def test_history_live_and_catchup_runs_are_separate_and_balanced(acme_connection, caplog):
    chunk = b.history_sync_ev([b.history_conversation(PN_ANA, [b.web_message(PN_ANA, "H1", "velha", T0 - 50)])],
                              "FULL", chunk_order=1, progress=30)
    with caplog.at_level(logging.INFO, logger="sync"):
        feed(acme_connection, chunk, incoming("LIVE1", ts=T0))
        feed(acme_connection, b.offline_sync_preview_ev(total=2, messages=2), incoming("OFF1", ts=T0 + 1),
             b.message_ev("status@broadcast", PN_ANA, "ST", "x"), b.offline_sync_completed_ev(2))
        feed(acme_connection, b.history_sync_ev([], "FULL", chunk_order=2, progress=100))
    runs = {r.kind: r for r in SyncRun.objects.unscoped().all()}
    assert set(runs) == {"history", "live", "catchup"}
    history, live, catchup = runs["history"], runs["live"], runs["catchup"]
    assert (history.sync_type, history.chunks, history.progress, history.received, history.saved) == ("FULL", 2, 100, 1, 1)
    assert history.finished_at is not None
    assert (live.received, live.saved, live.finished_at) == (1, 1, None)  # live runs roll over hourly
    assert (catchup.received, catchup.saved, catchup.skipped, catchup.finished_at is not None) == (
        2, 1, {"status_broadcast": 1}, True)
    assert all(r.balanced and not r.discrepancy for r in runs.values())
    # Start and end are structured log lines (JSON through config.logging).
    events = [r.getMessage() for r in caplog.records]
    assert events.count("sync.run.started") == 3 and events.count("sync.run.finished") == 2
    from config.logging import JsonFormatter

    finished = next(r for r in caplog.records if r.getMessage() == "sync.run.finished")
    line = json.loads(JsonFormatter().format(finished))
    assert line["event"] == "sync.run.finished" and line["received"] == line["saved"] + line["duplicates"] + sum(
        line["skipped"].values()) + line["failed"]


def test_mappings_from_the_session_store_merge_contacts(acme_connection):
    feed(acme_connection, incoming("L1", chat=LID_ANA), incoming("P1", chat=PN_ANA))
    assert Contact.objects.unscoped().count() == 2
    assert do_record_jid_mappings(acme_connection, [(PN_ANA, LID_ANA)]) == {"mappings": 1, "merges": 2}
    assert Contact.objects.unscoped().count() == 1 and Conversation.objects.unscoped().get().messages.count() == 2
    with pytest.raises(ValueError, match="not a"):
        do_record_jid_mappings(acme_connection, [(LID_ANA, PN_ANA)])


def test_time_budget_stops_between_batches_and_says_there_is_more(acme_connection):
    from sync.processor import process_pending

    feed(acme_connection, *[incoming(f"TB{i}") for i in range(5)], process=False)
    first = process_pending(acme_connection.pk, batch_size=2, time_budget=0.0)
    assert first.more and first.processed == 0
    rest = process_pending(acme_connection.pk, batch_size=2)
    assert not rest.more and rest.processed == 5 and rest.batches == 3


def test_task_for_a_deleted_connection_is_a_logged_no_op(db):
    from sync.tasks import process_journal_task

    assert process_journal_task.run(987654) == {"connection_id": 987654, "missing": True}
