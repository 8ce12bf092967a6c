"""Edits, revokes, reactions and receipts only from whoever may make them (issue 10, item 1).

Each attack is replayed with real neonize events through the journal and the processor: it must do no
harm, be counted on the run, noted on its processed row and logged. The legitimate cases must still work,
including from the LID form of the original sender and when the operation arrives before its target.
"""

from datetime import UTC, datetime

import pytest
from django.db import transaction

from connections import outbox
from inbox.actions import do_queue_reply
from inbox.models import Conversation, Message, MessageRevision
from sync import events_builder as b
from sync.models import PendingOperation, RawEvent, SyncRun
from sync.operations import apply_pending_operations
from sync.selectors import sync_report
from tests.sync.helpers import GROUP, LID_ANA, ME, PN_ANA, PN_BRUNO, T0, feed, from_phone, incoming

pytestmark = pytest.mark.django_db

PN_CARLA = "5531988887777@s.whatsapp.net"
MS = 1000


def _from(chat, sender, id, content, ts=T0 + 60, *, from_me=False, sender_alt=None):
    """A MessageEv carrying an operation, as ``sender`` sends it in ``chat``."""
    return b.message_ev(chat, sender, id, content, ts * MS, from_me=from_me, sender_alt=sender_alt)


def _refusals(caplog):
    return [r for r in caplog.records if r.getMessage() == "sync.operation.refused"]


def _row(external_id):
    """The journal row of the MessageEv with this id."""
    return next(r for r in RawEvent.objects.unscoped().filter(event_name="MessageEv")
                if b.EVENT_CLASSES["MessageEv"].FromString(bytes(r.payload)).Info.ID == external_id)


def _refused_total():
    return {k: v for run in SyncRun.objects.unscoped().all() for k, v in run.refused.items()}


@pytest.mark.smoke
def test_a_customer_cannot_edit_the_agents_reply(acme_connection, acme_agent, caplog):
    feed(acme_connection, incoming("A1", "Can I get a refund?"))
    conv = Conversation.objects.unscoped().get()
    with transaction.atomic():
        reply = do_queue_reply(conv, acme_agent, "Refund approved: 10 USD")
    [claimed] = outbox.claim_outbound(acme_connection.pk)
    outbox.do_mark_sent(claimed, "3EB0REFUND01", datetime(2025, 10, 9, 9, 0, tzinfo=UTC))

    forged = b.edit("3EB0REFUND01", "Refund approved: 10,000 USD", target_chat=ME, target_from_me=True)
    with caplog.at_level("WARNING", logger="sync.ingest"):
        feed(acme_connection, _from(PN_ANA, PN_ANA, "E-FORGED", forged))

    reply.refresh_from_db()
    assert reply.body == "Refund approved: 10 USD" and reply.edited_at is None
    assert not MessageRevision.objects.unscoped().exists()
    row = _row("E-FORGED")
    assert row.state == RawEvent.State.PROCESSED
    assert row.error == (f"refused edit of message 3EB0REFUND01 by {PN_ANA} in {PN_ANA}: not the original sender")
    run = SyncRun.objects.unscoped().get(pk=row.sync_run_id)
    assert run.refused == {"refused_edit": 1} and run.balanced
    [line] = _refusals(caplog)
    assert (line.connection_id, line.raw_event_id, line.kind, line.target_id, line.claimed_sender, line.chat,
            line.from_me) == (acme_connection.pk, row.pk, "edit", "3EB0REFUND01", PN_ANA, PN_ANA, False)
    assert sync_report(acme_connection)["refused_operations"] == {"refused_edit": 1}

    # The business's own edit from the phone is applied.
    feed(acme_connection, _from(PN_ANA, ME, "E-OURS", b.edit("3EB0REFUND01", "Refund approved: 12 USD", PN_ANA),
                                from_me=True))
    reply.refresh_from_db()
    assert reply.body == "Refund approved: 12 USD"
    assert list(MessageRevision.objects.unscoped().values_list("body", flat=True)) == ["Refund approved: 10 USD"]


def test_a_stranger_cannot_revoke_or_edit_another_customers_message_in_a_one_to_one_chat(acme_connection):
    feed(acme_connection, incoming("A1", "meu endereço é rua X"), incoming("B1", "oi", chat=PN_BRUNO, push_name="Bruno"))
    # Bruno, in his own chat with us, names Ana's message (and Ana's chat in the key).
    feed(acme_connection, _from(PN_BRUNO, PN_BRUNO, "R-FORGED", b.revoke("A1", target_chat=PN_ANA)),
         _from(PN_BRUNO, PN_BRUNO, "E-FORGED", b.edit("A1", "rua Y", target_chat=PN_ANA, target_from_me=False)))
    a1 = Message.objects.unscoped().get(external_id="A1")
    assert a1.deleted_at is None and a1.body == "meu endereço é rua X"
    assert "claimed chat is not the message's chat" in _row("R-FORGED").error
    assert _refused_total() == {"refused_revoke": 1, "refused_edit": 1}
    # Ana herself may.
    feed(acme_connection, _from(PN_ANA, PN_ANA, "R-ANA", b.revoke("A1", target_chat=ME)))
    assert Message.objects.unscoped().get(external_id="A1").deleted_at is not None


