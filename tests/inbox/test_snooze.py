"""Snooze: the conversation leaves "open" until a time, then comes back to open (ETA task or beat's
sweep), live; presets and typed times in the viewer's zone; tenant-isolated."""

import asyncio
import zoneinfo
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.urls import reverse
from django.utils import timezone

from inbox import snooze
from inbox.list_coalescer import LIST_FLUSH_INTERVAL
from inbox.models import Conversation, Snooze, Tenant
from tests.factories import ConversationFactory
from tests.inbox.test_live import receive_until, session_cookie, socket

SAO_PAULO = zoneinfo.ZoneInfo("America/Sao_Paulo")


@pytest.fixture
def conv(acme_connection):
    return ConversationFactory(connection=acme_connection)


def status(conv):
    return Conversation.objects.for_tenant(conv.tenant_id).values_list("status", flat=True).get(pk=conv.pk)


def test_presets_are_in_the_viewers_zone():
    now = datetime(2026, 1, 9, 23, 0, tzinfo=UTC)  # Friday 20:00 in São Paulo
    with timezone.override(SAO_PAULO):
        assert snooze.until_for_preset("in_1h", now) == now + timedelta(hours=1)
        assert snooze.until_for_preset("tomorrow", now) == datetime(2026, 1, 10, 12, 0, tzinfo=UTC)  # Sat 09:00 -03
        assert snooze.until_for_preset("next_week", now) == datetime(2026, 1, 12, 12, 0, tzinfo=UTC)  # Mon 09:00 -03
    with timezone.override(UTC):
        assert snooze.until_for_preset("tomorrow", now) == datetime(2026, 1, 10, 9, 0, tzinfo=UTC)


@pytest.mark.django_db
def test_snooze_leaves_open_and_the_sweep_brings_it_back(client, acme, acme_agent, conv, monkeypatch):
    monkeypatch.setattr("inbox.tasks.wake_snoozed_conversation_task.apply_async", lambda *a, **k: None)  # lost task
    Tenant.objects.filter(pk=acme.pk).update(time_zone="America/Sao_Paulo")
    client.force_login(acme_agent)
    url = reverse("snooze", args=["acme", conv.pk])
    day = (timezone.now() + timedelta(days=30)).date()
    resp = client.post(url, {"until": f"{day.isoformat()}T09:30"}, HTTP_HX_REQUEST="true")
    assert resp.status_code == 200 and "Snoozed until" in resp.content.decode()
    row = Snooze.objects.for_tenant(acme).get()
    assert row.until == datetime(day.year, day.month, day.day, 12, 30, tzinfo=UTC)  # typed in São Paulo time (-03)
    assert status(conv) == "snoozed"
    listing = client.get(reverse("conversation_list", args=["acme"])).content.decode()
    assert f'id="conv-{conv.pk}"' not in listing  # not open any more
    snoozed = client.get(reverse("conversation_list", args=["acme"]), {"status": "snoozed"}).content.decode()
    assert f'id="conv-{conv.pk}"' in snoozed

    assert snooze.wake_due_snoozes(now=timezone.now()) == 0  # not due
    assert status(conv) == "snoozed"
    assert snooze.wake_due_snoozes(now=row.until + timedelta(seconds=1)) == 1
    assert status(conv) == "open" and not Snooze.objects.for_tenant(acme).exists()


@pytest.mark.django_db
def test_the_eta_task_wakes_only_when_due_and_unsnooze_reopens(client, acme, acme_agent, conv, monkeypatch):
    queued = []
    monkeypatch.setattr("inbox.tasks.wake_snoozed_conversation_task.apply_async", lambda args, eta: queued.append((args, eta)))
    until = timezone.now() + timedelta(hours=2)
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        row = snooze.check_snooze(conv, until, acme_agent)
    assert queued == [((row.pk,), until)]
    assert snooze.wake_snooze(row.pk) is False and status(conv) == "snoozed"  # moved later or early task: no-op
    client.force_login(acme_agent)
    resp = client.post(reverse("unsnooze", args=["acme", conv.pk]), HTTP_HX_REQUEST="true")
    assert resp.status_code == 200 and status(conv) == "open" and "Snooze" in resp.content.decode()
    assert snooze.wake_snooze(row.pk) is False  # already gone


