"""The seams between the runner and the sync engine: early receipts and the session store's LID map."""

import os
import queue
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from django.db import connection as django_connection

from connections import outbox
from connections.child import Child, Session
from connections.models import Connection
from connections.transport.neonize import ensure_store, store_lid_mappings
from inbox.models import Contact, Conversation, Message
from sync import events_builder as eb
from sync.journal import journal_events
from sync.models import JidMapping, PendingOperation
from sync.processor import process_pending
from tests import procs
from tests.connections.test_neonize_transport import dispatch
from tests.factories import ConnectionFactory, ContactFactory, ConversationFactory, MessageFactory, TenantFactory


def journal_and_process(conn, *events):
    journal_events(conn.pk, [(*eb.serialize(ev), None) for ev in events], schedule=False)
    return process_pending(conn.pk, wait=True)


def claimed_reply(conn, body="Your order left today"):
    """An agent's reply as the runner holds it between the send and the commit: claimed, `sending`."""
    conv = ConversationFactory(connection=conn)
    reply = MessageFactory(conversation=conv, direction=Message.Direction.OUTBOUND, status=Message.Status.QUEUED,
                           external_id=f"local-{body[:20].replace(' ', '-')}", body=body)
    [claimed] = outbox.claim_outbound(conn.pk)
    assert claimed.pk == reply.pk and claimed.status == Message.Status.SENDING
    return conv, claimed


def status(pk):
    return Message.objects.unscoped().values_list("status", flat=True).get(pk=pk)


@pytest.mark.smoke
@pytest.mark.django_db
def test_a_receipt_that_beat_the_send_commit_applies_the_moment_the_reply_is_marked_sent():
    conn = ConnectionFactory(jid="5511900000601:1@s.whatsapp.net")
    conv, reply = claimed_reply(conn)
    wa_id = "3EB0EA51EE0001"
    # The phone's DELIVERED receipt is journaled and processed before the runner recorded WhatsApp's id.
    journal_and_process(conn, eb.receipt_ev(conv.chat_jid, wa_id, "delivered"))
    assert PendingOperation.objects.unscoped().filter(connection=conn, target_external_id=wa_id, kind="receipt").count() == 1
    assert status(reply.pk) == Message.Status.SENDING

    assert outbox.do_mark_sent(reply, wa_id, datetime(2026, 11, 25, 10, 0, tzinfo=UTC)) is True

    # Applied in the same transaction: no safety-net wait, no journal processing in between.
    stored = Message.objects.unscoped().get(pk=reply.pk)
    assert stored.status == Message.Status.DELIVERED and stored.external_id == wa_id
    assert not PendingOperation.objects.unscoped().filter(connection=conn, target_external_id=wa_id).exists()


@pytest.mark.django_db
def test_early_receipts_never_move_the_reply_backward():
    conn = ConnectionFactory(jid="5511900000602:1@s.whatsapp.net")
    conv, reply = claimed_reply(conn)
    wa_id = "3EB0EA51EE0002"
    # READ arrives first, then a late DELIVERED for the same id: both wait for the id.
    journal_and_process(conn, eb.receipt_ev(conv.chat_jid, wa_id, "read", ts=1_760_000_200),
                        eb.receipt_ev(conv.chat_jid, wa_id, "delivered", ts=1_760_000_100))
    assert PendingOperation.objects.unscoped().filter(connection=conn, target_external_id=wa_id).count() == 2

    outbox.do_mark_sent(reply, wa_id, datetime(2026, 11, 25, 10, 0, tzinfo=UTC))
    assert status(reply.pk) == Message.Status.READ
    # Another late DELIVERED after the fact changes nothing either.
    journal_and_process(conn, eb.receipt_ev(conv.chat_jid, wa_id, "delivered", ts=1_760_000_300))
    assert status(reply.pk) == Message.Status.READ
    assert not PendingOperation.objects.unscoped().filter(connection=conn).exists()


@pytest.mark.django_db
def test_marking_sent_leaves_other_messages_pending_operations_alone():
    conn = ConnectionFactory(jid="5511900000603:1@s.whatsapp.net")
    conv, reply = claimed_reply(conn)
    journal_and_process(conn, eb.receipt_ev(conv.chat_jid, "3EB0OTHER00001", "delivered"))
    outbox.do_mark_sent(reply, "3EB0EA51EE0003", datetime(2026, 11, 25, 10, 0, tzinfo=UTC))
    assert status(reply.pk) == Message.Status.SENT
    assert PendingOperation.objects.unscoped().filter(connection=conn, target_external_id="3EB0OTHER00001").count() == 1


# --- LID <-> phone pairs from whatsmeow's session store ---------------------------------------------

ANA_PN, ANA_LID = "5511987654321@s.whatsapp.net", "201234567890123@lid"
BRUNO_PN, BRUNO_LID = "5521999998888@s.whatsapp.net", "209876543210987@lid"