def _group_with(conn, *participants):
    feed(conn, b.joined_group_ev(GROUP, "Clientes", [b.group_participant(j, is_admin=admin) for j, admin in participants]))


def test_a_group_member_cannot_revoke_another_members_message_but_an_admin_can(acme_connection):
    _group_with(acme_connection, (PN_ANA, False), (PN_BRUNO, False), (PN_CARLA, True))
    feed(acme_connection, incoming("G1", "da Ana", chat=GROUP, sender=PN_ANA),
         incoming("G2", "da Ana de novo", chat=GROUP, sender=PN_ANA))
    feed(acme_connection, _from(GROUP, PN_BRUNO, "R-BRUNO", b.revoke("G1", GROUP)),
         _from(GROUP, PN_CARLA, "E-CARLA", b.edit("G2", "editado pela admin", GROUP, target_from_me=False)))
    g1, g2 = Message.objects.unscoped().get(external_id="G1"), Message.objects.unscoped().get(external_id="G2")
    assert g1.deleted_at is None and g2.body == "da Ana de novo"  # an admin may delete, not rewrite
    assert _row("R-BRUNO").error.endswith("not the original sender nor a group admin")
    feed(acme_connection, _from(GROUP, PN_CARLA, "R-CARLA", b.revoke("G1", GROUP)))
    assert Message.objects.unscoped().get(external_id="G1").deleted_at is not None
    assert _refused_total() == {"refused_revoke": 1, "refused_edit": 1}


def test_our_own_account_revokes_in_a_group_only_as_a_recorded_admin(acme_connection):
    acme_connection.jid = "5511900000000:7@s.whatsapp.net"
    acme_connection.save()
    feed(acme_connection, incoming("G1", "um", chat=GROUP, sender=PN_ANA), incoming("G2", "dois", chat=GROUP, sender=PN_ANA))
    # Nothing is known about the group's admins yet: only the original sender may revoke.
    feed(acme_connection, _from(GROUP, ME, "R-ME-1", b.revoke("G1", GROUP), from_me=True))
    assert Message.objects.unscoped().get(external_id="G1").deleted_at is None
    _group_with(acme_connection, (PN_ANA, False), (ME, True))
    feed(acme_connection, _from(GROUP, ME, "R-ME-2", b.revoke("G2", GROUP), from_me=True))
    assert Message.objects.unscoped().get(external_id="G2").deleted_at is not None


def test_a_reaction_is_its_reactors_own(acme_connection):
    _group_with(acme_connection, (PN_ANA, False), (PN_BRUNO, False))
    feed(acme_connection, incoming("G1", "votem", chat=GROUP, sender=PN_ANA))
    feed(acme_connection, _from(GROUP, PN_ANA, "X-ANA", b.reaction("G1", "👍", GROUP)),
         _from(GROUP, PN_BRUNO, "X-BRUNO", b.reaction("G1", "❤️", GROUP)))
    assert Message.objects.unscoped().get(external_id="G1").reactions == {PN_ANA: "👍", PN_BRUNO: "❤️"}
    # Bruno replacing, then removing, his reaction leaves Ana's alone.
    feed(acme_connection, _from(GROUP, PN_BRUNO, "X-BRUNO-2", b.reaction("G1", "😂", GROUP, target_participant=PN_ANA)),
         _from(GROUP, PN_BRUNO, "X-BRUNO-3", b.reaction("G1", "", GROUP), T0 + 61))
    assert Message.objects.unscoped().get(external_id="G1").reactions == {PN_ANA: "👍"}
    # Carla is not in the group; a stranger in a 1:1 chat cannot react to a message of another chat either.
    feed(acme_connection, _from(GROUP, PN_CARLA, "X-CARLA", b.reaction("G1", "👎", GROUP)),
         _from(PN_CARLA, PN_CARLA, "X-CARLA-2", b.reaction("G1", "👎", GROUP)))
    assert Message.objects.unscoped().get(external_id="G1").reactions == {PN_ANA: "👍"}
    assert _refused_total() == {"refused_reaction": 2}


