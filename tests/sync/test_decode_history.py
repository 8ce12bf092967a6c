"""History decoding of text messages: the short cut for plain text must give exactly what the general
classification gives, at every boundary it relies on (no database: decode only)."""

from datetime import UTC, datetime, timedelta

import pytest
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as E

from sync import events_builder as b
from sync.decode import MAX_BODY, DecodeError, decode_event
from tests.sync.helpers import GROUP, PN_ANA, PN_BRUNO, T0

RECEIVED = datetime(2025, 10, 10, 12, 0, tzinfo=UTC)


def _history(*bodies, chat=PN_ANA, ts=T0, ids=None, **kwargs):
    msgs = [b.web_message(chat, (ids or {}).get(i, f"H{i}"), body, ts + i, **kwargs) for i, body in enumerate(bodies)]
    ev = b.history_sync_ev([b.history_conversation(chat, msgs)])
    return decode_event("HistorySyncEv", ev.SerializeToString(), RECEIVED)


@pytest.mark.parametrize("length", [1, 127, 128, 129, 16_383, 16_384, 16_385])
@pytest.mark.parametrize("char", ["a", "ç", "😀"])
def test_plain_text_of_every_length_keeps_its_whole_body(length, char):
    body = char * length
    out = _history(body, b.text(body + "!"))
    assert [(m.type, m.body, m.raw_type, m.extra) for m in out.messages] == [
        ("text", body, "", {}), ("text", body + "!", "", {})]
    assert out.problems == []


def test_text_beside_metadata_or_inside_a_wrapper_is_read_like_any_other():
    with_metadata = E.Message(conversation="com contexto", messageContextInfo=E.MessageContextInfo())
    # A wrapper beside the text wins: its inner message is the content (here an image).
    wrapped = E.Message(conversation="ignorado", ephemeralMessage=E.FutureProofMessage(message=b.image(caption="foto")))
    ext_with_metadata = E.Message(extendedTextMessage=E.ExtendedTextMessage(text="ext"),
                                  messageContextInfo=E.MessageContextInfo())
    reply = b.extended_text("resposta", quoted_id="Q1", quoted_text="pergunta")
    out = _history(with_metadata, wrapped, ext_with_metadata, reply, b.ephemeral(b.text("efêmera")), "")
    assert [(m.type, m.body, m.raw_type, m.quoted_external_id, m.quoted_body) for m in out.messages] == [
        ("text", "com contexto", "", "", ""),
        ("image", "foto", "imageMessage", "", ""),
        ("text", "ext", "", "", ""),
        ("text", "resposta", "", "Q1", "pergunta"),
        ("text", "efêmera", "", "", ""),
        ("text", "", "", "", ""),
    ]


def test_invalid_utf8_and_overlong_text_are_noted():
    ev = b.history_sync_ev([b.history_conversation(PN_ANA, [
        b.web_message(PN_ANA, "BAD", "XXXX-texto", T0, push_name="YYYY"),
        b.web_message(PN_ANA, "BIG", "a" * (MAX_BODY + 5), T0 + 1),
    ])])
    data = ev.SerializeToString().replace(b"XXXX", b"\xff\xfe\xfdX").replace(b"YYYY", b"\xffAna")
    out = decode_event("HistorySyncEv", data, RECEIVED)
    bad, big = out.messages
    assert bad.body == "\ufffd\ufffd\ufffdX-texto" and bad.push_name == "\ufffdAna"
    assert len(big.body) == MAX_BODY and big.extra == {"truncated_from": MAX_BODY + 5}
    assert out.problems == [
        "invalid UTF-8 in push name replaced", "invalid UTF-8 in text replaced",
        f"message BIG: body of {MAX_BODY + 5} characters cut to {MAX_BODY}",
    ]
    assert out.push_names == [(PN_ANA, "\ufffdAna")]


def test_sender_status_and_timestamps_of_history_text():
    day = int(RECEIVED.timestamp())
    msgs = [
        b.web_message(GROUP, "G1", "oi", day - 60, participant=PN_BRUNO, push_name="Bruno"),
        b.web_message(GROUP, "G2", "ms", (day - 30) * 1000, from_me=True, status="read"),
        b.web_message(GROUP, "G3", "us", (day - 10) * 1_000_000, from_me=True),
        b.web_message(GROUP, "G4", "zero", 0),
        b.web_message(GROUP, "G5", "future", day + 3 * 86_400),
    ]
    ev = b.history_sync_ev([b.history_conversation(GROUP, msgs)])
    out = decode_event("HistorySyncEv", ev.SerializeToString(), RECEIVED)
    assert [(m.sender_jid, m.from_me, m.is_group, m.status, m.live, m.timestamp) for m in out.messages] == [
        (PN_BRUNO, False, True, "", False, RECEIVED - timedelta(seconds=60)),
        ("", True, True, "read", False, RECEIVED - timedelta(seconds=30)),
        ("", True, True, "sent", False, RECEIVED - timedelta(seconds=10)),
        ("", False, True, "", False, RECEIVED),
        ("", False, True, "", False, RECEIVED),
    ]
    assert out.push_names == [(PN_BRUNO, "Bruno")]


@pytest.mark.parametrize(("mid", "error"), [("", "message without an id"),
                                            ("I" * 129, "message id longer than 128 characters")])
