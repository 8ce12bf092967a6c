"""The live sweep: many numbers' small events in one transaction, and what it leaves to the
per-connection processor (history chunks, busy connections, rows that do not decode)."""

import threading
import time

import pytest
from django.db import connection as db

from inbox.models import Message
from sync import events_builder as b
from sync.models import RawEvent, SyncRun
from sync.processor import process_pending
from sync.sweep import sweep_live
from tests.factories import ConnectionFactory, TenantFactory
from tests.sync.helpers import feed, incoming
from tests.sync.test_tasks import _held_elsewhere

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not db.settings_dict["ENGINE"].endswith("postgresql"), reason="the sweep is PostgreSQL's"),
]


def customer(n):
    return f"55119{n:08d}@s.whatsapp.net"


def numbers(tenant, count):
    return [ConnectionFactory(tenant=tenant) for _ in range(count)]


def message(conn, n, text=None):
    return incoming(f"SW{conn.pk}x{n}", text or f"hello {n}", chat=customer(conn.pk % 50))


def test_every_numbers_live_messages_go_in_together_with_their_books():
    conns = numbers(TenantFactory(), 4) + numbers(TenantFactory(), 2)
    for c in conns:
        feed(c, *(message(c, n) for n in range(3)), process=False)
    summary = sweep_live()
    assert summary.processed == 18 and summary.saved == 18 and summary.connections == 6
    assert summary.handed_over == set()
    for c in conns:
        assert Message.objects.unscoped().filter(connection=c).count() == 3
        run = SyncRun.objects.unscoped().get(connection=c, kind=SyncRun.Kind.LIVE)
        assert (run.received, run.saved, run.duplicates, run.failed) == (3, 3, 0, 0) and run.balanced
        journal = RawEvent.objects.unscoped().filter(connection=c)
        assert set(journal.values_list("state", "sync_run_id")) == {("processed", run.pk)}
    # The same bytes journaled again change nothing; a new copy of a stored message is a duplicate.
    feed(conns[0], incoming(f"SW{conns[0].pk}x0", "hello 0", chat=customer(conns[0].pk % 50), ts=1_760_000_001),
         process=False)
    again = sweep_live()
    assert (again.processed, again.saved, again.duplicates) == (1, 0, 1)
    run = SyncRun.objects.unscoped().get(connection=conns[0], kind=SyncRun.Kind.LIVE)
    assert (run.received, run.saved, run.duplicates) == (4, 3, 1) and run.balanced


def test_a_shards_sweep_takes_only_its_own_numbers_and_the_other_shard_the_rest():
    conns = numbers(TenantFactory(), 4)  # consecutive ids: two in each of two shards
    for c in conns:
        feed(c, *(message(c, n) for n in range(2)), process=False)
    even = {c.pk for c in conns if c.pk % 2 == 0}
    first = sweep_live(shard=0, shards=2)
    assert (first.connections, first.saved) == (2, 4)
    stored = set(Message.objects.unscoped().values_list("connection_id", flat=True))
    assert stored == even
    second = sweep_live(shard=1, shards=2)
    assert (second.connections, second.saved) == (2, 4)
    assert set(Message.objects.unscoped().values_list("connection_id", flat=True)) == {c.pk for c in conns}
    assert sweep_live(shard=0, shards=2).processed == 0


def test_a_history_chunk_and_what_follows_it_are_left_to_the_connections_processor():
    tenant = TenantFactory()
    syncing, live = numbers(tenant, 2)
    chunk = b.bulk_history(3000, 30, 4000, id_prefix="SWH")[0]  # over a megabyte: a history chunk
    feed(syncing, message(syncing, 1), chunk, message(syncing, 2), process=False)
    feed(live, message(live, 1), process=False)
    summary = sweep_live()
    assert summary.handed_over == {syncing.pk}
    # Order kept: the message before the chunk went in, the chunk and the one after it wait for the
    # per-connection processor.
    assert set(Message.objects.unscoped().filter(connection=syncing)
               .values_list("external_id", flat=True)) == {f"SW{syncing.pk}x1"}
    assert Message.objects.unscoped().filter(connection=live).count() == 1
    process_pending(syncing.pk, wait=True)
    assert Message.objects.unscoped().filter(connection=syncing).count() == 3000 + 2


def test_a_busy_connection_is_skipped_and_a_row_that_does_not_decode_stops_its_connection():
    tenant = TenantFactory()
    busy, broken, fine = numbers(tenant, 3)
    feed(busy, message(busy, 1), process=False)
    feed(broken, ("MessageEv", b"\x00not a protobuf"), message(broken, 2), process=False)
    feed(fine, message(fine, 1), process=False)
    with _held_elsewhere(busy.pk):
        summary = sweep_live()
    assert Message.objects.unscoped().filter(connection=fine).count() == 1
    assert not Message.objects.unscoped().filter(connection=busy).exists()  # its holder processes it
    assert broken.pk in summary.handed_over and not Message.objects.unscoped().filter(connection=broken).exists()
    process_pending(broken.pk, wait=True)  # the per-connection processor fails the bad row alone
    assert RawEvent.objects.unscoped().filter(connection=broken, state=RawEvent.State.FAILED).count() == 1
    assert Message.objects.unscoped().filter(connection=broken).count() == 1
    sweep_live()
    assert Message.objects.unscoped().filter(connection=busy).count() == 1


