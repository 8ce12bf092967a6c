"""The simulator's inbox delivery: due messages are handed over together, acknowledged (removed from the
fake server) in batches, never before the journal holds them, and a session that stops before its
acknowledgement has them delivered again, byte for byte, which the journal keeps once."""

import threading
import time

import pytest
from django.db import connection as django_connection

from connections.transport.base import SessionCallbacks, SessionConfig
from connections.transport.simulator import ACK_SECONDS, SimulatorTransport, inbound_specs, pending_inbound, queue_inbound
from sync.models import RawEvent
from tests import procs

CUSTOMER = "+5511987650001"
DB = pytest.mark.django_db(transaction=True)


class Recorder:
    """The child's callbacks, over a real journal writer; notes how many messages the fake server still
    held while each hand-over was in progress (they must all still be there: no acknowledgement yet)."""

    def __init__(self, writer, connection_id):
        self.writer, self.connection_id = writer, connection_id
        self.handovers: list[int] = []
        self.unacked_during: list[tuple[int, int]] = []  # (inbox length, messages handed over so far)
        self.states: list[str] = []
        self.gate = threading.Event()
        self.gate.set()

    def callbacks(self):
        return SessionCallbacks(on_event=lambda name, payload: self.on_events([(name, payload)]),
                                on_state=lambda kind, detail="", **data: self.states.append(kind),
                                on_events=self.on_events)

    def on_events(self, events):
        messages = [e for e in events if e[0] == "MessageEv"]
        if messages:
            self.gate.wait(30)
        self.writer.submit_many(self.connection_id, events)
        if messages:
            self.handovers.append(len(messages))
            self.unacked_during.append((pending_inbound(self.connection_id), sum(self.handovers)))


def journaled_messages(connection_id):
    return RawEvent.objects.unscoped().filter(connection_id=connection_id, event_name="MessageEv").count()


@pytest.fixture
def writer(journal_writer):
    yield journal_writer(wait_seconds=30)
    django_connection.close()


def start(recorder, connection):
    transport = SimulatorTransport(SessionConfig(connection.pk, jid="5511900000001:1@s.whatsapp.net"),
                                   recorder.callbacks())
    transport.connect()
    return transport


@DB
def test_a_backlog_is_handed_over_together_and_acknowledged_only_once_journaled(writer, acme_connection):
    total = 60
    queue_inbound(acme_connection.pk, inbound_specs(CUSTOMER, "backlog", total, rate=1000, start=time.time() - 5))
    recorder = Recorder(writer, acme_connection.pk)
    transport = start(recorder, acme_connection)
    try:
        procs.wait_for(lambda: pending_inbound(acme_connection.pk) == 0, timeout=15, message="every message acknowledged")
        assert journaled_messages(acme_connection.pk) == total
        # Everything was due: the read-ahead's 50, then the 10 left, not 60 hand-overs of one.
        assert recorder.handovers == [50, 10]
        # Once each hand-over was journaled nothing of it had been removed from the fake server yet; the
        # first 50 were removed before the next ones were read.
        assert recorder.unacked_during == [(60, 50), (10, 60)]
    finally:
        transport.disconnect()
        transport.close()


@DB
def test_paced_messages_are_acknowledged_in_batches_and_the_last_ones_too(writer, acme_connection):
    # 20 a second, as a flood's number: each is handed over as it comes due; the acknowledgements lag.
    queue_inbound(acme_connection.pk, inbound_specs(CUSTOMER, "paced", 20, rate=20, start=time.time() + 0.3))
    recorder = Recorder(writer, acme_connection.pk)
    transport = start(recorder, acme_connection)
    try:
        procs.wait_for(lambda: journaled_messages(acme_connection.pk) == 20, timeout=15, message="20 messages journaled")
        lags = [still_queued - (20 - handed_over) for still_queued, handed_over in recorder.unacked_during]
        assert all(lag >= 0 for lag in lags)  # never acknowledged before it was journaled
        assert max(lags) > 1  # ... and not one round trip per message
        # The last ones are acknowledged too, without another message to come (within ACK_SECONDS).
        procs.wait_for(lambda: pending_inbound(acme_connection.pk) == 0, timeout=ACK_SECONDS + 5,
                       message="every message acknowledged")
    finally:
        transport.disconnect()
        transport.close()