@pytest.mark.parametrize("content", ["dois", b.image(caption="foto")], ids=["text", "media"])
def test_a_message_with_a_bad_id_fails_alone_not_the_chunk(mid, error, content):
    out = _history("um", content, "três", ids={1: mid})
    assert [m.external_id for m in out.messages] == ["H0", "H2"]
    [failure] = out.failures
    assert (failure.reason, failure.chat_jid, failure.count) == (error, PN_ANA, 1)
    assert failure.position == "message order 2"  # the chunk's own order of the message in its chat
    assert out.received == 3 and out.failed == 1
    assert failure.describe().startswith(f"item failed: {error} (chat {PN_ANA}")


def test_conversations_without_a_usable_id_fail_their_messages_alone():
    ev = b.history_sync_ev([
        b.history_conversation("", [b.web_message(PN_ANA, "N1", "sem chat", T0), b.web_message(PN_ANA, "N2", "x", T0)]),
        b.history_conversation("9" * 200 + "@s.whatsapp.net", [b.web_message(PN_ANA, "L1", "chat longo", T0)]),
        b.history_conversation(GROUP, [b.web_message(GROUP, "G1", "participante longo", T0, participant="7" * 200 + "@lid"),
                                       b.web_message(GROUP, "G2", "ok", T0, participant=PN_BRUNO)]),
        b.history_conversation(PN_ANA, [b.web_message(PN_ANA, "A1", "ok", T0)]),
    ])
    out = decode_event("HistorySyncEv", ev.SerializeToString(), RECEIVED)
    assert [m.external_id for m in out.messages] == ["G2", "A1"]
    assert [(f.reason, f.count) for f in out.failures] == [
        ("history conversation without an ID", 2),
        ("history conversation ID longer than 128 characters", 1),
        ("sender JID longer than 128 characters", 1),
    ]
    assert out.received == 6 and out.failed == 4 and out.ignored == {}
    assert [c.chat_jid for c in out.chats] == [GROUP, PN_ANA]


def test_operations_without_a_target_id_fail_alone():
    out = _history(b.reaction("", "👍", PN_ANA), b.edit("", "novo", PN_ANA), b.revoke("X" * 129, PN_ANA),
                   b.reaction("H9", "👍", PN_ANA), "texto")
    assert [f.reason for f in out.failures] == [
        "reaction target without an id", "edit target without an id", "revoke target id longer than 128 characters"]
    assert [r.target_id for r in out.reactions] == ["H9"] and not out.edits and not out.revokes
    assert [m.external_id for m in out.messages] == ["H4"]
    assert out.received == 4  # one message and three failed operations; the good reaction is not counted


def test_a_live_message_without_an_id_still_fails_its_row():
    ev = b.message_ev(PN_ANA, PN_ANA, "", "oi")
    with pytest.raises(DecodeError, match="message without an id"):
        decode_event("MessageEv", ev.SerializeToString(), RECEIVED)


def test_media_fields_each_type_has_and_lacks():
    out = _history(
        b.image(caption="foto", size=10), b.video(caption="vid", seconds=9), b.video(seconds=0), b.audio(seconds=4),
        b.document("nota.pdf", caption="leia"), b.sticker(), b.ephemeral(b.document("sem legenda.pdf")),
    )
    assert [(m.type, m.body, m.raw_type, m.media_mimetype, m.media_size, m.media_filename, m.extra)
            for m in out.messages] == [
        ("image", "foto", "imageMessage", "image/jpeg", 10, "", {}),
        ("video", "vid", "videoMessage", "video/mp4", 123456, "", {"seconds": 9}),
        ("video", "", "videoMessage", "video/mp4", 123456, "", {}),
        ("audio", "", "audioMessage", "audio/ogg; codecs=opus", 2345, "", {"seconds": 4}),
        ("document", "leia", "documentMessage", "application/pdf", 4567, "nota.pdf", {}),
        ("sticker", "", "stickerMessage", "image/webp", 890, "", {}),
        ("document", "", "documentMessage", "application/pdf", 4567, "sem legenda.pdf", {}),
    ]


def _reply_to(quoted: E.Message | None, stanza_id="Q1"):
    return E.Message(extendedTextMessage=E.ExtendedTextMessage(
        text="resposta", contextInfo=E.ContextInfo(stanzaID=stanza_id, quotedMessage=quoted)))


def test_every_kind_of_quoted_message_gives_its_preview():
    out = _history(
        _reply_to(b.text("pergunta")),
        _reply_to(b.text("x" * 400)),
        _reply_to(E.Message(conversation="com contexto", messageContextInfo=E.MessageContextInfo())),
        _reply_to(E.Message(conversation="ignorado", viewOnceMessage=E.FutureProofMessage(message=b.text("dentro")))),
        _reply_to(b.ephemeral(b.extended_text("citada estendida"))),
        _reply_to(b.image()),
        _reply_to(b.video(caption="legenda")),
        _reply_to(b.sticker()),
        _reply_to(None),
        _reply_to(b.text("sem id"), stanza_id=""),
        _reply_to(b.text("id longo"), stanza_id="Q" * 200),
    )
    assert [(m.quoted_external_id, m.quoted_body) for m in out.messages] == [
        ("Q1", "pergunta"), ("Q1", "x" * 300), ("Q1", "com contexto"), ("Q1", "dentro"), ("Q1", "citada estendida"),
        ("Q1", "[image]"), ("Q1", "legenda"), ("Q1", "[sticker]"), ("Q1", ""), ("", ""), ("Q" * 128, "id longo"),
    ]
    assert {m.body for m in out.messages} == {"resposta"} and out.problems == []
