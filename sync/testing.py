"""An event scenario built from real neonize protobufs: the generator of the tests' capture fixture.

``scenario_events()`` is a small but complete day of a support number: a history sync with a LID/PN
mapping, live messages of every kind, a group, receipts, an edit, a revoke, a reaction, status and
newsletter noise, an undecryptable message and a reconnect catch-up. ``write_capture(path)`` writes it
as a capture file: tests/fixtures/capture_day.jsonl is its output, byte for byte (regenerate it with
``python -c "from sync.testing import write_capture; write_capture('tests/fixtures/capture_day.jsonl')"``).
Nothing else imports this module.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sync import events_builder as b
from sync.capture import encode_line

ME = "5511900000000@s.whatsapp.net"
ANA_PN, ANA_LID = "5511987654321@s.whatsapp.net", "201234567890123@lid"
BRUNO_PN = "5521999998888@s.whatsapp.net"
CARLA_PN_OLD = "553188887777@s.whatsapp.net"  # Brazilian mobile written without the ninth digit
CARLA_LID = "209876543210987@lid"
GROUP = "120363025555555555@g.us"
T0 = 1_760_000_000


def scenario_events():
    """Events in arrival order, as neonize protobuf objects."""
    history = b.history_sync_ev(
        [
            b.history_conversation(ANA_PN, [
                b.web_message(ANA_PN, "H-ANA-1", "Bom dia, meu pedido não chegou", T0 - 7200, push_name="Ana"),
                b.web_message(ANA_PN, "H-ANA-2", "Vou verificar", T0 - 7100, from_me=True, status="read"),
            ], name="Ana Souza", lid_jid=ANA_LID, unread_count=0),
            b.history_conversation(CARLA_LID, [
                b.web_message(CARLA_LID, "H-CARLA-1", b.image(caption="comprovante"), T0 - 3600),
            ], name="Carla", unread_count=1),
            b.history_conversation(GROUP, [
                b.web_message(GROUP, "H-GRP-1", "reunião às 10h", T0 - 1800, participant=BRUNO_PN, push_name="Bruno"),
            ], name="Equipe de vendas"),
        ],
        "INITIAL_BOOTSTRAP", chunk_order=1, progress=60,
        pushnames=[(BRUNO_PN, "Bruno")], mappings=[(ANA_PN, ANA_LID)],
    )
    history_end = b.history_sync_ev(
        [b.history_conversation(BRUNO_PN, [b.web_message(BRUNO_PN, "H-BRUNO-1", "oi", T0 - 600)])],
        "INITIAL_BOOTSTRAP", chunk_order=2, progress=100,
    )
    ms = 1000
    return [
        b.connected_ev(),
        history,
        history_end,
        b.joined_group_ev(GROUP, "Equipe de vendas", [
            b.group_participant(BRUNO_PN, is_admin=True), b.group_participant(ANA_LID, lid=ANA_LID, phone=ANA_PN),
        ]),
        b.message_ev(ANA_LID, ANA_LID, "LIVE-ANA-1", "Alguma novidade?", (T0 + 10) * ms, sender_alt=ANA_PN, push_name="Ana"),
        b.message_ev(ANA_PN, ME, "LIVE-ME-1", "Saiu para entrega hoje", (T0 + 20) * ms, from_me=True),
        b.receipt_ev(ANA_PN, ["LIVE-ME-1"], "delivered", T0 + 25),
        b.receipt_ev(ANA_PN, ["LIVE-ME-1"], "read", T0 + 30),
        b.message_ev(ANA_PN, ME, "LIVE-ME-2",
                     b.edit("LIVE-ME-1", "Saiu para entrega hoje de manhã", ANA_PN), (T0 + 40) * ms, from_me=True),
        b.message_ev(ANA_PN, ANA_PN, "LIVE-ANA-2", b.reaction("LIVE-ME-1", "🙏", ANA_PN, target_from_me=True), (T0 + 50) * ms),
        b.message_ev(CARLA_PN_OLD, CARLA_PN_OLD, "LIVE-CARLA-1", b.extended_text("segue", "H-CARLA-1", "comprovante"),
                     (T0 + 60) * ms, sender_alt=CARLA_LID, push_name="Carla M."),
        b.message_ev(CARLA_PN_OLD, CARLA_PN_OLD, "LIVE-CARLA-2", "mensagem errada", (T0 + 61) * ms),
        b.message_ev(CARLA_PN_OLD, CARLA_PN_OLD, "LIVE-CARLA-3", b.revoke("LIVE-CARLA-2", CARLA_PN_OLD), (T0 + 62) * ms),
        b.message_ev(GROUP, BRUNO_PN, "LIVE-GRP-1", b.document("tabela.pdf", size=52_000), (T0 + 70) * ms, push_name="Bruno"),
        b.message_ev("status@broadcast", BRUNO_PN, "STATUS-1", "meu status", (T0 + 80) * ms),
        b.message_ev("120363111111111111@newsletter", "120363111111111111@newsletter", "NEWS-1", "novidades", (T0 + 90) * ms),
        b.undecryptable_message_ev(BRUNO_PN, BRUNO_PN, "UNDEC-1", (T0 + 95) * ms),
        b.offline_sync_preview_ev(total=2, messages=2),
        b.message_ev(BRUNO_PN, BRUNO_PN, "OFF-BRUNO-1", b.location(-23.56, -46.65, name="Loja Paulista"), (T0 + 100) * ms,
                     push_name="Bruno"),
        b.message_ev(BRUNO_PN, BRUNO_PN, "OFF-BRUNO-2", b.audio(seconds=12), (T0 + 101) * ms, push_name="Bruno"),
        b.offline_sync_completed_ev(2),
    ]


def write_capture(path, events=None, start: datetime | None = None) -> int:
    """Write events as a capture file; returns how many lines were written."""
    start = start or datetime(2025, 10, 9, 12, 0, tzinfo=UTC)
    events = scenario_events() if events is None else events
    with open(path, "w", encoding="utf-8") as fh:
        for i, ev in enumerate(events):
            name, data = b.serialize(ev)
            fh.write(encode_line(name, data, start + timedelta(seconds=i)))
    return len(events)
