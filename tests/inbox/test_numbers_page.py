"""The numbers page for tenant managers: status and history, pause/resume/logout, pairing by QR or code."""

import pytest
from django.urls import reverse

from connections.models import Connection, ConnectionEvent
from tests.factories import ConnectionFactory

pytestmark = pytest.mark.django_db


def test_numbers_page_shows_status_and_reconnection_history(client, acme_owner, acme_connection):
    ConnectionEvent.objects.create(tenant=acme_connection.tenant, connection=acme_connection, kind="disconnected",
                                   detail="stream error 515")
    client.force_login(acme_owner)
    page = client.get(reverse("connections", args=["acme"])).content.decode()
    assert acme_connection.name in page
    assert "stream error 515" in page


def test_number_of_another_tenant_is_not_listed(client, acme_owner, acme_connection, globex):
    other = ConnectionFactory(tenant=globex, name="Globex secret line")
    client.force_login(acme_owner)
    page = client.get(reverse("connections", args=["acme"])).content.decode()
    assert other.name not in page


@pytest.mark.parametrize(("action", "desired", "nudge"), [
    ("pause", "stopped", "pause"), ("resume", "connected", "resume"), ("logout", "logged_out", "logout"),
])
def test_pause_resume_logout_set_desired_state_and_nudge_the_runner(
        client, acme_owner, acme_connection, nudges, django_capture_on_commit_callbacks, action, desired, nudge):
    client.force_login(acme_owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("connection_action", args=["acme", acme_connection.pk]), {"action": action})
    assert response.status_code == 302
    acme_connection.refresh_from_db()
    assert acme_connection.desired_state == desired
    assert [(n["connection_id"], n["action"]) for n in nudges() if n["connection_id"] == acme_connection.pk] == [
        (acme_connection.pk, nudge)]


def test_unknown_action_is_refused_and_changes_nothing(client, acme_owner, acme_connection):
    client.force_login(acme_owner)
    response = client.post(reverse("connection_action", args=["acme", acme_connection.pk]), {"action": "explode"})
    assert response.status_code == 400
    acme_connection.refresh_from_db()
    assert acme_connection.desired_state == Connection.DesiredState.CONNECTED


def test_pair_by_qr_starts_pairing_and_the_pairing_view_renders_the_qr(
        client, acme_owner, acme_connection, nudges, django_capture_on_commit_callbacks):
    client.force_login(acme_owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("connection_pair", args=["acme", acme_connection.pk]), {"phone_number": ""})
    assert response.status_code == 302
    acme_connection.refresh_from_db()
    assert acme_connection.status == Connection.Status.PAIRING
    assert ("pair", "qr") in [(n["action"], n["payload"].get("method")) for n in nudges()]
    # The runner stores the rotating QR string; the page renders it server-side as SVG.
    Connection.objects.unscoped().filter(pk=acme_connection.pk).update(pairing_code="2@abc,def,ghi,jkl")
    html = client.get(reverse("connection_pairing", args=["acme", acme_connection.pk])).content.decode()
    assert "<svg" in html


def test_pair_by_phone_code_shows_the_code(client, acme_owner, acme_connection):
    client.force_login(acme_owner)
    Connection.objects.unscoped().filter(pk=acme_connection.pk).update(status="pairing", pairing_code="ABCD-EFGH")
    html = client.get(reverse("connection_pairing", args=["acme", acme_connection.pk])).content.decode()
    assert "ABCD-EFGH" in html and "<svg" not in html


def test_bad_phone_number_is_shown_back(client, acme_owner, acme_connection):
    client.force_login(acme_owner)
    response = client.post(reverse("connection_pair", args=["acme", acme_connection.pk]), {"phone_number": "not a number"})
    assert response.status_code == 422
    assert "not a number" in response.content.decode()
    acme_connection.refresh_from_db()
    assert acme_connection.status == Connection.Status.NEW


def test_open_alerts_are_shown_to_managers_and_can_be_acknowledged(client, acme_owner, acme_connection, globex):
    from inbox.models import Alert

    mine = Alert.objects.create(tenant=acme_connection.tenant, connection=acme_connection, kind="connection_failed",
                                message="Acme support: gave up after 30 failed attempts")
    theirs = Alert.objects.create(tenant=globex, kind="sync_discrepancy", message="globex only")
    client.force_login(acme_owner)
    page = client.get(reverse("connections", args=["acme"])).content.decode()
    assert "gave up after 30 failed attempts" in page and "globex only" not in page
    response = client.post(reverse("acknowledge_alert", args=["acme", mine.pk]))
    assert response.status_code == 302
    mine.refresh_from_db()
    assert mine.acknowledged_by == acme_owner and mine.acknowledged_at is not None
    assert "gave up after 30 failed attempts" not in client.get(reverse("connections", args=["acme"])).content.decode()
    assert client.post(reverse("acknowledge_alert", args=["acme", theirs.pk])).status_code == 404
    theirs.refresh_from_db()
    assert theirs.acknowledged_at is None
