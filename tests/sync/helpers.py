"""Test helpers for the sync engine: journal real neonize events and process them."""

from sync import events_builder as b
from sync.journal import journal_events
from sync.processor import process_pending

PN_ANA = "5511987654321@s.whatsapp.net"
LID_ANA = "201234567890123@lid"
PN_BRUNO = "5521999998888@s.whatsapp.net"
GROUP = "120363025555555555@g.us"
ME = "5511900000000@s.whatsapp.net"
T0 = 1_760_000_000  # seconds


def feed(conn, *events, process=True, **kwargs):
    """Journal events (protobuf objects or (name, bytes) pairs) for ``conn`` and process them."""
    pairs = []
    for ev in events:
        name, data = ev if isinstance(ev, tuple) else b.serialize(ev)
        pairs.append((name, data, None))
    journal_events(conn.pk, pairs, schedule=False)
    if process:
        return process_pending(conn.pk, wait=True, **kwargs)
    return None


def incoming(id, text="oi", ts=T0, chat=PN_ANA, sender=None, sender_alt=None, push_name="Ana"):
    return b.message_ev(chat, sender or chat, id, text, ts * 1000, sender_alt=sender_alt, push_name=push_name)


def from_phone(id, text="olá", ts=T0, chat=PN_ANA, recipient_alt=None):
    return b.message_ev(chat, ME, id, text, ts * 1000, from_me=True, recipient_alt=recipient_alt)