@pytest.mark.django_db
def test_a_status_set_by_hand_ends_the_snooze(acme, acme_agent, conv, monkeypatch):
    from inbox import actions

    monkeypatch.setattr("inbox.tasks.wake_snoozed_conversation_task.apply_async", lambda *a, **k: None)
    row = snooze.do_snooze(conv, timezone.now() + timedelta(hours=1), acme_agent)
    actions.do_set_conversation_status(conv, "resolved")
    assert snooze.wake_due_snoozes(now=row.until + timedelta(seconds=1)) == 0  # cleaned up, not reopened
    assert status(conv) == "resolved" and not Snooze.objects.for_tenant(acme).exists()


@pytest.mark.django_db
def test_bad_times_are_refused_and_snoozed_is_not_a_plain_status(client, acme_agent, conv):
    client.force_login(acme_agent)
    url = reverse("snooze", args=["acme", conv.pk])
    past = client.post(url, {"until": "2001-01-01T10:00"}, HTTP_HX_REQUEST="true")
    assert past.status_code == 422 and "future" in past.content.decode()
    assert client.post(url, {}, HTTP_HX_REQUEST="true").status_code == 422
    assert client.post(url, {"preset": "someday"}, HTTP_HX_REQUEST="true").status_code == 422
    assert client.post(reverse("set_status", args=["acme", conv.pk]), {"status": "snoozed"}).status_code == 400
    assert status(conv) == "open"


@pytest.mark.django_db
def test_snooze_is_tenant_isolated(client, globex_owner, conv):
    client.force_login(globex_owner)
    assert client.post(reverse("snooze", args=["globex", conv.pk]), {"preset": "in_1h"}).status_code == 404
    assert client.post(reverse("unsnooze", args=["globex", conv.pk])).status_code == 404
    assert status(conv) == "open"


@pytest.mark.django_db
def test_the_wake_up_is_scheduled_in_beat():
    from django_celery_beat.models import PeriodicTask

    assert PeriodicTask.objects.filter(task="inbox.tasks.wake_due_snoozes_task", enabled=True).exists()


@pytest.mark.django_db(transaction=True)
def test_snooze_and_wake_reach_other_agents_live(client, acme, acme_agent, acme_owner, acme_connection, monkeypatch):
    monkeypatch.setattr("inbox.tasks.wake_snoozed_conversation_task.apply_async", lambda *a, **k: None)
    conv = ConversationFactory(connection=acme_connection)
    cookie = session_cookie(client, acme_owner)

    async def scenario():
        viewer = socket(f"/ws/t/acme/?conversation={conv.pk}", cookie)
        assert (await viewer.connect())[0]
        row = await sync_to_async(snooze.do_snooze)(conv, timezone.now() + timedelta(minutes=5), acme_agent)
        listed = await receive_until(viewer, f'id="conv-{conv.pk}"')
        assert 'data-status="snoozed"' in listed
        bar = await receive_until(viewer, f'id="conv-snooze-{conv.pk}"')
        assert "Snoozed until" in bar and 'data-fmt="datetime"' in bar
        # A list update within LIST_FLUSH_INTERVAL of the last one is left to a Celery task (none runs here).
        await asyncio.sleep(LIST_FLUSH_INTERVAL)
        await sync_to_async(snooze.wake_due_snoozes)(row.until + timedelta(seconds=1))
        listed = await receive_until(viewer, f'id="conv-{conv.pk}"')
        assert 'data-status="open"' in listed
        await viewer.disconnect()

    async_to_sync(scenario)()


# --- an inbound message wakes the conversation early ------------------------------------------------


def _synced_conversation(conn, jid, ext, ts):
    from tests.sync.helpers import feed, incoming

    feed(conn, incoming(ext, ts=ts, chat=jid))
    return Conversation.objects.for_tenant(conn.tenant_id).get(connection=conn, chat_jid=jid)


