"""The journal in Django admin: error filter, decoded payload, the "reprocess" action."""

import pytest
from django.urls import reverse
from django.utils import timezone

from inbox.models import Message
from sync import events_builder as b
from sync.models import RawEvent
from tests.sync.helpers import feed, incoming

pytestmark = pytest.mark.django_db


def test_reprocess_action_retries_failed_rows(admin_client, acme_connection):
    feed(acme_connection, ("MessageEv", b"\x0a\x03bad"), incoming("OK1"))
    bad = RawEvent.objects.unscoped().get(state="failed")
    url = reverse("admin:sync_rawevent_changelist")
    listing = admin_client.get(url, {"has_error": "yes"})
    assert listing.status_code == 200
    assert list(listing.context["cl"].queryset) == [bad]
    detail = admin_client.get(reverse("admin:sync_rawevent_change", args=[RawEvent.objects.unscoped().get(state="processed").pk]))
    assert b"OK1" in detail.content  # the decoded protobuf is shown
    # The operator fixes nothing but reprocesses a processed row: idempotent, no duplicate message.
    ok = RawEvent.objects.unscoped().get(state="processed")
    response = admin_client.post(url, {"action": "reprocess", "_selected_action": [ok.pk, bad.pk]}, follow=True)
    assert response.status_code == 200
    assert b"2 events requeued and processed" in response.content
    assert Message.objects.unscoped().filter(external_id="OK1").count() == 1
    bad.refresh_from_db()
    assert bad.state == "failed" and bad.attempts == 2
    ok.refresh_from_db()
    assert ok.state == "processed"


def test_unknown_event_names_are_shown_not_raised(admin_client, acme_connection):
    feed(acme_connection, ("MysteryEv", b"\x01"), b.connected_ev())
    row = RawEvent.objects.unscoped().get(event_name="MysteryEv")
    page = admin_client.get(reverse("admin:sync_rawevent_change", args=[row.pk]))
    assert page.status_code == 200 and b"unknown event name" in page.content


def test_search_backlog_is_listed_and_indexed_on_demand(admin_client, acme_connection):
    from inbox.models import MessageSearchEntry
    from sync.models import SearchBacklog
    from sync.search_index import INLINE_LIMIT
    from tests.sync.helpers import PN_ANA, T0

    n = INLINE_LIMIT + 1
    msgs = [b.web_message(PN_ANA, f"AB{i:04d}", f"antigo {i}", T0 + i) for i in range(n)]
    feed(acme_connection, b.history_sync_ev([b.history_conversation(PN_ANA, msgs)], "FULL", chunk_order=1))
    item = SearchBacklog.objects.unscoped().get()
    url = reverse("admin:sync_searchbacklog_changelist")
    assert list(admin_client.get(url).context["cl"].queryset) == [item]
    response = admin_client.post(url, {"action": "index_now", "_selected_action": [item.pk]}, follow=True)
    assert f"{n} messages added to the search.".encode() in response.content
    assert MessageSearchEntry.objects.unscoped().count() == n and not SearchBacklog.objects.unscoped().exists()


def test_a_requeued_quarantined_row_gets_its_attempts_back(admin_client, acme_connection):
    """Reprocessing a quarantined row starts its count again: one more failure makes it "failed"
    (retried with backoff), not quarantined at once."""
    from sync.processor import MAX_ATTEMPTS, process_pending

    feed(acme_connection, ("MessageEv", b"\x0a\x03bad"))
    bad = RawEvent.objects.unscoped().get()
    for _ in range(MAX_ATTEMPTS - 1):  # the retries, made due at once
        RawEvent.objects.unscoped().filter(pk=bad.pk).update(next_attempt_at=timezone.now())
        process_pending(acme_connection.pk)
    bad.refresh_from_db()
    assert bad.state == "quarantined" and bad.attempts == MAX_ATTEMPTS
    url = reverse("admin:sync_rawevent_changelist")
    admin_client.post(url, {"action": "reprocess", "_selected_action": [bad.pk]}, follow=True)
    bad.refresh_from_db()
    assert bad.state == "failed" and bad.attempts == 1


def test_message_admin_finds_text_through_the_search_table_not_a_body_scan(admin_client, acme_connection):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    feed(acme_connection, incoming("TXT1", text="the blue kettle leaks"), incoming("TXT2", text="all good"))
    url = reverse("admin:inbox_message_changelist")
    with CaptureQueriesContext(connection) as queries:
        found = admin_client.get(url, {"q": "Blue Kettle"})
    assert [m.external_id for m in found.context["cl"].queryset] == ["TXT1"]
    assert not any('UPPER("inbox_message"."body"' in q["sql"] for q in queries.captured_queries)
    assert any('FROM "inbox_messagesearchentry"' in q["sql"] for q in queries.captured_queries)
    assert [m.external_id for m in admin_client.get(url, {"q": "TXT2"}).context["cl"].queryset] == ["TXT2"]
    assert not admin_client.get(url, {"q": "teapot"}).context["cl"].queryset.exists()
