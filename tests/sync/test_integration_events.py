"""The sync engine's integration events (inbox.integrations): one recording per ingested batch, the batch's
new messages before what its operations changed, in the batch's transaction; delivered here as the api app's
webhook deliveries (its registered recorder)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from api import webhooks
from api.models import WebhookDelivery, WebhookEndpoint
from sync import events_builder as b
from tests.sync.helpers import PN_ANA, feed, from_phone, incoming

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch, settings):
    settings.OUTBOUND_ALLOW_PRIVATE_ADDRESSES = True
    monkeypatch.setattr(webhooks, "enqueue_deliveries", lambda ids, countdown=None: None)


def recorded(tenant):
    return list(WebhookDelivery.objects.for_tenant(tenant).order_by("id").values_list("event", "object_id"))


def endpoint_reads(queries) -> int:
    return sum(WebhookEndpoint._meta.db_table in q["sql"] for q in queries)


def test_a_batch_records_its_messages_then_its_changes_with_one_read_of_the_endpoints(acme, acme_connection):
    webhooks.check_create_endpoint(acme, url="http://127.0.0.1:9/hook", events=list(webhooks.EVENTS))
    feed(acme_connection, incoming("IN1", "first"), from_phone("OUT1", "from the phone"))
    with CaptureQueriesContext(connection) as queries:
        feed(acme_connection,
             b.receipt_ev(PN_ANA, ["OUT1"], "read"),
             incoming("IN2", "second", ts=1_760_000_100),
             b.message_ev(PN_ANA, PN_ANA, "ED1", b.edit("IN1", "first, edited", PN_ANA, target_from_me=False),
                          1_760_000_110_000))
    assert endpoint_reads(queries.captured_queries) == 1
    events = [e for e, _ in recorded(acme)]
    assert events[:2] == ["message.received", "message.sent"]
    # The batch's new message first, then what its operations changed, in journal order.
    assert events[2:] == ["message.received", "message.status", "message.edited"]


def test_a_history_batch_and_a_batch_without_events_never_read_the_endpoints(acme, acme_connection):
    webhooks.check_create_endpoint(acme, url="http://127.0.0.1:9/hook", events=list(webhooks.EVENTS))
    with CaptureQueriesContext(connection) as queries:
        feed(acme_connection, b.history_sync_ev([b.history_conversation(
            PN_ANA, [b.web_message(PN_ANA, "OLD1", "old"), b.web_message(PN_ANA, "OLD2", "older")])]))
        feed(acme_connection, b.receipt_ev(PN_ANA, ["OLD1"], "read"))  # an inbound message: no status to move
    assert endpoint_reads(queries.captured_queries) == 0
    assert recorded(acme) == []


def test_without_a_recorder_the_core_records_nothing_and_works(acme, acme_connection, monkeypatch):
    from inbox import integrations

    monkeypatch.setattr(integrations, "_recorders", [])
    webhooks.check_create_endpoint(acme, url="http://127.0.0.1:9/hook", events=list(webhooks.EVENTS))
    summary = feed(acme_connection, incoming("IN1", "hello"))
    assert summary.saved == 1
    assert recorded(acme) == []