def test_one_customer_writing_to_two_numbers_is_one_contact_with_two_conversations():
    tenant = TenantFactory()
    a, b_ = numbers(tenant, 2)
    same_id = "3EB0SAMEIDONBOTH"  # ids are unique per number, not across numbers
    feed(a, incoming(same_id, "to a", chat=customer(7)), process=False)
    feed(b_, incoming(same_id, "to b", chat=customer(7)), process=False)
    assert sweep_live().saved == 2
    from inbox.models import Contact, Conversation

    assert Contact.objects.unscoped().filter(tenant=tenant, kind="person").count() == 1
    convs = Conversation.objects.unscoped().filter(tenant=tenant)
    assert sorted(convs.values_list("connection_id", flat=True)) == sorted([a.pk, b_.pk])
    assert {c.last_message_preview for c in convs} == {"to a", "to b"} and all(c.unread_count == 1 for c in convs)


def test_the_sweeps_statements_do_not_grow_with_the_number_of_numbers():
    from django.db import connection as conn_db
    from django.test.utils import CaptureQueriesContext

    def statements(count):
        tenant = TenantFactory()
        conns = numbers(tenant, count)
        for c in conns:  # each number's first message opens its live run and its conversation
            feed(c, message(c, 0), process=False)
        sweep_live()
        for c in conns:
            feed(c, *(message(c, n) for n in range(1, 3)), process=False)
        with CaptureQueriesContext(conn_db) as ctx:
            assert sweep_live().processed == 2 * count
        return len(ctx.captured_queries)

    assert statements(3) == statements(12)


def test_a_sweep_batch_over_the_inline_limit_is_searchable_at_once_in_few_statements():
    """A live batch of more than INLINE_LIMIT messages over several numbers (each part small): every message gets
    its search entry in the batch's own transaction, none waits in the backlog, and the entries go in together
    (one statement per ``ARRAY_CHUNK`` messages), not one statement per number."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from inbox.models import MessageSearchEntry
    from inbox.statements import ARRAY_CHUNK
    from sync.models import SearchBacklog
    from sync.search_index import INLINE_LIMIT

    conns = numbers(TenantFactory(), 6)
    per = INLINE_LIMIT // len(conns) + 20  # each part small, the batch over the limit
    for c in conns:
        feed(c, *(message(c, n, f"pedido {c.pk} {n}") for n in range(per)), process=False)
    with CaptureQueriesContext(connection) as queries:
        summary = sweep_live()
    assert summary.saved == per * len(conns) > INLINE_LIMIT
    assert MessageSearchEntry.objects.unscoped().count() == per * len(conns)
    assert not SearchBacklog.objects.unscoped().exists()
    inserts = [q for q in queries.captured_queries if q["sql"].startswith("INSERT INTO inbox_messagesearchentry")]
    assert len(inserts) == -(-per * len(conns) // ARRAY_CHUNK)


@pytest.mark.django_db(transaction=True)
def test_the_due_rows_plan_settings_end_with_their_query():
    """``_due_rows`` sends its ``SET LOCAL``s with its query in one round trip: they hold for it and are gone
    after it (the worker's connection runs every other statement with the planner's defaults)."""
    from sync.sweep import _due_rows

    conn = numbers(TenantFactory(), 1)[0]
    feed(conn, message(conn, 0), message(conn, 1), process=False)
    rows = list(RawEvent.objects.unscoped().filter(connection=conn).order_by("id"))
    assert dict(_due_rows(0, 1)) == {conn.pk: [(r.pk, len(r.payload)) for r in rows]}
    with db.cursor() as cursor:
        cursor.execute("SELECT current_setting('enable_seqscan'), current_setting('enable_bitmapscan')")
        assert cursor.fetchone() == ("on", "on")


def test_a_preview_with_quotes_braces_and_backslashes_reaches_its_conversation_intact():
    """The aggregate UPDATE passes each column as one array literal (``pg_array``): a text full of the array
    syntax's own characters comes out as it went in, and each conversation gets its own."""
    from inbox.formatting import message_preview
    from inbox.models import Conversation

    texts = ['say "hi", {then} \\ leave', "line one\nline two, {a,b} \"q\" \\\\", "NULL", "olá 🎉 ,}{\""]
    conns = numbers(TenantFactory(), len(texts))
    for conn, text in zip(conns, texts, strict=True):
        feed(conn, message(conn, 0, "first"), message(conn, 1, text), process=False)
    assert sweep_live().saved == 2 * len(texts)
    for conn, text in zip(conns, texts, strict=True):
        conv = Conversation.objects.unscoped().get(connection=conn)
        assert conv.last_message_preview == message_preview(text) and conv.unread_count == 2
    assert "\\" in message_preview(texts[0]) and '"' in message_preview(texts[3])  # the characters survive


