"""Ingestion of real neonize events: messages, content types, history, names, groups, filters."""

from datetime import UTC, datetime

import pytest

from inbox.models import Contact, ContactIdentity, Conversation, GroupParticipant, Message
from sync import events_builder as b
from sync.models import RawEvent, SyncRun
from tests.sync.helpers import GROUP, LID_ANA, ME, PN_ANA, PN_BRUNO, T0, feed, from_phone, incoming

pytestmark = pytest.mark.django_db


@pytest.mark.smoke
def test_incoming_text_creates_contact_conversation_and_message(acme_connection):
    summary = feed(acme_connection, incoming("3EB0A1", "oi, tudo bem?"))
    assert summary.processed == 1 and summary.saved == 1
    msg = Message.objects.unscoped().get()
    assert (msg.external_id, msg.direction, msg.status, msg.body) == ("3EB0A1", "in", "received", "oi, tudo bem?")
    assert msg.sent_at == datetime.fromtimestamp(T0, UTC)
    assert msg.sender_jid == PN_ANA and msg.sender_name == "Ana"
    conv = Conversation.objects.unscoped().get()
    assert conv.chat_jid == PN_ANA and not conv.is_group
    assert conv.unread_count == 1
    assert conv.last_message_at == msg.sent_at and conv.last_message_preview == "oi, tudo bem?"
    assert conv.oldest_synced_at == conv.newest_synced_at == msg.sent_at
    contact = conv.contact
    assert contact.push_name == "Ana" and contact.phone_number == "+5511987654321"
    assert list(contact.identities.values_list("jid", "kind")) == [(PN_ANA, "pn")]
    assert RawEvent.objects.unscoped().get().state == "processed"


def test_message_sent_from_the_phone_is_outbound_sent(acme_connection):
    feed(acme_connection, incoming("IN1", ts=T0), from_phone("OUT1", "já respondo", ts=T0 + 5))
    out = Message.objects.unscoped().get(external_id="OUT1")
    assert (out.direction, out.status, out.sender_jid) == ("out", "sent", "")
    conv = Conversation.objects.unscoped().get()
    assert conv.unread_count == 1  # only the inbound one
    assert conv.last_message_preview == "já respondo"
    assert Conversation.objects.unscoped().count() == 1


def test_content_types_are_decoded_and_unknown_content_kept(acme_connection):
    feed(
        acme_connection,
        incoming("Q1", b.extended_text("sim", quoted_id="IN0", quoted_text="pode ser amanhã?")),
        incoming("IMG", b.image(mimetype="image/png", size=2048, caption="foto")),
        incoming("DOC", b.ephemeral(b.document("nota.pdf", size=999))),
        incoming("VID", b.view_once(b.video(caption="vid"))),
        incoming("AUD", b.audio()),
        incoming("STK", b.sticker()),
        incoming("VCF", b.contact_card("Carla", "BEGIN:VCARD\nFN:Carla\nEND:VCARD")),
        incoming("LOC", b.location(-23.5, -46.6, name="Escritório")),
        incoming("POLL", b.unsupported_poll("Pizza?")),
        from_phone("DEV", b.device_sent(b.text("do celular"), PN_ANA)),
    )
    m = {x.external_id: x for x in Message.objects.unscoped().all()}
    assert len(m) == 10
    assert (m["Q1"].body, m["Q1"].quoted_external_id, m["Q1"].quoted_body) == ("sim", "IN0", "pode ser amanhã?")
    assert (m["IMG"].type, m["IMG"].media_mimetype, m["IMG"].media_size, m["IMG"].body) == ("image", "image/png", 2048, "foto")
    assert (m["DOC"].type, m["DOC"].media_filename) == ("document", "nota.pdf")
    assert (m["VID"].type, m["VID"].body) == ("video", "vid")
    assert m["AUD"].type == "audio" and m["STK"].type == "sticker"
    assert m["VCF"].type == "contact" and "FN:Carla" in m["VCF"].extra["contacts"][0]["vcard"]
    assert m["LOC"].type == "location" and m["LOC"].extra["latitude"] == -23.5 and m["LOC"].body == "Escritório"
    assert (m["POLL"].type, m["POLL"].raw_type) == ("unsupported", "pollCreationMessage")
    assert (m["DEV"].body, m["DEV"].direction) == ("do celular", "out")


def test_timestamps_in_seconds_milliseconds_zero_and_future(acme_connection):
    future_ms = int(datetime(2100, 1, 1, tzinfo=UTC).timestamp() * 1000)
    feed(acme_connection,
         b.message_ev(PN_ANA, PN_ANA, "SEC", "s", T0),  # seconds where ms are expected
         b.message_ev(PN_ANA, PN_ANA, "ZERO", "z", 0),
         b.message_ev(PN_ANA, PN_ANA, "FUT", "f", future_ms))
    m = {x.external_id: x for x in Message.objects.unscoped().all()}
    assert m["SEC"].sent_at == datetime.fromtimestamp(T0, UTC)
    raw = RawEvent.objects.unscoped().order_by("id")
    assert m["ZERO"].sent_at == raw[1].received_at
    assert m["FUT"].sent_at == raw[2].received_at


