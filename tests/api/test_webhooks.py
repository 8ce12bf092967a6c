"""Webhooks in one process: which changes record which events (and for whom), signing, and delivery to
a real local HTTP receiver (order per conversation, retries, giving up, disabling, redelivery).
tests/api/test_webhooks_worker.py runs the same path through a real Celery worker."""

import base64
import json
import time

import pytest
from django.db import transaction

from api import webhooks
from api.models import WebhookDelivery, WebhookEndpoint
from connections import actions as connection_actions
from connections.outbox import claim_outbound, do_mark_sent, do_record_send_failure
from inbox import actions
from inbox.alerts import do_raise_alert
from inbox.models import Alert, Conversation
from sync import events_builder as b
from tests.api.receiver import Receiver
from tests.factories import ConversationFactory, TenantFactory
from tests.sync.helpers import PN_ANA, feed, from_phone, incoming

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch, settings):
    """Delivery runs in the test (deliver_pending), not in a worker a later test might start."""
    settings.OUTBOUND_ALLOW_PRIVATE_ADDRESSES = True
    settings.WEBHOOK_RETRY_BASE_SECONDS = 0.05
    settings.WEBHOOK_RETRY_CAP_SECONDS = 0.2
    enqueued = []
    monkeypatch.setattr(webhooks, "enqueue_deliveries",
                        lambda targets, countdown=None, wait=0.0: enqueued.append(list(targets)))
    return enqueued


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def endpoint_for(tenant, url="http://127.0.0.1:9/hook", events=tuple(webhooks.EVENTS)):
    return webhooks.check_create_endpoint(tenant, url=url, events=list(events))


def recorded(tenant) -> list[tuple[str, int]]:
    return list(WebhookDelivery.objects.for_tenant(tenant).order_by("id").values_list("event", "object_id"))


def deliver_all(endpoint, timeout=10.0):
    deadline = time.monotonic() + timeout
    while WebhookDelivery.objects.for_tenant(endpoint.tenant_id).filter(endpoint=endpoint, status="pending").exists():
        assert time.monotonic() < deadline, "deliveries still pending"
        webhooks.deliver_pending(endpoint.pk, budget_seconds=5)
        endpoint.refresh_from_db()
        if not endpoint.enabled:
            break
        time.sleep(0.02)


# --- what records what ------------------------------------------------------------------------------

def test_inbox_actions_record_conversation_events(acme, acme_agent, acme_connection, _no_broker,
                                                  django_capture_on_commit_callbacks):
    endpoint = endpoint_for(acme)
    conversation = ConversationFactory(connection=acme_connection)
    with django_capture_on_commit_callbacks(execute=True):
        actions.do_assign_conversation(conversation, acme_agent)
        actions.do_set_conversation_status(conversation, "resolved")
    assert recorded(acme) == [("conversation.assigned", conversation.pk), ("conversation.status", conversation.pk)]
    deliveries = list(WebhookDelivery.objects.for_tenant(acme).order_by("id"))
    assert deliveries[0].data == {"assignee_id": acme_agent.pk} and deliveries[1].data == {"status": "resolved"}
    assert {d.ordering_key for d in deliveries} == {f"conversation:{conversation.pk}"}
    partition = webhooks.partition_of(webhooks.shard_of(f"conversation:{conversation.pk}"))
    assert _no_broker == [[(endpoint.pk, partition)]] * 2  # one task per endpoint and partition, on commit


def test_nothing_is_recorded_without_an_endpoint_for_the_event_or_when_rolled_back(acme, globex, acme_connection):
    conversation = ConversationFactory(connection=acme_connection)
    actions.do_set_conversation_status(conversation, "pending")
    assert recorded(acme) == []
    endpoint_for(acme, events=["message.received"])
    endpoint_for(globex)  # another tenant's endpoint hears nothing of Acme
    actions.do_set_conversation_status(conversation, "resolved")
    assert recorded(acme) == [] and recorded(globex) == []
    disabled = endpoint_for(acme)
    webhooks.do_set_endpoint_enabled(disabled, False)
    actions.do_set_conversation_status(conversation, "open")
    assert recorded(acme) == []
    webhooks.do_set_endpoint_enabled(disabled, True)
    with pytest.raises(RuntimeError), transaction.atomic():
        actions.do_set_conversation_status(conversation, "resolved")
        raise RuntimeError("the writer's transaction rolls back")
    assert recorded(acme) == []


