"""Outbox through a real runner: queued while no runner runs -> sent once; failures -> failed with the error."""


import pytest
from django.db import close_old_connections

from connections.nudge import nudge
from inbox.models import Message
from sync.models import RawEvent
from tests import procs
from tests.connections.helpers import start_runner, wait_status
from tests.factories import ConnectionFactory, ConversationFactory, MessageFactory, TenantFactory

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]


def outbound(conversation, body, **kw):
    kw.setdefault("status", Message.Status.QUEUED)
    return MessageFactory(conversation=conversation, direction=Message.Direction.OUTBOUND,
                          external_id=f"local-{body.replace(' ', '-')}", body=body, **kw)


def msg(pk):
    close_old_connections()
    return Message.objects.unscoped().get(pk=pk)


@pytest.mark.smoke
def test_reply_queued_while_no_runner_is_sent_once_in_order_after_a_runner_starts():
    tenant = TenantFactory()
    conn = ConnectionFactory(tenant=tenant, jid="5511900000501:1@s.whatsapp.net")
    conv = ConversationFactory(connection=conn)
    first, second = outbound(conv, "first reply"), outbound(conv, "second reply")
    runner = start_runner("outbox")
    try:
        procs.wait_for(lambda: msg(second.pk).status in ("sent", "delivered", "read"), 15, message="both sent")
        a, b = msg(first.pk), msg(second.pk)
        assert a.external_id.startswith("3EB0") and b.external_id.startswith("3EB0")
        assert a.send_attempts == 1 and b.send_attempts == 1  # sent exactly once each
        assert a.sent_at <= b.sent_at
        # The simulated phone answers with receipts for WhatsApp's id, through the journal.
        procs.wait_for(lambda: RawEvent.objects.unscoped().filter(connection=conn, event_name="ReceiptEv").count() >= 2, 5,
                       message="receipts journaled")
        # A nudge after everything was sent sends nothing again. The marker that it was handled: a reply
        # queued after it is sent (the session handles sends in order).
        nudge(conn.pk, "send")
        third = outbound(conv, "third reply")
        nudge(conn.pk, "send")
        procs.wait_for(lambda: msg(third.pk).status in ("sent", "delivered", "read"), 15, message="third sent")
        assert msg(first.pk).send_attempts == 1 and msg(second.pk).send_attempts == 1
    finally:
        runner.stop()


def test_send_failure_retries_with_backoff_then_ends_failed_with_the_error():
    tenant = TenantFactory()
    conn = ConnectionFactory(tenant=tenant, jid="5511900000502:1@s.whatsapp.net")
    conv = ConversationFactory(connection=conn)
    runner = start_runner("outbox-fail")
    try:
        wait_status(conn.pk, "connected", 20, runner)
        nudge(conn.pk, "simulate", kind="fail_sends", count=10)
        # The runner's periodic "send" may reach the session first: queue the message once sends fail.
        procs.wait_for(lambda: '"simulator.command"' in runner.output() and '"kind": "fail_sends"' in runner.output(),
                       20, message="the simulated server failing sends")
        doomed = outbound(conv, "never arrives")
        nudge(conn.pk, "send")
        procs.wait_for(lambda: msg(doomed.pk).status == "failed", 20, message="failed after retries")
        m = msg(doomed.pk)
        assert m.send_attempts == 3  # OUTBOX_MAX_ATTEMPTS in the runner's environment
        assert "simulated send failure" in m.error
        assert m.external_id == "local-never-arrives"  # never got a WhatsApp id
    finally:
        runner.stop()


def test_a_send_interrupted_by_a_crash_is_completed_without_a_second_send():
    """A row left in `sending` whose send did reach the (simulated) server: recovered, not resent."""
    from connections.transport.simulator import _redis, _sent_key

    tenant = TenantFactory()
    conn = ConnectionFactory(tenant=tenant, jid="5511900000503:1@s.whatsapp.net")
    conv = ConversationFactory(connection=conn)
    done = outbound(conv, "sent before crash", status=Message.Status.SENDING, send_attempts=1)
    lost = outbound(conv, "claimed but not sent", status=Message.Status.SENDING, send_attempts=1)
    _redis().hset(_sent_key(conn.pk), done.external_id, '["3EB0CRASHED0001", "2026-11-25T10:00:00+00:00"]')
    runner = start_runner("outbox-crash")
    try:
        procs.wait_for(lambda: msg(done.pk).status == "sent" and msg(lost.pk).status in ("sent", "delivered", "read"),
                       15, message="recovered")
        assert msg(done.pk).external_id == "3EB0CRASHED0001" and msg(done.pk).send_attempts == 1
        assert msg(lost.pk).send_attempts == 2  # the never-sent one was sent (once)
    finally:
        runner.stop()
        _redis().delete(_sent_key(conn.pk))