def test_history_sync_conversations_messages_names_and_progress(acme_connection):
    conv = b.history_conversation(
        PN_ANA,
        [b.web_message(PN_ANA, "H1", "primeira", T0 - 100, push_name="Ana Paula"),
         b.web_message(PN_ANA, "H2", "resposta", T0 - 50, from_me=True, status="read")],
        name="Ana (cliente)", unread_count=1,
    )
    group = b.history_conversation(
        GROUP, [b.web_message(GROUP, "G1", "bom dia", T0 - 10, participant=PN_BRUNO, push_name="Bruno")], name="Equipe",
    )
    feed(acme_connection, b.history_sync_ev([conv, group], "INITIAL_BOOTSTRAP", chunk_order=1, progress=45,
                                            pushnames=[(PN_BRUNO, "Bruno B")]))
    h2 = Message.objects.unscoped().get(external_id="H2")
    assert (h2.direction, h2.status) == ("out", "read")
    ana = Conversation.objects.unscoped().get(chat_jid=PN_ANA)
    assert ana.unread_count == 1 and ana.last_message_preview == "resposta"
    assert ana.oldest_synced_at == datetime.fromtimestamp(T0 - 100, UTC)
    assert ana.contact.display_name == "Ana (cliente)" and ana.contact.push_name == "Ana Paula"
    g = Conversation.objects.unscoped().get(chat_jid=GROUP)
    assert g.is_group and g.contact.kind == "group" and g.contact.display_name == "Equipe"
    g1 = Message.objects.unscoped().get(external_id="G1")
    assert (g1.sender_jid, g1.sender_name) == (PN_BRUNO, "Bruno")
    run = SyncRun.objects.unscoped().get(kind="history")
    assert (run.progress, run.last_chunk_order, run.chunks, run.finished_at) == (45, 1, 1, None)
    assert (run.received, run.saved) == (3, 3)
    feed(acme_connection, b.history_sync_ev([], "INITIAL_BOOTSTRAP", chunk_order=2, progress=100))
    run.refresh_from_db()
    assert run.progress == 100 and run.finished_at is not None and not run.discrepancy


@pytest.mark.smoke
def test_filters_skip_status_and_newsletters_by_exact_server_and_count_them(acme_connection):
    summary = feed(
        acme_connection,
        b.message_ev("status@broadcast", PN_ANA, "ST1", "meu status"),
        b.message_ev("120363111111111111@newsletter", "120363111111111111@newsletter", "NL1", "news"),
        b.message_ev(GROUP, PN_BRUNO, "GR1", "no grupo"),
        b.message_ev("1760000000@broadcast", ME, "BL1", "lista", from_me=True),
        # a chat whose user part merely contains "status"/"broadcast" is not filtered
        incoming("OK1", "oi", chat="5511955550000@s.whatsapp.net"),
    )
    assert set(Message.objects.unscoped().values_list("external_id", flat=True)) == {"GR1", "BL1", "OK1"}
    assert summary.skipped == {"status_broadcast": 1, "newsletter": 1}
    run = SyncRun.objects.unscoped().get(pk=summary.run_ids[0])
    assert run.skipped == {"status_broadcast": 1, "newsletter": 1} and run.received == 5 and run.saved == 3
    acme_connection.skip_broadcast_lists = True
    acme_connection.save()
    summary = feed(acme_connection, b.message_ev("1760000000@broadcast", ME, "BL2", "lista 2", from_me=True))
    assert summary.skipped == {"broadcast_list": 1}
    assert not Message.objects.unscoped().filter(external_id="BL2").exists()


def test_groups_subject_participants_and_sender(acme_connection):
    feed(acme_connection, b.joined_group_ev(GROUP, "Suporte VIP", [
        b.group_participant(PN_ANA, lid=LID_ANA, phone=PN_ANA, is_admin=True),
        b.group_participant(PN_BRUNO),
    ]))
    group = Contact.objects.unscoped().get(kind="group")
    assert group.display_name == "Suporte VIP"
    assert ContactIdentity.objects.unscoped().get(jid=GROUP).kind == "group"
    members = dict(GroupParticipant.objects.unscoped().filter(group=group).values_list("member__phone_number", "is_admin"))
    assert members == {"+5511987654321": True, "+5521999998888": False}
    # The LID of a participant is the same person.
    identities = ContactIdentity.objects.unscoped()
    assert identities.get(jid=LID_ANA).contact_id == identities.get(jid=PN_ANA).contact_id
    feed(acme_connection, b.group_info_ev(GROUP, name="Suporte", leave=[PN_BRUNO], demote=[PN_ANA]),
         b.message_ev(GROUP, LID_ANA, "GM1", "oi grupo", push_name="Ana"))
    group.refresh_from_db()
    assert group.display_name == "Suporte"
    assert list(GroupParticipant.objects.unscoped().filter(group=group).values_list("member__phone_number", "is_admin")) == [
        ("+5511987654321", False)]
    gm = Message.objects.unscoped().get(external_id="GM1")
    assert gm.sender_jid == PN_ANA and gm.conversation.chat_jid == GROUP


@pytest.mark.smoke
def test_brazilian_number_with_and_without_ninth_digit_is_one_contact(acme_connection):
    feed(acme_connection, incoming("N9", "com nove", chat="5511987654321@s.whatsapp.net"),
         incoming("N8", "sem nove", chat="551187654321@s.whatsapp.net"))
    assert Contact.objects.unscoped().count() == 1
    conv = Conversation.objects.unscoped().get()
    assert conv.chat_jid == "5511987654321@s.whatsapp.net" and conv.messages.count() == 2
    assert Contact.objects.unscoped().get().phone_number == "+5511987654321"


def test_me_constant_is_not_a_contact(acme_connection):
    feed(acme_connection, from_phone("O1"))
    assert not ContactIdentity.objects.unscoped().filter(jid=ME).exists()