def test_the_sync_records_received_sent_status_edited_and_deleted(acme, acme_connection):
    endpoint_for(acme)
    feed(acme_connection, incoming("IN1", "hello"), from_phone("OUT1", "from the phone"))
    events = recorded(acme)
    assert [e for e, _ in events] == ["message.received", "message.sent"]
    feed(acme_connection,
         b.receipt_ev(PN_ANA, ["OUT1"], "delivered"),
         b.message_ev(PN_ANA, PN_ANA, "ED1", b.edit("IN1", "hello, edited", PN_ANA, target_from_me=False),
                      1_760_000_010_000),
         b.message_ev(PN_ANA, PN_ANA, "RV1", b.revoke("IN1", PN_ANA, target_from_me=False), 1_760_000_020_000))
    later = [e for e, _ in recorded(acme)[2:]]
    assert later == ["message.status", "message.edited", "message.deleted"]
    status = WebhookDelivery.objects.for_tenant(acme).get(event="message.status")
    assert status.data == {"status": "delivered"}
    # A history sync is not "received": its messages were received long ago.
    feed(acme_connection, b.history_sync_ev([b.history_conversation(
        PN_ANA, [b.web_message(PN_ANA, "OLD1", "old")])]))
    assert len(recorded(acme)) == 5


def test_the_outbox_records_sent_and_failed(acme, acme_connection):
    endpoint_for(acme)
    conversation = ConversationFactory(connection=acme_connection)
    first = actions.do_queue_reply(conversation, None, "one")
    [claimed] = claim_outbound(acme_connection.pk)
    do_mark_sent(claimed, "WA-1", claimed.sent_at)
    second = actions.do_queue_reply(conversation, None, "two")
    [claimed] = claim_outbound(acme_connection.pk)
    do_record_send_failure(claimed, "no route", retryable=False)
    assert recorded(acme) == [("message.sent", first.pk), ("message.status", second.pk)]
    assert WebhookDelivery.objects.for_tenant(acme).get(object_id=second.pk).data["status"] == "failed"


def test_number_status_and_alerts_are_recorded(acme, acme_connection):
    endpoint_for(acme)
    connection_actions.do_set_status(acme_connection, "connected")
    connection_actions.do_set_status(acme_connection, "connected")  # no change, no event
    do_raise_alert(f"connection:{acme_connection.pk}:down", kind="number_down", message="down", tenant_id=acme.pk,
                   connection_id=acme_connection.pk)
    do_raise_alert(f"connection:{acme_connection.pk}:down", kind="number_down", message="still", tenant_id=acme.pk)
    alert = Alert.objects.for_tenant(acme).get()
    assert recorded(acme) == [("number.status", acme_connection.pk), ("alert.raised", alert.pk)]


# --- signing ----------------------------------------------------------------------------------------

def test_signatures_verify_and_refuse_tampering_and_replays():
    body = b'{"event":"message.received"}'
    now = int(time.time())
    header = webhooks.sign("whsec_x", now, body)
    assert webhooks.verify_signature("whsec_x", header, body)
    assert not webhooks.verify_signature("whsec_y", header, body)
    assert not webhooks.verify_signature("whsec_x", header, body + b" ")
    assert not webhooks.verify_signature("whsec_x", header, body, now=now + 301)  # replayed later
    assert not webhooks.verify_signature("whsec_x", "garbage", body)


def test_endpoint_urls_go_through_the_ssrf_guard(acme, settings):
    settings.OUTBOUND_ALLOW_PRIVATE_ADDRESSES = False
    for url in ["http://127.0.0.1:8000/hook", "http://169.254.169.254/latest", "ftp://example.com/x"]:
        with pytest.raises(webhooks.EndpointRefused):
            endpoint_for(acme, url=url)
    with pytest.raises(webhooks.EndpointRefused):
        webhooks.check_create_endpoint(acme, url="https://example.com/x", events=["no.such.event"])
    assert not WebhookEndpoint.objects.for_tenant(acme).exists()


