"""Webhooks through a real Celery worker to a real local HTTP receiver: a burst of events across several
conversations, a receiver that answers 500 at first, and every event arrives once accepted, signed, and
in order per conversation; the writer never waits for the receiver."""

import time

import pytest

from api import webhooks
from api.models import WebhookDelivery
from inbox import actions
from tests import procs
from tests.api.receiver import Receiver
from tests.factories import ConversationFactory

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("batch_size", [1, 4])
def test_a_real_worker_delivers_signed_in_order_and_retries_500s(acme, acme_connection, settings, batch_size):
    """One event per request, and batches of up to four; the deliveries are spread over the partitions."""
    settings.OUTBOUND_ALLOW_PRIVATE_ADDRESSES = True  # the receiver is on 127.0.0.1
    conversations = [ConversationFactory(connection=acme_connection) for _ in range(3)]
    receiver = Receiver(lambda n, body: 500 if n < 3 else 204)  # the first three requests fail
    worker = procs.celery_worker(procs.process_env(OUTBOUND_ALLOW_PRIVATE_ADDRESSES=True,
                                                   WEBHOOK_RETRY_BASE_SECONDS=0.2, WEBHOOK_RETRY_CAP_SECONDS=1))
    try:
        endpoint = webhooks.check_create_endpoint(acme, url=receiver.url, events=["conversation.status"],
                                                  batch_size=batch_size)
        statuses = ["pending", "resolved", "open", "pending", "resolved"]
        started = time.monotonic()
        for status in statuses:
            for conversation in conversations:
                actions.do_set_conversation_status(conversation, status)
        assert time.monotonic() - started < 5  # recorded and enqueued, never sent by the writer
        total = len(statuses) * len(conversations)

        def accepted_events():
            return [e for body in receiver.accepted() for e in (body if isinstance(body, list) else [body])]

        procs.wait_for(lambda: len(accepted_events()) == total, 60, 0.1, f"{total} accepted deliveries")
        assert receiver.answers[:3] == [500, 500, 500]
        for request in receiver.requests:
            assert webhooks.verify_signature(endpoint.secret, request["headers"]["X-Inbox-Signature"], request["raw"])
            assert isinstance(request["body"], list) == (batch_size > 1)
        accepted = accepted_events()
        for conversation in conversations:
            got = [p["data"]["status"] for p in accepted if p["data"]["conversation"]["id"] == conversation.pk]
            assert got == statuses, conversation.pk
        assert len({p["id"] for p in accepted}) == total  # each event accepted once
        log = WebhookDelivery.objects.for_tenant(acme)
        procs.wait_for(lambda: not log.filter(status="pending").exists(), 10, 0.1, "the log to show all delivered")
        failed_events = sum(len(r["body"]) if batch_size > 1 else 1 for r in receiver.requests[:3])
        assert sum(log.values_list("attempts", flat=True)) == total + failed_events
        assert set(log.values_list("status", "response_code")) == {("succeeded", 204)}
    except BaseException:
        print(worker.output()[-6000:])
        raise
    finally:
        worker.stop()
        receiver.close()
