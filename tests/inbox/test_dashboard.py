"""The numbers dashboard and the staff /ops/ view: what each number shows, the paged history, and query
counts that do not grow with the number of numbers (or of their events)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from connections.models import ConnectionEvent
from inbox.dashboard import number_stats
from inbox.models import Alert
from sync.models import RawEvent, SyncRun
from tests.factories import ConnectionFactory, ConversationFactory, MessageFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db


def busy_number(tenant, i):
    """A number with reconnects, messages, a sync run, journal rows and an alert."""
    conn = ConnectionFactory(tenant=tenant, name=f"Line {i}", status="connected", runner_id="r1",
                             last_heartbeat_at=timezone.now())
    for kind in ("disconnected", "reconnect_attempt", "connected", "lease_acquired"):
        ConnectionEvent.objects.create(tenant=tenant, connection=conn, kind=kind)
    conv = ConversationFactory(connection=conn)
    for _ in range(2):
        MessageFactory(conversation=conv, sent_at=timezone.now() - timedelta(hours=3))
    SyncRun.objects.create(tenant=tenant, connection=conn, kind="history", started_at=timezone.now(), received=5, saved=5)
    RawEvent.objects.create(tenant=tenant, connection=conn, event_name="MessageEv", payload=b"x", digest=f"p{i}",
                            received_at=timezone.now())
    RawEvent.objects.create(tenant=tenant, connection=conn, event_name="MessageEv", payload=b"x", digest=f"f{i}",
                            received_at=timezone.now(), state="failed", error="boom")
    Alert.objects.create(tenant=tenant, connection=conn, kind="other", message="look", cause=f"test:{conn.pk}")
    return conn


def queries_for(client, path) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(path)
    assert response.status_code == 200
    return len(ctx.captured_queries), response.content.decode()


def test_each_number_shows_its_figures_and_charts(acme):
    conn = busy_number(acme, 1)
    old = ConnectionEvent.objects.create(tenant=acme, connection=conn, kind="disconnected")
    ConnectionEvent.objects.unscoped().filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=2))
    stats = number_stats([acme.pk], [conn.pk])[conn.pk]
    assert stats.reconnects_24h == 2  # disconnected + reconnect attempt today; the older one is only in the chart
    assert (stats.journal_pending, stats.journal_failed, stats.journal_quarantined) == (1, 1, 0)
    assert stats.open_alerts == 1 and [r.saved for r in stats.runs] == [5]
    assert stats.reconnects_chart.count("<rect") == 2  # two hours with reconnects
    assert "Reconnects per hour, 7 days: 3 in total" in stats.reconnects_chart
    assert stats.messages_chart.count("<rect") == 1 and "2 in total" in stats.messages_chart


def test_numbers_page_queries_do_not_grow_with_numbers(client, acme, acme_owner):
    client.force_login(acme_owner)
    path = reverse("connections", args=["acme"])
    busy_number(acme, 0)
    busy_number(acme, 1)
    few, html = queries_for(client, path)
    assert 'data-testid="conn-stats"' in html and "Line 1" in html
    for i in range(2, 7):
        busy_number(acme, i)
    many, html = queries_for(client, path)
    assert html.count('data-testid="conn-stats"') == 7
    assert many == few, f"{few} queries for 2 numbers, {many} for 7"


def test_the_figures_refresh_alone_for_managers_of_the_tenant_only(client, acme, acme_owner, acme_agent, globex):
    path = reverse("connection_stats", args=["acme"])
    ours, theirs = busy_number(acme, 1), busy_number(globex, 2)
    client.force_login(acme_owner)
    few, html = queries_for(client, path)
    # Only the figures, each swapped into its own card; nothing of the other tenant.
    assert html.count('hx-swap-oob="true"') == 1 and f'id="conn-stats-{ours.pk}"' in html
    assert f"conn-stats-{theirs.pk}" not in html
    assert "1 pending · 1 failing · 0 quarantined" in html
    RawEvent.objects.create(tenant=acme, connection=ours, event_name="MessageEv", payload=b"x", digest="p-more",
                            received_at=timezone.now())
    busy_number(acme, 3)
    many, html = queries_for(client, path)
    assert "2 pending · 1 failing" in html and html.count('hx-swap-oob="true"') == 2
    assert many == few, f"{few} queries for 1 number, {many} for 2"
    client.force_login(acme_agent)
    assert client.get(path).status_code == 403
    assert client.get(reverse("connection_stats", args=["globex"])).status_code == 404


def test_history_is_paged_filterable_and_folds_lease_noise(client, acme, acme_owner):
    conn = ConnectionFactory(tenant=acme, name="Paged")
    ConnectionEvent.objects.bulk_create([ConnectionEvent(tenant=acme, connection=conn, kind=k, detail=f"#{i}")
                                         for i, k in enumerate(["connected", "lease_acquired"] * 60)])
    client.force_login(acme_owner)
    path = reverse("connection_history", args=["acme", conn.pk])
    html = client.get(path).content.decode()
    assert html.count('class="ev ev-connected"') == 50 and "Lease acquired" not in html.split("</select>")[1]
    older = client.get(path + "?before=" + html.split("before=")[1].split('"')[0]).content.decode()
    assert older.count('class="ev ev-connected"') == 10 and 'data-testid="older"' not in older
    leases = client.get(path + "?kind=lease_acquired").content.decode()
    assert leases.count('class="ev ev-lease_acquired"') == 50
    assert client.get(path + "?kind=explode").status_code == 400
    assert client.get(path + "?before=%C2%B2").status_code == 400


def test_ops_is_for_staff_and_its_queries_do_not_grow(client, acme, acme_owner):
    assert client.get(reverse("ops")).status_code == 302  # to the login
    client.force_login(acme_owner)
    assert client.get(reverse("ops")).status_code == 404
    client.force_login(UserFactory(username="ops", is_staff=True))
    busy_number(acme, 0)
    few, html = queries_for(client, reverse("ops"))
    assert "Line 0" in html and 'data-testid="ops-status"' in html
    for i in range(1, 5):
        busy_number(TenantFactory(), i)
    many, html = queries_for(client, reverse("ops"))
    assert html.count('data-testid="ops-number"') == 5
    assert many == few, f"{few} queries for 1 number, {many} for 5 in 5 tenants"