@pytest.fixture(params=[pytest.param("sqlite", marks=pytest.mark.smoke), "postgres"])
def whatsmeow_store(request, tmp_path, settings):
    """A fresh whatsmeow store of this test's own: a SQLite file, or a PostgreSQL database beside the test DB."""
    if request.param == "sqlite":
        settings.WHATSMEOW_STORE = str(tmp_path / "whatsmeow.sqlite3")
        yield settings.WHATSMEOW_STORE
        return
    db = django_connection.settings_dict
    base = db["NAME"] if db["ENGINE"].endswith("postgresql") else f"inbox_{os.getpid()}"
    host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
    name = f"{Path(base).name}_wmstore"
    admin = f"postgres://postgres@{host}:{port}/postgres"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    settings.WHATSMEOW_STORE = f"postgres://postgres@{host}:{port}/{name}?sslmode=disable"
    ensure_store()  # the runner's own "create the store database if missing"
    yield settings.WHATSMEOW_STORE
    with psycopg.connect(admin, autocommit=True) as c:  # FORCE: neonize never closes its store connections
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def put_lid_map(store_url, rows):
    """What whatsmeow writes when it learns a mapping: bare user parts (lid, pn)."""
    if store_url.startswith("postgres"):
        with psycopg.connect(store_url.split("?")[0], autocommit=True) as c:
            for lid, pn in rows:
                c.execute("INSERT INTO whatsmeow_lid_map (lid, pn) VALUES (%s, %s)", [lid, pn])
    else:
        with closing(sqlite3.connect(store_url)) as c, c:
            c.executemany("INSERT INTO whatsmeow_lid_map (lid, pn) VALUES (?, ?)", rows)


def run_queued(child):
    while True:
        try:
            cmd = child.commands.get_nowait()
        except queue.Empty:
            return
        child.handle(cmd)


@pytest.mark.django_db(transaction=True)
def test_store_mappings_are_recorded_after_connect_and_merge_a_lid_contact_with_its_phone_contact(whatsmeow_store):
    acme, globex = TenantFactory(), TenantFactory()
    conn = ConnectionFactory(tenant=acme, transport=Connection.Transport.NEONIZE, jid=None)
    # Ana wrote once from her LID and once from her phone number: two contacts, two conversations.
    journal_and_process(conn, eb.message_ev(ANA_LID, ANA_LID, "3EB0A1", "oi, sou a Ana"),
                        eb.message_ev(ANA_PN, ANA_PN, "3EB0A2", "meu pedido?"))
    assert Contact.objects.for_tenant(acme).count() == 2
    # Bruno is only Globex's customer so far.
    ContactFactory(tenant=globex, phone_number="+" + BRUNO_PN.split("@")[0])

    read_fd, write_fd = os.pipe()
    child = Child(write_fd)
    session = child.sessions[conn.pk] = Session(child, {"id": conn.pk, "transport": "neonize", "jid": ""})
    try:
        # The real library creates its store tables on connect; here the dial then fails (no network).
        session.transport.connect()
        procs.wait_for(lambda: not child.commands.empty(), 15, message="connect outcome")
        # whatsmeow learned three pairs (the store is shared by every number): Ana's phone without the
        # Brazilian ninth digit, Bruno, and a half-written row.
        put_lid_map(whatsmeow_store, [(ANA_LID.split("@")[0], "551187654321"), (BRUNO_LID.split("@")[0], BRUNO_PN.split("@")[0]),
                                      ("201111111111111", "")])
        assert session.transport.stored_jid_mappings() == [("551187654321@s.whatsapp.net", ANA_LID),
                                                          (BRUNO_PN, BRUNO_LID)]
        # A real ConnectedEv through neonize's own dispatcher: journaled, then the session reports connected.
        dispatch(session.transport.client, eb.connected_ev())
        run_queued(child)  # halt (the failed dial), recover, store_mappings: what the child's loop runs

        assert set(JidMapping.objects.for_tenant(acme).values_list("pn_jid", "lid_jid")) == {(ANA_PN, ANA_LID)}
        [ana] = Contact.objects.for_tenant(acme)
        assert set(ana.identities.values_list("jid", flat=True)) == {ANA_PN, ANA_LID}
        [conv] = Conversation.objects.for_tenant(acme)
        assert sorted(conv.messages.values_list("external_id", flat=True)) == ["3EB0A1", "3EB0A2"]
        assert not JidMapping.objects.for_tenant(globex).exists()  # only the connection's tenant

        # Read again: nothing new is recorded.
        assert child.record_store_mappings(session) == {"mappings": 0, "merges": 0}
        # Bruno writes to Acme from his LID: Acme knows the LID only. The store's pair (which Globex's
        # traffic taught it) must not tell Acme his phone number.
        journal_and_process(conn, eb.message_ev(BRUNO_LID, BRUNO_LID, "3EB0B1", "olá"))
        assert child.record_store_mappings(session) == {"mappings": 0, "merges": 0}
        assert not JidMapping.objects.for_tenant(acme).filter(lid_jid=BRUNO_LID).exists()
        bruno = Contact.objects.for_tenant(acme).get(identities__jid=BRUNO_LID)
        assert bruno.phone_number in ("", None)
        assert set(bruno.identities.values_list("jid", flat=True)) == {BRUNO_LID}
        # Once Bruno writes to Acme from his phone number too, Acme knows both: the pair merges them.
        journal_and_process(conn, eb.message_ev(BRUNO_PN, BRUNO_PN, "3EB0B2", "sou eu"))
        assert child.record_store_mappings(session)["mappings"] == 1
        assert JidMapping.objects.for_tenant(acme).filter(pn_jid=BRUNO_PN, lid_jid=BRUNO_LID).exists()
        [bruno] = Contact.objects.for_tenant(acme).filter(identities__jid=BRUNO_LID)
        assert set(bruno.identities.values_list("jid", flat=True)) == {BRUNO_LID, BRUNO_PN}
    finally:
        session.transport.disconnect()
        child.journal.stop()
        os.close(read_fd)


def test_a_store_nobody_has_used_yet_reads_as_no_mappings(tmp_path, settings):
    settings.WHATSMEOW_STORE = str(tmp_path / "empty.sqlite3")
    assert store_lid_mappings() == []