@pytest.mark.smoke
@pytest.mark.django_db
def test_a_live_inbound_message_wakes_a_snoozed_conversation(acme, acme_agent, acme_connection, monkeypatch):
    from sync import events_builder as b
    from tests.sync.helpers import PN_ANA, T0, feed, from_phone, incoming

    monkeypatch.setattr("inbox.tasks.wake_snoozed_conversation_task.apply_async", lambda *a, **k: None)
    conv = _synced_conversation(acme_connection, PN_ANA, "A1", T0)
    snooze.do_snooze(conv, timezone.now() + timedelta(days=2), acme_agent)
    # Not woken by: the agent's own phone writing, a replay of a message already stored, an old history message.
    feed(acme_connection, from_phone("ME1", ts=T0 + 5), incoming("A1", ts=T0))
    feed(acme_connection, b.history_sync_ev([b.history_conversation(PN_ANA, [b.web_message(PN_ANA, "H0", "velha", T0 - 999)])],
                                            "RECENT"))
    assert status(conv) == "snoozed" and Snooze.objects.for_tenant(acme).exists()
    assert Conversation.objects.for_tenant(acme).count() == 1
    feed(acme_connection, incoming("A2", "ainda tem?", ts=T0 + 60))
    assert status(conv) == "open" and not Snooze.objects.for_tenant(acme).exists()
    assert snooze.wake_due_snoozes(now=timezone.now() + timedelta(days=3)) == 0  # nothing left for the sweep


@pytest.mark.django_db
def test_waking_costs_one_statement_per_batch_whatever_the_conversations(acme, acme_agent, acme_connection, monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.sync.helpers import T0, feed, incoming

    monkeypatch.setattr("inbox.tasks.wake_snoozed_conversation_task.apply_async", lambda *a, **k: None)
    jids = [f"55119{i:08d}@s.whatsapp.net" for i in range(7)]
    convs = [_synced_conversation(acme_connection, jid, f"S{i}", T0) for i, jid in enumerate(jids)]
    for conv in convs:
        snooze.do_snooze(conv, timezone.now() + timedelta(days=2), acme_agent)

    def queries(events):
        with CaptureQueriesContext(connection) as ctx:
            feed(acme_connection, *events)
        return [q["sql"] for q in ctx.captured_queries]

    one = queries([incoming("N0", ts=T0 + 10, chat=jids[0])])
    six = queries([incoming(f"N{i}-{k}", ts=T0 + 10 + k, chat=jids[i]) for i in range(1, 7) for k in range(3)])
    assert len(six) == len(one)
    assert sum("inbox_snooze" in sql and "DELETE" in sql for sql in six) == 1
    assert set(Conversation.objects.for_tenant(acme).values_list("status", flat=True)) == {"open"}


@pytest.mark.django_db(transaction=True)
def test_the_early_wake_reaches_other_agents_live(client, acme, acme_agent, acme_owner, acme_connection, monkeypatch):
    from tests.sync.helpers import PN_ANA, T0, feed, incoming

    monkeypatch.setattr("inbox.tasks.wake_snoozed_conversation_task.apply_async", lambda *a, **k: None)
    conv = _synced_conversation(acme_connection, PN_ANA, "A1", T0)
    snooze.do_snooze(conv, timezone.now() + timedelta(days=2), acme_agent)
    cookie = session_cookie(client, acme_owner)

    async def scenario():
        viewer = socket(f"/ws/t/acme/?conversation={conv.pk}", cookie)
        assert (await viewer.connect())[0]
        await sync_to_async(feed)(acme_connection, incoming("A2", "oi de novo", ts=T0 + 60))
        header = await receive_until(viewer, f'id="conv-header-{conv.pk}"')
        assert 'is-selected" type="submit" name="status" value="open"' in header
        bar = await receive_until(viewer, f'id="conv-snooze-{conv.pk}"')
        assert "Snoozed until" not in bar and "For an hour" in bar
        await viewer.disconnect()

    async_to_sync(scenario)()