@DB
def test_a_session_gone_before_its_acknowledgement_has_them_delivered_again_and_journaled_once(
        writer, acme_connection):
    queue_inbound(acme_connection.pk, inbound_specs(CUSTOMER, "again", 8, rate=1000, start=time.time() - 1))
    recorder = Recorder(writer, acme_connection.pk)
    recorder.gate.clear()  # the first hand-over waits in the callback
    transport = start(recorder, acme_connection)
    try:
        procs.wait_for(lambda: transport._heads, timeout=15, message="a hand-over under way")
        transport._alive = False  # the session's process dies right after the hand-over was journaled,
        transport._ack = lambda r, key: None  # before any acknowledgement
        recorder.gate.set()
        procs.wait_for(lambda: journaled_messages(acme_connection.pk) == 8, timeout=15, message="8 messages journaled")
        time.sleep(ACK_SECONDS + 0.2)
        assert pending_inbound(acme_connection.pk) == 8  # never acknowledged
    finally:
        transport.close()
    second = Recorder(writer, acme_connection.pk)
    transport = start(second, acme_connection)
    try:
        procs.wait_for(lambda: pending_inbound(acme_connection.pk) == 0, timeout=15, message="every message acknowledged")
        assert second.handovers == [8]  # delivered again, the same bytes ...
        assert journaled_messages(acme_connection.pk) == 8  # ... kept once
    finally:
        transport.disconnect()
        transport.close()


@pytest.mark.parametrize("spec", [
    {"id": "SIMA000001", "from": "+5511987650001", "name": "", "text": "hi #1", "due": 1_796_000_000.123},
    {"id": "SIMA000002", "from": "5511987650002", "name": "Ana Souza", "text": "Olá, tudo bem? ✅\nlinha 2", "due": 1.5},
    {"id": "SIMA000003", "from": "+5511987650001", "name": "Ana", "text": "", "due": 0.0},
])
def test_a_text_message_is_delivered_as_the_events_builder_builds_it(spec):
    from connections.transport.simulator import message_event
    from sync import events_builder as eb

    sender = f"{spec['from'].lstrip('+')}@s.whatsapp.net"
    expected = eb.serialize(eb.message_ev(sender, sender, spec["id"], spec["text"], int(spec["due"] * 1000),
                                          push_name=spec["name"]))
    assert message_event(spec) == expected
    assert message_event(dict(spec, id="OTHER")) != expected  # the prototype is not changed by a copy
    assert message_event(spec) == expected


@DB
def test_a_staged_history_sync_is_delivered_as_its_bytes_in_order_and_once(writer, acme_connection):
    from connections.transport.simulator import HISTORY_EV, stage_history
    from sync import events_builder as eb

    chunks = eb.bulk_history(600, 6, 200, id_prefix="STG")
    assert stage_history(acme_connection.pk, chunks) == 3
    recorder = Recorder(writer, acme_connection.pk)
    handed_over = []
    on_events = recorder.on_events
    recorder.on_events = lambda events: (handed_over.extend(n for n, _ in events if n == HISTORY_EV), on_events(events))
    transport = start(recorder, acme_connection)
    journal = RawEvent.objects.unscoped().filter(connection_id=acme_connection.pk, event_name=HISTORY_EV)
    try:
        procs.wait_for(lambda: journal.count() == 1, timeout=15, message="the connect's demo history journaled")
        transport.simulate({"kind": "history", "staged": 1})
        procs.wait_for(lambda: journal.count() == 4, timeout=15, message="the three staged chunks journaled")
        staged = [bytes(p) for p in journal.order_by("pk").values_list("payload", flat=True)[1:]]
        assert staged == [c.SerializeToString() for c in chunks]  # the bytes staged, in the order staged
        transport.simulate({"kind": "history", "staged": 1})  # taken off the server: nothing more to deliver
        time.sleep(0.5)
        assert len(handed_over) == 4  # the demo history and the three chunks, each handed over once
    finally:
        transport.disconnect()
        transport.close()
