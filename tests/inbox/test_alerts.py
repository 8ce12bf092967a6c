"""Alerts that reach people: one open alert per cause, e-mails to owners/admins (staff for the platform),
the per-user opt-out, and the watchdog raising and resolving them. The webhook, sent by a real Celery
worker, is in test_alert_webhook.py."""

from datetime import timedelta

import pytest
from django.core import mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from config.celery import app
from connections import actions as connection_actions
from inbox import alerts, watchdog
from inbox.models import Alert, AlertEmailOptOut
from sync.models import RawEvent
from tests.factories import ConnectionFactory, MembershipFactory, UserFactory
from tests.procs import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def tasks_in_process():
    """Run the e-mail task in this process (mail.outbox is per process); the webhook's real path, a
    worker with retries, is tested in test_alert_webhook.py."""
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager = False
    app.conf.task_eager_propagates = False


@pytest.fixture
def managers(acme, acme_owner, acme_agent):
    admin = MembershipFactory(user=UserFactory(username="acme-ops"), tenant=acme, role="admin").user
    quiet = MembershipFactory(user=UserFactory(username="acme-quiet"), tenant=acme, role="admin").user
    AlertEmailOptOut.objects.create(user=quiet)
    return {"owner": acme_owner, "admin": admin, "quiet": quiet, "agent": acme_agent}


def recipients():
    return sorted(address for m in mail.outbox for address in m.to)


