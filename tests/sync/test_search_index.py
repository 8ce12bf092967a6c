"""Message-text search entries of synced messages (ADR-10): live messages at once, history batches
through the search backlog; edits, revokes and merges keep the entries right."""

import pytest
from django.urls import reverse

from inbox.models import Conversation, Message, MessageSearchEntry
from sync import events_builder as b
from sync.models import SearchBacklog
from sync.search_index import INLINE_LIMIT, index_search_backlog
from sync.selectors import sync_report
from sync.statements import journal_lock
from tests.sync.helpers import LID_ANA, PN_ANA, PN_BRUNO, T0, feed, incoming

pytestmark = pytest.mark.django_db


def _history(n, *, prefix="H", chat=PN_ANA, text="histórico número {i}"):
    """One HistorySyncEv chunk of ``n`` messages (a few captionless images among them)."""
    msgs = [b.web_message(chat, f"{prefix}{i:05d}", b.image() if i % 10 == 9 else text.format(i=i), T0 + i)
            for i in range(n)]
    return b.history_sync_ev([b.history_conversation(chat, msgs)], "INITIAL_BOOTSTRAP", chunk_order=1, progress=100)


def _entries():
    return dict(MessageSearchEntry.objects.unscoped().values_list("message__external_id", "body"))


@pytest.mark.smoke
def test_live_messages_are_searchable_once_committed(acme_connection):
    feed(acme_connection, incoming("LV1", "meu pedido XK-7781 não chegou"), incoming("LV2", "obrigado"))
    assert _entries() == {"LV1": "meu pedido XK-7781 não chegou", "LV2": "obrigado"}
    assert not SearchBacklog.objects.unscoped().exists()


def test_a_large_history_batch_waits_in_the_backlog_then_every_body_is_indexed_once(acme_connection):
    n = INLINE_LIMIT + 100
    summary = feed(acme_connection, _history(n))
    assert summary.saved == n
    backlog = SearchBacklog.objects.unscoped().get()
    assert backlog.messages == n and backlog.connection_id == acme_connection.pk
    assert not MessageSearchEntry.objects.unscoped().exists()
    assert sync_report(acme_connection)["search_backlog"] == n
    # Every inserted id is inside the recorded range.
    ids = list(Message.objects.unscoped().filter(connection=acme_connection).values_list("id", flat=True))
    assert backlog.after_id < min(ids) and max(ids) <= backlog.through_id

    indexed = index_search_backlog(acme_connection.pk)
    with_body = [i for i in range(n) if i % 10 != 9]
    assert indexed.indexed == len(with_body) and not indexed.more and not indexed.busy
    assert _entries() == {f"H{i:05d}": f"histórico número {i}" for i in with_body}
    assert not SearchBacklog.objects.unscoped().exists() and sync_report(acme_connection)["search_backlog"] == 0
    conv = Conversation.objects.unscoped().get()
    assert set(MessageSearchEntry.objects.unscoped().values_list("conversation_id", flat=True)) == {conv.pk}

    # A replay inserts nothing, so it queues nothing and indexes nothing.
    feed(acme_connection, _history(n), process=False)  # same digest: not journaled twice
    from sync.actions import do_replay

    out = do_replay(acme_connection)
    assert out["saved"] == 0 and out["search_indexed"] == 0 and MessageSearchEntry.objects.unscoped().count() == len(with_body)


def test_backlog_slices_give_way_to_due_journal_rows_and_to_a_lock_holder(acme_connection, monkeypatch):
    monkeypatch.setattr("sync.search_index.SLICE", 200)
    feed(acme_connection, _history(INLINE_LIMIT + 300))
    # Another processor holds the journal lock: nothing is done, and it says so.
    with journal_lock(acme_connection.pk, wait=True):
        from threading import Thread

        out = {}
        thread = Thread(target=lambda: out.setdefault("s", _index_in_thread(acme_connection.pk)))
        thread.start()
        thread.join()
    assert out["s"] == (0, True, False)
    # A live message journaled (not processed yet): the backlog waits for it.
    feed(acme_connection, incoming("LIVE1", "urgente"), process=False)
    first = index_search_backlog(acme_connection.pk)
    assert first.slices == 0 and first.more
    feed(acme_connection)  # the processor takes the due row
    assert "LIVE1" in _entries()
    done = index_search_backlog(acme_connection.pk)
    assert done.slices >= 4 and not done.more  # 200 ids a slice
    assert not SearchBacklog.objects.unscoped().exists()
    assert MessageSearchEntry.objects.unscoped().count() == 1 + sum(1 for i in range(INLINE_LIMIT + 300) if i % 10 != 9)


def _index_in_thread(connection_id):
    from django.db import connection

    try:
        s = index_search_backlog(connection_id)
        return s.indexed, s.busy, s.more
    finally:
        connection.close()


def test_edits_revokes_and_merges_keep_search_entries_right(acme_connection, client, acme_agent):
    feed(acme_connection, incoming("E1", "texto original", chat=LID_ANA), incoming("E2", "vai sumir", chat=LID_ANA),
         incoming("P1", "pelo número", chat=PN_ANA, push_name=""), incoming("B1", "outra pessoa", chat=PN_BRUNO))
    feed(acme_connection, b.message_ev(LID_ANA, LID_ANA, "ED1", b.edit("E1", "texto corrigido", target_chat=LID_ANA,
                                                                        target_from_me=False), T0 * 1000 + 5),
         b.message_ev(LID_ANA, LID_ANA, "RV1", b.revoke("E2", target_chat=LID_ANA), T0 * 1000 + 6))
    assert _entries() == {"E1": "texto corrigido", "P1": "pelo número", "B1": "outra pessoa"}
    # The LID <-> phone mapping merges the two conversations: the entries follow their messages.
    feed(acme_connection, b.history_sync_ev([], "PUSH_NAME", mappings=[(PN_ANA, LID_ANA)]))
    ana = Conversation.objects.unscoped().get(chat_jid=PN_ANA)
    assert set(MessageSearchEntry.objects.unscoped().filter(message__external_id__in=["E1", "P1"])
               .values_list("conversation_id", flat=True)) == {ana.pk}
    client.force_login(acme_agent)
    slug = acme_connection.tenant.slug
    found = client.get(reverse("conversation_list", args=[slug]), {"status": "all", "q": "CORRIGIDO"})
    assert [c.pk for c in found.context["page"].items] == [ana.pk]
    for gone in ("original", "vai sumir"):
        found = client.get(reverse("conversation_list", args=[slug]), {"status": "all", "q": gone})
        assert found.context["page"].items == []


def test_the_journal_task_indexes_the_backlog_once_the_journal_is_drained(acme_connection):
    from sync.tasks import process_journal_task

    n = INLINE_LIMIT + 50
    feed(acme_connection, _history(n), process=False)
    out = process_journal_task(acme_connection.pk)  # what the worker runs for the runner's nudge
    assert out["processed"] == 1 and out["search"]["indexed"] == sum(1 for i in range(n) if i % 10 != 9)
    assert not SearchBacklog.objects.unscoped().exists()
    assert process_journal_task(acme_connection.pk).get("search") is None  # nothing left: no search pass