# --- delivery ---------------------------------------------------------------------------------------

@pytest.mark.smoke  # SQLite too: bulk_update instead of PostgreSQL's UPDATE ... FROM, Mod on shards
def test_delivery_is_signed_retried_after_500s_and_in_order_per_conversation(acme, acme_connection, settings):
    settings.WEBHOOK_PARTITIONS = 1  # both conversations in one partition: A's retries must not hold B there
    conv_a = ConversationFactory(connection=acme_connection)
    conv_b = ConversationFactory(connection=acme_connection)
    failing_a = {"left": 2}

    def answer(n, body):
        conversation = body["data"]["conversation"]["id"]
        if conversation == conv_a.pk and failing_a["left"]:
            failing_a["left"] -= 1
            return 500
        return 204

    receiver = Receiver(answer)
    try:
        endpoint = endpoint_for(acme, url=receiver.url)
        for status in ["pending", "resolved", "open"]:
            actions.do_set_conversation_status(conv_a, status)
            actions.do_set_conversation_status(conv_b, status)
        deliver_all(endpoint)
        for request in receiver.requests:
            assert webhooks.verify_signature(endpoint.secret, request["headers"]["X-Inbox-Signature"], request["raw"])
            assert request["headers"]["X-Inbox-Event"] == "conversation.status"
        accepted = receiver.accepted()
        for conv in (conv_a, conv_b):
            statuses = [p["data"]["status"] for p in accepted if p["data"]["conversation"]["id"] == conv.pk]
            assert statuses == ["pending", "resolved", "open"]
        # B did not wait for A's retries; A's first event was retried with the same body and id.
        bodies = [r["raw"] for r in receiver.requests]
        assert receiver.requests[0]["body"]["data"]["conversation"]["id"] == conv_a.pk and receiver.answers[0] == 500
        assert bodies.count(bodies[0]) == 3  # retried twice with the same bytes (and event id)
        assert receiver.requests[1]["body"]["data"]["conversation"]["id"] == conv_b.pk  # B went on meanwhile
        log = WebhookDelivery.objects.for_tenant(acme).order_by("id")
        assert [d.status for d in log] == ["succeeded"] * 6
        assert [(d.attempts, d.response_code) for d in log if d.object_id == conv_a.pk][0] == (3, 204)
        assert WebhookEndpoint.objects.for_tenant(acme).get().consecutive_failures == 0
    finally:
        receiver.close()