@pytest.mark.smoke  # the partial unique constraint on SQLite too
def test_one_open_alert_per_cause_updated_not_repeated_then_resolved(acme, managers, tasks_in_process,
                                                                     django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first, created = alerts.do_raise_alert("connection:1:down", kind="number_down", message="down 5 min",
                                               tenant_id=acme.pk)
    assert created
    assert recipients() == ["acme-admin@example.com", "acme-ops@example.com"]  # no agent, no opted-out admin
    assert "down 5 min" in mail.outbox[0].body and "Acme" in mail.outbox[0].subject

    with django_capture_on_commit_callbacks(execute=True):
        again, created = alerts.do_raise_alert("connection:1:down", kind="number_down", message="down 10 min",
                                               tenant_id=acme.pk)
    assert not created and again.pk == first.pk and again.times_raised == 2 and again.message == "down 10 min"
    assert len(mail.outbox) == 2  # updated, not repeated

    with pytest.raises(IntegrityError), transaction.atomic():  # the database holds the rule too
        Alert.objects.create(tenant=acme, cause="connection:1:down", kind="other", message="twice")

    assert alerts.do_resolve_alert("connection:1:down").resolved_at is not None
    assert alerts.do_resolve_alert("connection:1:down") is None
    with django_capture_on_commit_callbacks(execute=True):
        reopened, created = alerts.do_raise_alert("connection:1:down", kind="number_down", message="down again",
                                                  tenant_id=acme.pk)
    assert created and reopened.pk != first.pk and len(mail.outbox) == 4


def test_a_number_that_gives_up_alerts_once_and_its_reconnect_resolves_it(acme, managers, settings, tasks_in_process,
                                                                          django_capture_on_commit_callbacks):
    settings.RUNNER_MAX_RECONNECT_ATTEMPTS = 2
    conn = ConnectionFactory(tenant=acme, name="Sales", jid="5511990000001:1@s.whatsapp.net", runner_id="r",
                             status="connected")
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(2):
            connection_actions.do_record_connect_failure(conn.pk, "r", "dial error")
        connection_actions.do_mark_terminal(conn.pk, "r", "banned", "temporarily banned", retry_after=60)
    alert = Alert.objects.unscoped().get(cause=alerts.connection_down_cause(conn.pk), resolved_at__isnull=True)
    assert alert.kind == "banned" and alert.times_raised == 2 and "Sales" in alert.message
    assert len(mail.outbox) == 2  # owner + admin, once

    with django_capture_on_commit_callbacks(execute=True):
        connection_actions.do_mark_connected(conn.pk, "r")
    alert.refresh_from_db()
    assert alert.resolved_at is not None


def test_watchdog_alerts_numbers_down_for_long_and_failing_journal_rows(acme, managers, settings, tasks_in_process,
                                                                        django_capture_on_commit_callbacks):
    settings.WATCHDOG_NUMBER_DOWN_SECONDS = 300
    long_ago = timezone.now() - timedelta(minutes=10)
    down = ConnectionFactory(tenant=acme, name="Down", status="disconnected", jid="5511990000002:1@s.whatsapp.net",
                             last_heartbeat_at=long_ago)
    blip = ConnectionFactory(tenant=acme, name="Blip", status="disconnected", jid="5511990000003:1@s.whatsapp.net",
                             last_heartbeat_at=timezone.now())
    paused = ConnectionFactory(tenant=acme, name="Paused", status="disconnected", desired_state="stopped",
                               last_heartbeat_at=long_ago)
    row = RawEvent.objects.create(tenant=acme, connection=down, event_name="MessageEv", payload=b"x", digest="d1",
                                  received_at=long_ago, state=RawEvent.State.QUARANTINED, error="boom")

    with django_capture_on_commit_callbacks(execute=True):
        assert watchdog.watch_numbers()["down"] == [down.pk]
        assert watchdog.watch_journal()["failing"] == [down.pk]
        watchdog.watch_numbers()
        watchdog.watch_journal()
    open_alerts = {a.cause: a for a in Alert.objects.unscoped().filter(resolved_at__isnull=True)}
    assert set(open_alerts) == {f"connection:{down.pk}:down", f"connection:{down.pk}:journal"}
    assert open_alerts[f"connection:{down.pk}:down"].times_raised == 2
    assert "1 quarantined" in open_alerts[f"connection:{down.pk}:journal"].message
    assert len(mail.outbox) == 4  # two alerts, two managers each; none for the blip or the paused number
    assert blip.pk and paused.pk

    down.status = "connected"
    down.save(update_fields=["status"])
    RawEvent.objects.unscoped().filter(pk=row.pk).update(state=RawEvent.State.PROCESSED, processed_at=timezone.now())
    assert watchdog.watch_numbers()["resolved"] == 1
    watchdog.watch_journal()
    assert not Alert.objects.unscoped().filter(resolved_at__isnull=True).exists()


def test_watchdog_tells_staff_when_redis_is_down_even_with_celery_down(acme, settings,
                                                                     django_capture_on_commit_callbacks):
    staff = UserFactory(username="ops", is_staff=True)
    UserFactory(username="ops-quiet", is_staff=True)
    AlertEmailOptOut.objects.create(user=UserFactory(username="ops-quiet"))
    settings.REDIS_URL = settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens
    settings.WATCHDOG_PLATFORM_GRACE_SECONDS = 60
    watchdog._failing_since.clear()
    with django_capture_on_commit_callbacks(execute=True):
        first = watchdog.watch_platform_parts()  # down, but maybe just starting: nobody woken yet
    assert set(first["within_grace"]) == {"redis", "workers", "beat", "runners"}
    assert not Alert.objects.unscoped().exists() and not mail.outbox
    settings.WATCHDOG_PLATFORM_GRACE_SECONDS = 0  # ...and still down once the grace is over
    with django_capture_on_commit_callbacks(execute=True):
        result = watchdog.watch_platform_parts()
    assert set(result["failing"]) == {"redis", "workers", "beat", "runners"} and not result["within_grace"]
    platform = Alert.objects.unscoped().filter(tenant__isnull=True, resolved_at__isnull=True)
    assert sorted(platform.values_list("cause", flat=True)) == [
        "platform:beat", "platform:redis", "platform:runners", "platform:workers"]
    assert recipients() == [staff.email] * 4  # sent from this process: Celery may be what is down
    with django_capture_on_commit_callbacks(execute=True):
        watchdog.watch_platform_parts()
    assert len(mail.outbox) == 4 and platform.count() == 4


def test_the_alert_email_opt_out_is_per_user(client, acme, managers):
    owner = managers["owner"]
    client.force_login(owner)
    response = client.post(reverse("alert_emails", args=["acme"]), {"enabled": "off"})
    assert response.status_code == 302 and AlertEmailOptOut.objects.filter(user=owner).exists()
    assert AlertEmailOptOut.objects.count() == 2  # the other opt-out untouched
    client.post(reverse("alert_emails", args=["acme"]), {"enabled": "on"})
    assert not AlertEmailOptOut.objects.filter(user=owner).exists()
    assert client.post(reverse("alert_emails", args=["acme"]), {"enabled": "maybe"}).status_code == 400
    client.force_login(managers["agent"])
    assert client.post(reverse("alert_emails", args=["acme"]), {"enabled": "off"}).status_code == 403


def test_the_tenant_webhook_url_is_validated_and_saved(client, acme, acme_owner):
    client.force_login(acme_owner)
    bad = client.post(reverse("alert_webhook", args=["acme"]), {"url": "not a url"})
    assert bad.status_code == 422 and b"Enter a full http" in bad.content
    inward = client.post(reverse("alert_webhook", args=["acme"]), {"url": "http://169.254.169.254/latest/meta-data/"})
    assert inward.status_code == 422 and b"private or reserved network" in inward.content  # no SSRF
    public = "https://93.184.215.14/x"  # a literal public address: no DNS on this machine
    assert client.post(reverse("alert_webhook", args=["acme"]), {"url": public}).status_code == 302
    acme.refresh_from_db()
    assert acme.alert_webhook_url == public
    page = client.get(reverse("connections", args=["acme"]))
    assert public.encode() in page.content and b"Alert e-mails to you" in page.content


def test_watch_platform_command_runs_a_round_and_refuses_a_bad_interval(acme, settings):
    from django.core.management import CommandError, call_command

    settings.WATCHDOG_NUMBER_DOWN_SECONDS = 60
    down = ConnectionFactory(tenant=acme, name="Quiet", status="failed", jid="5511990000009:1@s.whatsapp.net",
                             last_heartbeat_at=timezone.now() - timedelta(minutes=5))
    settings.REDIS_URL = settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"  # delivery may fail: no matter
    call_command("watch_platform", "--once")
    assert Alert.objects.unscoped().filter(cause=f"connection:{down.pk}:down", resolved_at__isnull=True).exists()
    with pytest.raises(CommandError, match="positive"):
        call_command("watch_platform", "--interval", "0")