def test_a_reaction_from_either_jid_of_one_person_is_one_reaction(acme_connection):
    feed(acme_connection, incoming("A1", "oi", sender_alt=LID_ANA), from_phone("O1", "olá"))
    feed(acme_connection, _from(LID_ANA, LID_ANA, "X1", b.reaction("O1", "👍", ME, target_from_me=True)))
    feed(acme_connection, _from(PN_ANA, PN_ANA, "X2", b.reaction("O1", "🙏", ME, target_from_me=True), T0 + 61))
    assert Message.objects.unscoped().get(external_id="O1").reactions == {PN_ANA: "🙏"}


def test_a_receipt_from_a_third_party_does_not_mark_our_message_read(acme_connection):
    feed(acme_connection, incoming("A1", "oi"), from_phone("O1", "seu pedido saiu"), incoming("B1", "oi", chat=PN_BRUNO))
    feed(acme_connection, b.receipt_ev(PN_BRUNO, ["O1"], "read"),  # Bruno, in his chat, names our message to Ana
         b.receipt_ev(PN_ANA, ["O1"], "read", sender=PN_BRUNO),  # claims Ana's chat with Bruno as sender
         b.receipt_ev(PN_ANA, ["A1"], "read"))  # Ana "reads" her own message: not ours
    assert Message.objects.unscoped().get(external_id="O1").status == "sent"
    assert Message.objects.unscoped().get(external_id="A1").status == "received"
    assert _refused_total() == {"refused_receipt": 3}
    notes = sorted(r.error for r in RawEvent.objects.unscoped().filter(event_name="ReceiptEv"))
    assert notes == [
        f"refused receipt of message A1 by {PN_ANA} in {PN_ANA}: receipt for a message we did not send",
        f"refused receipt of message O1 by {PN_BRUNO} in {PN_ANA}: sender is not a party of the chat",
        f"refused receipt of message O1 by {PN_BRUNO} in {PN_BRUNO}: claimed chat is not the message's chat "
        f"{PN_ANA}",
    ]
    feed(acme_connection, b.receipt_ev(PN_ANA, ["O1"], "read", ts=T0 + 200))
    assert Message.objects.unscoped().get(external_id="O1").status == "read"


def test_a_receipt_from_the_lid_of_the_chat_is_its_partys(acme_connection):
    feed(acme_connection, from_phone("O1", "olá"))  # Ana's chat is known by her phone JID only
    feed(acme_connection, b.receipt_ev(LID_ANA, ["O1"], "delivered"))  # her LID, never mapped: cannot be told apart
    assert Message.objects.unscoped().get(external_id="O1").status == "sent"
    feed(acme_connection, b.receipt_ev(LID_ANA, ["O1"], "read", ts=T0 + 300, sender_alt=PN_ANA))
    assert Message.objects.unscoped().get(external_id="O1").status == "read"
    assert _refused_total() == {"refused_receipt": 1}


def test_group_receipts_only_from_participants(acme_connection):
    _group_with(acme_connection, (PN_ANA, False), (PN_BRUNO, False))
    feed(acme_connection, from_phone("GO1", "aviso", chat=GROUP))
    feed(acme_connection, b.receipt_ev(GROUP, ["GO1"], "read", sender=PN_CARLA))
    assert Message.objects.unscoped().get(external_id="GO1").status == "sent"
    feed(acme_connection, b.receipt_ev(GROUP, ["GO1"], "delivered", sender=PN_BRUNO))
    assert Message.objects.unscoped().get(external_id="GO1").status == "delivered"


@pytest.mark.smoke
def test_the_original_sender_edits_and_revokes_from_her_lid(acme_connection):
    # Ana's messages are stored under her phone-number JID; WhatsApp tells us her LID beside it.
    feed(acme_connection, incoming("A1", "texto original", sender_alt=LID_ANA), incoming("A2", "vai sumir"))
    assert Message.objects.unscoped().get(external_id="A1").sender_jid == PN_ANA
    feed(acme_connection, _from(LID_ANA, LID_ANA, "E1", b.edit("A1", "texto corrigido", ME, target_from_me=False)),
         _from(LID_ANA, LID_ANA, "R1", b.revoke("A2", ME)))
    a1, a2 = Message.objects.unscoped().get(external_id="A1"), Message.objects.unscoped().get(external_id="A2")
    assert a1.body == "texto corrigido" and a2.deleted_at is not None
    assert _refused_total() == {}
    assert not RawEvent.objects.unscoped().exclude(error="").exists()


def test_the_original_sender_in_a_group_edits_from_her_lid(acme_connection):
    feed(acme_connection, incoming("G1", "oi grupo", chat=GROUP, sender=PN_ANA, sender_alt=LID_ANA))
    feed(acme_connection, _from(GROUP, LID_ANA, "E1", b.edit("G1", "oi, grupo", GROUP, target_from_me=False),
                                sender_alt=PN_ANA))
    assert Message.objects.unscoped().get(external_id="G1").body == "oi, grupo"


