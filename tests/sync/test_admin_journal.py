"""The journal in Django admin: error filter, decoded payload, the "reprocess" action."""

import pytest
from django.urls import reverse

from inbox.models import Message
from sync import events_builder as b
from sync.models import RawEvent
from tests.sync.helpers import feed, incoming

pytestmark = pytest.mark.django_db


def test_reprocess_action_retries_failed_rows(admin_client, acme_connection):
    feed(acme_connection, ("MessageEv", b"\x0a\x03bad"), incoming("OK1"))
    bad = RawEvent.objects.get(state="failed")
    url = reverse("admin:sync_rawevent_changelist")
    listing = admin_client.get(url, {"has_error": "yes"})
    assert listing.status_code == 200
    assert list(listing.context["cl"].queryset) == [bad]
    detail = admin_client.get(reverse("admin:sync_rawevent_change", args=[RawEvent.objects.get(state="processed").pk]))
    assert b"OK1" in detail.content  # the decoded protobuf is shown
    # The operator fixes nothing but reprocesses a processed row: idempotent, no duplicate message.
    ok = RawEvent.objects.get(state="processed")
    response = admin_client.post(url, {"action": "reprocess", "_selected_action": [ok.pk, bad.pk]}, follow=True)
    assert response.status_code == 200
    assert b"2 event(s) requeued and processed" in response.content
    assert Message.objects.filter(external_id="OK1").count() == 1
    bad.refresh_from_db()
    assert bad.state == "failed" and bad.attempts == 2
    ok.refresh_from_db()
    assert ok.state == "processed"


def test_unknown_event_names_are_shown_not_raised(admin_client, acme_connection):
    feed(acme_connection, ("MysteryEv", b"\x01"), b.connected_ev())
    row = RawEvent.objects.get(event_name="MysteryEv")
    page = admin_client.get(reverse("admin:sync_rawevent_change", args=[row.pk]))
    assert page.status_code == 200 and b"unknown event name" in page.content