def test_a_delivery_is_given_up_after_the_last_attempt_and_can_be_redelivered(acme, acme_connection, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    answers = iter([500, 500, 204, 204])
    receiver = Receiver(lambda n, body: next(answers))
    try:
        endpoint = endpoint_for(acme, url=receiver.url)
        conversation = ConversationFactory(connection=acme_connection)
        actions.do_set_conversation_status(conversation, "resolved")
        actions.do_set_conversation_status(conversation, "open")
        deliver_all(endpoint)
        gave_up, delivered = WebhookDelivery.objects.for_tenant(acme).order_by("id")
        assert (gave_up.status, gave_up.attempts, gave_up.response_code) == ("failed", 2, 500)
        assert delivered.status == "succeeded"
        again = webhooks.do_redeliver(gave_up)
        deliver_all(endpoint)
        again.refresh_from_db()
        assert again.status == "succeeded" and again.redelivery_of_id == gave_up.pk
        assert receiver.requests[-1]["raw"] == receiver.requests[0]["raw"]  # the same body, the same event id
    finally:
        receiver.close()


def test_an_endpoint_failing_again_and_again_is_disabled_with_an_alert(acme, acme_connection, settings):
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 3
    receiver = Receiver(lambda n, body: 503)
    try:
        endpoint = endpoint_for(acme, url=receiver.url, events=["conversation.status"])
        conversations = [ConversationFactory(connection=acme_connection) for _ in range(4)]
        for conversation in conversations:
            actions.do_set_conversation_status(conversation, "resolved")
        deliver_all(endpoint)
        endpoint.refresh_from_db()
        assert not endpoint.enabled and "3 failed attempts" in endpoint.disabled_reason
        assert len(receiver.requests) == 3  # nothing after the third failure
        alert = Alert.objects.for_tenant(acme).get(cause=f"webhook:{endpoint.pk}:disabled")
        assert endpoint.url in alert.message
        # Disabled: new events are not recorded; the pending ones wait and go once it is enabled again.
        actions.do_set_conversation_status(conversations[0], "open")
        assert WebhookDelivery.objects.for_tenant(acme).count() == 4
        receiver_ok = Receiver()
        try:
            WebhookEndpoint.objects.for_tenant(acme).filter(pk=endpoint.pk).update(url=receiver_ok.url)
            endpoint.refresh_from_db()
            webhooks.do_set_endpoint_enabled(endpoint, True)
            deliver_all(endpoint)
            assert len(receiver_ok.requests) == 4
        finally:
            receiver_ok.close()
    finally:
        receiver.close()


def test_payloads_use_the_apis_shapes(acme, acme_connection, receiver):
    endpoint = endpoint_for(acme, url=receiver.url)
    feed(acme_connection, incoming("IN9", "where is my order?"))
    deliver_all(endpoint)
    [payload] = receiver.accepted()
    message = payload["data"]["message"]
    assert payload["event"] == "message.received" and payload["id"].startswith("evt_")
    assert message["body"] == "where is my order?" and message["whatsapp_id"] == "IN9"
    conversation = Conversation.objects.for_tenant(acme).get()
    assert message["conversation_id"] == conversation.pk


def test_another_tenants_endpoint_lock_and_rows_are_apart(acme, acme_connection):
    other = TenantFactory()
    endpoint_for(other)
    endpoint = endpoint_for(acme)
    actions.do_set_conversation_status(ConversationFactory(connection=acme_connection), "resolved")
    assert WebhookDelivery.objects.for_tenant(other).count() == 0
    assert WebhookDelivery.objects.for_tenant(acme).get().endpoint_id == endpoint.pk


# --- fan-out: partitions, batches, pooled connections -------------------------------------------------

@pytest.mark.smoke  # SQLite too: bulk_update instead of PostgreSQL's UPDATE ... FROM, Mod on shards
def test_a_batching_endpoint_gets_signed_arrays_in_order_and_a_failed_batch_is_retried_whole(
        acme, acme_connection, settings):
    conversations = [ConversationFactory(connection=acme_connection) for _ in range(3)]
    receiver = Receiver(lambda n, body: 500 if n == 0 else 204)  # the first request fails
    try:
        endpoint = webhooks.check_create_endpoint(acme, url=receiver.url, events=["conversation.status"], batch_size=4)
        statuses = ["pending", "resolved", "open", "pending", "resolved"]
        for status in statuses:
            for conversation in conversations:
                actions.do_set_conversation_status(conversation, status)
        deliver_all(endpoint)
        events_sent = 0
        for request in receiver.requests:
            assert webhooks.verify_signature(endpoint.secret, request["headers"]["X-Inbox-Signature"], request["raw"])
            assert request["headers"]["X-Inbox-Event"] == "batch"
            assert isinstance(request["body"], list) and 1 <= len(request["body"]) <= 4
            assert request["headers"]["X-Inbox-Batch-Size"] == str(len(request["body"]))
            assert request["headers"]["X-Inbox-Delivery"] == request["body"][0]["id"]
            events_sent += len(request["body"])
        first = receiver.requests[0]["body"]
        assert first == receiver.requests[1]["body"][:len(first)] or any(  # the failed events went again, same ids
            [e["id"] for e in first] == [e["id"] for e in r["body"]][:len(first)] for r in receiver.requests[1:])
        accepted = [event for body in receiver.accepted() for event in body]
        assert len(accepted) == len({e["id"] for e in accepted}) == 15  # each event accepted once
        for conversation in conversations:
            got = [e["data"]["status"] for e in accepted if e["data"]["conversation"]["id"] == conversation.pk]
            assert got == statuses
        assert events_sent == 15 + len(first) and len(receiver.requests) < 15  # fewer requests than events
        log = WebhookDelivery.objects.for_tenant(acme)
        assert set(log.values_list("status", "response_code")) == {("succeeded", 204)}
        assert sorted(log.values_list("attempts", flat=True)) == [1] * (15 - len(first)) + [2] * len(first)
    finally:
        receiver.close()


def test_partitions_split_conversations_and_keep_each_one_whole(acme, acme_connection, settings):
    settings.WEBHOOK_PARTITIONS = 4
    endpoint = endpoint_for(acme, events=["conversation.status"])
    conversations = [ConversationFactory(connection=acme_connection) for _ in range(12)]
    for conversation in conversations:
        actions.do_set_conversation_status(conversation, "pending")
        actions.do_set_conversation_status(conversation, "resolved")
    by_partition = {}
    for key, shard in WebhookDelivery.objects.for_tenant(acme).values_list("ordering_key", "shard"):
        assert shard == webhooks.shard_of(key)
        by_partition.setdefault(key, set()).add(webhooks.partition_of(shard))
    assert all(len(parts) == 1 for parts in by_partition.values())  # a conversation never spans partitions
    assert len({p for parts in by_partition.values() for p in parts}) > 1  # twelve conversations do
    assert webhooks.endpoints_with_due_deliveries() == sorted({(endpoint.pk, p) for parts in by_partition.values()
                                                               for p in parts})


def test_deliveries_reuse_one_kept_alive_connection(acme, acme_connection, receiver):
    endpoint = endpoint_for(acme, url=receiver.url, events=["conversation.status"])
    for conversation in [ConversationFactory(connection=acme_connection) for _ in range(5)]:
        actions.do_set_conversation_status(conversation, "resolved")
    deliver_all(endpoint)
    assert len(receiver.requests) == 5
    assert len({r["client"] for r in receiver.requests}) == 1  # one TCP connection for the five requests


def test_a_redirect_is_a_failure_and_is_not_followed(acme, acme_connection, settings):
    settings.WEBHOOK_RETRY_BASE_SECONDS = settings.WEBHOOK_RETRY_CAP_SECONDS = 60  # one attempt in this test
    receiver = Receiver(lambda n, body: 302)
    try:
        endpoint = endpoint_for(acme, url=receiver.url, events=["conversation.status"])
        actions.do_set_conversation_status(ConversationFactory(connection=acme_connection), "resolved")
        webhooks.deliver_pending(endpoint.pk, budget_seconds=5)
        delivery = WebhookDelivery.objects.for_tenant(acme).get()
        assert (delivery.status, delivery.response_code, delivery.attempts) == ("pending", 302, 1)
        assert delivery.error.startswith("HTTP 302") and len(receiver.requests) == 1
    finally:
        receiver.close()


# --- retention ----------------------------------------------------------------------------------------

@pytest.mark.smoke  # SQLite too: bulk_update instead of PostgreSQL's UPDATE ... FROM, Mod on shards
def test_retention_deletes_old_delivered_sooner_than_given_up_and_never_pending(acme, acme_connection, settings):
    from datetime import timedelta

    from django.utils import timezone

    from api.models import IdempotencyKey
    from api.retention import purge_expired

    settings.WEBHOOK_DELIVERED_RETENTION_DAYS, settings.WEBHOOK_FAILED_RETENTION_DAYS = 7, 30
    settings.IDEMPOTENCY_KEY_RETENTION_DAYS = 7
    endpoint = endpoint_for(acme)
    now = timezone.now()
    rows = {}
    for status in ("succeeded", "failed", "pending"):
        for age in (3, 10, 40):
            rows[(status, age)] = WebhookDelivery.objects.create(
                tenant=acme, endpoint=endpoint, event="conversation.status", ordering_key="conversation:1",
                object_id=1, status=status)
    for (_status, age), row in rows.items():
        WebhookDelivery.objects.for_tenant(acme).filter(pk=row.pk).update(created_at=now - timedelta(days=age))
    for age in (3, 10):
        key = IdempotencyKey.objects.create(tenant=acme, key=f"k{age}", request_hash="x")
        IdempotencyKey.objects.for_tenant(acme).filter(pk=key.pk).update(created_at=now - timedelta(days=age))

    counts = purge_expired(batch=1)  # one row per batch: the loop goes on until nothing is left
    assert counts == {"webhook_delivered": 2, "webhook_failed": 1, "idempotency_keys": 1}
    left = set(WebhookDelivery.objects.for_tenant(acme).values_list("status", "created_at__date"))
    expected = {("succeeded", 3), ("failed", 3), ("failed", 10), ("pending", 3), ("pending", 10), ("pending", 40)}
    assert left == {(s, (now - timedelta(days=a)).date()) for s, a in expected}
    assert list(IdempotencyKey.objects.for_tenant(acme).values_list("key", flat=True)) == ["k3"]
    assert purge_expired() == {"webhook_delivered": 0, "webhook_failed": 0, "idempotency_keys": 0}


@pytest.fixture
def delivery_queue(acme, settings, monkeypatch):
    """The real enqueue (the module's autouse fixture replaced it), one partition, an endpoint for
    ``conversation.status`` and the broker's queue in Redis, emptied before and after; yields a function
    returning the queued delivery tasks' messages."""
    import redis as redis_lib

    from api import tasks

    monkeypatch.undo()  # the real enqueue_deliveries
    settings.WEBHOOK_PARTITIONS = 1
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    broker = redis_lib.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete(queue)
    endpoint = endpoint_for(acme, events=["conversation.status"])
    webhooks.clear_queued_flag(endpoint.pk, 0)

    def delivery_tasks() -> list[dict]:  # the queue also holds the inbox list's flush tasks
        messages = [json.loads(raw) for raw in broker.lrange(queue, 0, -1)]
        return [m for m in messages if m["headers"]["task"] == tasks.deliver_webhooks_task.name]

    delivery_tasks.endpoint = endpoint
    yield delivery_tasks
    broker.delete(queue)
    webhooks.clear_queued_flag(endpoint.pk, 0)


def test_a_flood_of_writes_queues_one_task_per_partition_not_one_per_write(
        acme_connection, delivery_queue, django_capture_on_commit_callbacks):
    """Tasks land in the broker's queue in Redis, and while one waits for its partition no other is queued;
    once a task starts (the flag cleared) the next write queues one again."""
    endpoint = delivery_queue.endpoint

    def delivery_args():
        return [json.loads(base64.b64decode(m["body"]))[0] for m in delivery_queue()]

    conversation = ConversationFactory(connection=acme_connection)
    for status in ["pending", "resolved", "open", "pending", "resolved"]:
        with django_capture_on_commit_callbacks(execute=True):
            actions.do_set_conversation_status(conversation, status)
    assert WebhookDelivery.objects.for_tenant(endpoint.tenant_id).count() == 5
    assert len(delivery_args()) == 1  # one task waits for the partition; it will read all five rows
    webhooks.clear_queued_flag(endpoint.pk, 0)  # what the task does as it starts
    with django_capture_on_commit_callbacks(execute=True):
        actions.do_set_conversation_status(conversation, "open")
    assert delivery_args() == [[endpoint.pk, 0]] * 2


def test_with_a_coalescing_wait_the_one_task_of_a_partition_starts_that_much_later(
        acme_connection, delivery_queue, settings, django_capture_on_commit_callbacks):
    """WEBHOOK_COALESCE_SECONDS: the flagged task is queued with an ETA that far ahead (what is recorded
    meanwhile goes out in the same requests), still one task per partition."""
    from datetime import datetime

    from django.utils import timezone

    settings.WEBHOOK_COALESCE_SECONDS = 30.0
    conversation = ConversationFactory(connection=acme_connection)
    before = timezone.now()
    for status in ["pending", "resolved", "open"]:
        with django_capture_on_commit_callbacks(execute=True):
            actions.do_set_conversation_status(conversation, status)
    etas = [datetime.fromisoformat(m["headers"]["eta"]) for m in delivery_queue()]
    assert len(etas) == 1
    assert 29 <= (etas[0] - before).total_seconds() <= 35


# --- the agent tools' changes (labels, contacts, snoozes) --------------------------------------------

def events_of(receiver, endpoint) -> list[dict]:
    """Every accepted event, its request's signature checked."""
    for request in receiver.requests:
        assert webhooks.verify_signature(endpoint.secret, request["headers"]["X-Inbox-Signature"], request["raw"])
    return receiver.accepted()


def test_label_changes_from_the_pages_and_the_api_are_sent_as_conversation_labels(
        acme, acme_agent, acme_owner, acme_connection, receiver):
    from django.test import Client
    from rest_framework.test import APIClient

    from api.tokens import do_create_token
    from inbox.labels import check_create_label, do_delete_label

    conversation = ConversationFactory(connection=acme_connection)
    other = ConversationFactory(connection=acme_connection)
    vip, billing = check_create_label(acme, "VIP", "red"), check_create_label(acme, "billing", "blue")
    endpoint = endpoint_for(acme, url=receiver.url, events=["conversation.labels"])
    page = Client()
    page.force_login(acme_agent)
    _, token = do_create_token(acme, name="erp", scope="read_write", created_by=acme_owner)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    assert page.post(f"/t/acme/c/{conversation.pk}/labels/", {"label": vip.pk}).status_code == 302  # the page's form
    assert page.post(f"/t/acme/c/{conversation.pk}/labels/", {"label": vip.pk}).status_code == 302  # no change
    assert api.post(f"/api/v1/conversations/{conversation.pk}/labels/", {"label_id": billing.pk},
                    format="json").status_code == 200
    assert api.post(f"/api/v1/conversations/{other.pk}/labels/", {"label_id": vip.pk}, format="json").status_code == 200
    assert api.delete(f"/api/v1/conversations/{conversation.pk}/labels/{billing.pk}/").status_code == 200
    assert page.post(f"/t/acme/c/{conversation.pk}/labels/{billing.pk}/remove/").status_code == 302  # not on it
    vip_id = vip.pk
    do_delete_label(vip)  # both conversations lose it
    deliver_all(endpoint)

    events = events_of(receiver, endpoint)
    assert all(e["event"] == "conversation.labels" for e in events)

    def changes(conv):  # in order per conversation (conversations may be in different partitions)
        return [(e["data"]["added"], e["data"]["removed"]) for e in events if e["data"]["conversation"]["id"] == conv.pk]

    assert changes(conversation) == [([vip_id], []), ([billing.pk], []), ([], [billing.pk]), ([], [vip_id])]
    assert changes(other) == [([vip_id], []), ([], [vip_id])]
    # Each event carries the conversation as it was when first sent: here, after the label was deleted.
    assert all(e["data"]["conversation"]["labels"] == [] for e in events)
    assert {e["id"] for e in events} == {f"evt_{d.pk}" for d in WebhookDelivery.objects.for_tenant(acme)}


def test_contact_edits_and_merges_are_sent(acme, acme_owner, acme_connection, receiver):
    from rest_framework.test import APIClient

    from api.tokens import do_create_token
    from inbox.contacts import check_edit_contact, check_merge_contacts

    ana = ConversationFactory(connection=acme_connection).contact
    bia = ConversationFactory(connection=acme_connection).contact
    endpoint = endpoint_for(acme, url=receiver.url, events=["contact.updated", "contact.merged"])
    _, token = do_create_token(acme, name="erp", scope="read_write", created_by=acme_owner)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    check_edit_contact(ana, name="Ana Souza", notes="prefers mornings", pairs=[("Pedido", "88")], user=acme_owner)
    assert api.patch(f"/api/v1/contacts/{ana.pk}/", {"attributes": {"Pedido": "89"}}, format="json").status_code == 200
    refused = api.patch(f"/api/v1/contacts/{ana.pk}/", {"attributes": {"CPF": "111.111.111-11"}}, format="json")
    assert refused.status_code == 400  # refused: nothing recorded
    check_edit_contact(ana, name="Ana Souza", notes="prefers mornings", pairs=[("Pedido", "89")], user=acme_owner)
    _survivor, gone = check_merge_contacts(ana, bia, acme_owner)
    deliver_all(endpoint)

    events = events_of(receiver, endpoint)
    assert [(e["event"], e["data"]["contact"]["id"]) for e in events] == [
        ("contact.updated", ana.pk), ("contact.updated", ana.pk), ("contact.merged", ana.pk)]
    assert events[0]["data"]["changed"] == ["name", "notes", "attributes"]
    assert events[1]["data"]["changed"] == ["attributes"]
    merged = events[2]["data"]
    assert merged["merged_contact_id"] == bia.pk
    assert merged["conversations_merged"] == [{"id": pk, "into": into} for pk, into in sorted(gone.items())]
    contact = events[0]["data"]["contact"]  # the API's contact shape, read when first sent
    assert contact["name_locked"] is True and contact["notes"] == "prefers mornings"
    assert contact["attributes"] == {"Pedido": "89"} and "identities" in contact


def test_snoozes_and_wakes_are_sent_as_conversation_status(acme, acme_agent, acme_connection, receiver):
    from datetime import datetime, timedelta

    from django.utils import timezone

    from inbox.models import Snooze
    from inbox.snooze import check_snooze, do_unsnooze, wake_due_snoozes

    feed(acme_connection, incoming("S1", "hello"))
    conversation = Conversation.objects.for_tenant(acme).get()
    endpoint = endpoint_for(acme, url=receiver.url, events=["conversation.status"])
    until = timezone.now() + timedelta(hours=1)
    check_snooze(conversation, until, acme_agent)
    do_unsnooze(conversation, acme_agent)
    check_snooze(conversation, until, acme_agent)
    Snooze.objects.for_tenant(acme).update(until=timezone.now() - timedelta(seconds=1))
    assert wake_due_snoozes() == 1
    check_snooze(conversation, until, acme_agent)
    feed(acme_connection, incoming("S2", "are you there?", ts=int(time.time())))  # a customer's message wakes it
    deliver_all(endpoint)

    events = events_of(receiver, endpoint)
    assert [(e["data"]["status"], e["data"].get("woken_by")) for e in events] == [
        ("snoozed", None), ("open", "by_hand"), ("snoozed", None), ("open", "time"), ("snoozed", None),
        ("open", "inbound_message")]
    assert events[0]["data"]["until"].endswith("Z")  # UTC, as every time the API gives
    assert datetime.fromisoformat(events[0]["data"]["until"]) == until
    assert {e["data"]["conversation"]["id"] for e in events} == {conversation.pk}
    assert Conversation.objects.for_tenant(acme).get().status == "open"


def test_one_recording_writes_every_delivery_in_the_order_recorded(acme, acme_connection, _no_broker,
                                                                   django_capture_on_commit_callbacks):
    from inbox import integrations

    first = endpoint_for(acme, events=["conversation.status", "conversation.labels"])
    second = endpoint_for(acme, events=["conversation.labels"])
    events = [integrations.conversation_event("conversation.status", c, status="open") if c % 3 else
              integrations.labels_event(c, added=[c, 1], removed=[]) for c in range(300, 0, -1)]
    with django_capture_on_commit_callbacks(execute=True):
        written = integrations.record_events(acme.pk, events)
    rows = list(WebhookDelivery.objects.for_tenant(acme).order_by("id"))
    assert written == len(rows) == 400
    for endpoint in (first, second):  # each endpoint's ids follow the events' order
        assert [(r.event, r.object_id, r.data) for r in rows if r.endpoint_id == endpoint.pk] == [
            (e.name, e.object_id, e.data) for e in events if e.name in endpoint.events]
    assert {(r.status, r.attempts, r.error, r.payload, r.tenant_id) for r in rows} == {("pending", 0, "", None, acme.pk)}
    assert all(r.shard == webhooks.shard_of(r.ordering_key) and r.created_at for r in rows)
    assert sorted({t for call in _no_broker for t in call}) == sorted(
        {(r.endpoint_id, webhooks.partition_of(r.shard)) for r in rows})