def test_operations_waiting_for_their_target_are_checked_when_it_arrives(acme_connection):
    feed(acme_connection, incoming("A1", "oi"))
    # Before our messages O1 and O2 are stored: Ana's forged edit of O1, our own edit of O2, Bruno's receipt.
    feed(acme_connection, _from(PN_ANA, PN_ANA, "E-FORGED", b.edit("O1", "forjado", ME, target_from_me=True)),
         _from(PN_ANA, ME, "E-OURS", b.edit("O2", "corrigido", PN_ANA), from_me=True),
         b.receipt_ev(PN_BRUNO, ["O1"], "read"))
    assert PendingOperation.objects.unscoped().count() == 3
    pending = PendingOperation.objects.unscoped().get(target_external_id="O1", kind="edit")
    assert (pending.chat_jid, pending.sender_jid, pending.from_me) == (PN_ANA, PN_ANA, False)
    assert pending.raw_event_id == _row("E-FORGED").pk

    feed(acme_connection, from_phone("O1", "original 1"), from_phone("O2", "original 2"))
    assert Message.objects.unscoped().get(external_id="O1").body == "original 1"
    assert Message.objects.unscoped().get(external_id="O1").status == "sent"
    assert Message.objects.unscoped().get(external_id="O2").body == "corrigido"
    assert not PendingOperation.objects.unscoped().exists()
    # The refusals are noted on the rows that brought them and counted on the run that applied them.
    assert "refused edit of message O1" in _row("E-FORGED").error
    assert "refused receipt of message O1" in RawEvent.objects.unscoped().get(event_name="ReceiptEv").error
    assert SyncRun.objects.unscoped().get(pk=_row("O1").sync_run_id).refused == {"refused_edit": 1, "refused_receipt": 1}


def test_a_receipt_waiting_for_an_outbox_reply_is_checked_when_the_reply_gets_its_id(acme_connection, acme_agent):
    feed(acme_connection, incoming("A1", "oi"))
    conv = Conversation.objects.unscoped().get()
    with transaction.atomic():
        do_queue_reply(conv, acme_agent, "resposta")
    [claimed] = outbox.claim_outbound(acme_connection.pk)
    feed(acme_connection, b.receipt_ev(PN_BRUNO, ["3EB0REPLY01"], "read"),
         b.receipt_ev(PN_ANA, ["3EB0REPLY01"], "delivered"))
    outbox.do_mark_sent(claimed, "3EB0REPLY01", datetime(2025, 10, 9, 9, 0, tzinfo=UTC))
    assert Message.objects.unscoped().get(pk=claimed.pk).status == "delivered"
    assert not PendingOperation.objects.unscoped().exists()
    bruno_row = RawEvent.objects.unscoped().filter(event_name="ReceiptEv").order_by("id").first()
    assert bruno_row.error == (f"refused receipt of message 3EB0REPLY01 by {PN_BRUNO} in {PN_BRUNO}: claimed chat is "
                               f"not the message's chat {PN_ANA}")


def test_a_pending_operation_recorded_before_senders_were_checked_is_refused(acme_connection):
    feed(acme_connection, incoming("A1", "oi"))
    PendingOperation.objects.create(tenant=acme_connection.tenant, connection=acme_connection, kind="edit",
                                    target_external_id="O1", data={"body": "antigo", "at": "2025-10-09T09:00:00+00:00"},
                                    digest="legacy-1")
    feed(acme_connection, from_phone("O1", "original"))
    assert Message.objects.unscoped().get(external_id="O1").body == "original"
    assert not PendingOperation.objects.unscoped().exists()
    assert _refused_total() == {"refused_edit": 1}
    with transaction.atomic():
        assert apply_pending_operations(acme_connection) == 0


def test_checking_operations_costs_the_same_queries_for_two_or_twenty(acme_connection):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    members = [f"55119876{i:05d}@s.whatsapp.net" for i in range(40)]
    _group_with(acme_connection, *[(m, False) for m in members])
    feed(acme_connection, *[incoming(f"G{i}", "oi", chat=GROUP, sender=m) for i, m in enumerate(members)])

    def queries(first, n):
        events = [_from(GROUP, members[i], f"X{i}", b.reaction(f"G{i}", "👍", GROUP)) for i in range(first, first + n)]
        with CaptureQueriesContext(connection) as ctx:
            feed(acme_connection, *events)
        return len(ctx)

    assert queries(0, 2) == queries(2, 20)
    assert Message.objects.unscoped().filter(reactions__has_key=members[21]).count() == 1
    assert _refused_total() == {}