def test_a_swept_rows_failed_item_is_logged_with_its_row_and_a_skipped_one_counted_in_its_run(caplog):
    conn = numbers(TenantFactory(), 1)[0]
    feed(conn, message(conn, 1), process=False)
    sweep_live()  # a stored message for the receipt below to name, and the live run it opens
    out = Message.objects.unscoped().get(connection=conn)
    feed(conn, b.receipt_ev(out.conversation.chat_jid, [out.external_id, "X" * 129], "read"),
         incoming(f"SW{conn.pk}status", "a status", chat="status@broadcast", sender=customer(3)),
         message(conn, 2), process=False)
    receipt_row = RawEvent.objects.unscoped().filter(event_name="ReceiptEv").get()
    with caplog.at_level("WARNING", logger="sync.processor"):
        summary = sweep_live()
    assert (summary.processed, summary.saved, summary.handed_over) == (3, 1, set())
    run = SyncRun.objects.unscoped().get(connection=conn, kind=SyncRun.Kind.LIVE)
    assert (run.received, run.saved, run.failed, run.skipped) == (4, 2, 1, {"status_broadcast": 1})
    assert run.balanced
    failed = [r for r in caplog.records if r.getMessage() == "sync.item.failed"]
    assert [(r.raw_event_id, r.event_name, r.connection_id) for r in failed] == [(receipt_row.pk, "ReceiptEv", conn.pk)]
    receipt_row.refresh_from_db()
    assert receipt_row.state == RawEvent.State.PROCESSED and receipt_row.sync_run_id == run.pk
    assert receipt_row.error.startswith("item failed: receipt target id longer than 128 characters")


@pytest.mark.django_db(transaction=True)
def test_after_a_small_round_the_sweep_pauses_and_takes_what_came_meanwhile(settings):
    settings.LIVE_SWEEP_PAUSE_SECONDS = 1.5
    conn = numbers(TenantFactory(), 1)[0]
    feed(conn, message(conn, 1), process=False)
    first = RawEvent.objects.unscoped().get()

    def journal_more_once_the_first_is_processed():
        try:
            for _ in range(1000):
                if RawEvent.objects.unscoped().filter(pk=first.pk, state=RawEvent.State.PROCESSED).exists():
                    break
                time.sleep(0.01)
            feed(conn, message(conn, 2), message(conn, 3), process=False)
        finally:
            db.close()  # this thread's connection

    meanwhile = threading.Thread(target=journal_more_once_the_first_is_processed)
    meanwhile.start()
    summary = sweep_live()
    meanwhile.join()
    # Round 1 took the first message, round 2 (after the pause) the two that came meanwhile, round 3 nothing.
    assert (summary.sweeps, summary.processed, summary.saved) == (3, 3, 3)
    assert Message.objects.unscoped().filter(connection=conn).count() == 3


def test_a_pause_of_zero_runs_the_rounds_back_to_back_and_one_given_wins_over_the_setting(settings):
    settings.LIVE_SWEEP_PAUSE_SECONDS = 30  # would hold the first sweep 30 s, were pause=0 not to win
    conn = numbers(TenantFactory(), 1)[0]
    feed(conn, message(conn, 1), process=False)
    started = time.monotonic()
    first = sweep_live(pause=0)
    assert (first.sweeps, first.processed) == (2, 1)  # the first empty round ends it
    assert time.monotonic() - started < 20
    settings.LIVE_SWEEP_PAUSE_SECONDS = 0
    feed(conn, message(conn, 2), process=False)
    started = time.monotonic()
    summary = sweep_live(pause=0.5)
    assert (summary.sweeps, summary.processed) == (2, 1) and time.monotonic() - started >= 0.5


@pytest.mark.django_db(transaction=True)
def test_the_sweep_sends_the_list_rows_itself_with_no_worker_running():
    """After its commit the live sweep flushes the conversation-list rows in its own process (ADR-7 amended):
    with no Celery worker anywhere, an open inbox still gets its rows."""
    import asyncio

    from asgiref.sync import async_to_sync, sync_to_async
    from channels.layers import get_channel_layer

    from inbox import events

    tenant = TenantFactory()
    conns = numbers(tenant, 2)
    for c in conns:
        feed(c, message(c, 1), process=False)

    async def scenario():
        layer = get_channel_layer()
        spy = await layer.new_channel()
        await layer.group_add(events.inbox_group(tenant.pk), spy)
        try:
            summary = await sync_to_async(sweep_live)(pause=0)
            return summary, await asyncio.wait_for(layer.receive(spy), 5)
        finally:
            await layer.group_discard(events.inbox_group(tenant.pk), spy)

    summary, event = async_to_sync(scenario)()
    assert summary.processed == 2
    conversations = set(Message.objects.unscoped().filter(connection__in=conns).values_list("conversation_id", flat=True))
    assert len(conversations) == 2 and 'data-upsert="list"' in event["html"]
    assert all(f'id="conv-{cid}"' in event["html"] for cid in conversations)
