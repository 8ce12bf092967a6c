"""The processor decodes the next big batch while the current one's messages are COPYed."""

import pytest

from inbox.models import Message
from sync import events_builder as b
from sync.journal import journal_events
from sync.models import RawEvent
from sync.processor import DECODE_AHEAD_BYTES, process_pending, requeue
from sync.timing import phase_timings
from tests.sync.helpers import T0

pytestmark = pytest.mark.django_db


def big_chunk(order: int, n: int = 8_500) -> bytes:
    convs = []
    for c in range(10):
        chat = f"55119{order:03d}{c:05d}@s.whatsapp.net"
        msgs = [b.web_message(chat, f"AH{order:02d}{c:02d}{k:05d}", f"mensagem {k} da conversa {c} " + "texto " * (k % 7),
                              T0 + k, from_me=k % 4 == 3, push_name="Pessoa") for k in range(n // 10)]
        convs.append(b.history_conversation(chat, msgs, name=f"Contato {c}"))
    return b.history_sync_ev(convs, "INITIAL_BOOTSTRAP", chunk_order=order, progress=order * 25).SerializeToString()


def test_big_batches_decoded_ahead_keep_order_failures_and_replay(acme_connection):
    chunks = [big_chunk(i) for i in range(1, 4)]
    assert all(len(c) > DECODE_AHEAD_BYTES for c in chunks)
    truncated = chunks[1][:-3]  # a corrupt copy of chunk 2, decoded ahead too: fails, later rows still flow
    journal_events(acme_connection.pk, [("HistorySyncEv", chunks[0], None), ("HistorySyncEv", truncated, None),
                                        ("HistorySyncEv", chunks[1], None), ("HistorySyncEv", chunks[2], None)],
                   schedule=False)
    with phase_timings() as totals:
        summary = process_pending(acme_connection.pk, batch_size=1, wait=True)  # one row per batch
    assert totals["decode_beside_copy"] > 0  # the next batches were decoded during a COPY
    assert summary.processed == 3 and summary.failed == 1 and summary.saved == 25_500
    bad = RawEvent.objects.unscoped().get(connection=acme_connection, state="failed")
    assert bad.attempts == 1 and "HistorySyncEv: payload is not a valid" in bad.error
    assert Message.objects.unscoped().filter(connection=acme_connection).count() == 25_500
    # Replay of everything processed: nothing new.
    requeue(RawEvent.objects.unscoped().filter(connection=acme_connection, state="processed"))
    again = process_pending(acme_connection.pk, batch_size=1, wait=True)
    assert again.saved == 0 and again.duplicates == 25_500
    assert Message.objects.unscoped().filter(connection=acme_connection).count() == 25_500
