"""Connection actions without processes: leases, backoff and giving up, beat tasks, spool, nudges."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from connections import actions
from connections.models import Connection, ConnectionEvent
from connections.nudge import nudge
from connections.spool import pending_spool_files, replay_spool, spool_event
from connections.tasks import retry_failed_connections_task, supervise_connections_task
from inbox.models import Alert
from sync import events_builder as eb
from sync.models import RawEvent
from tests.factories import ConnectionFactory

pytestmark = pytest.mark.django_db


def paired(tenant, n, **kw):
    return ConnectionFactory(tenant=tenant, jid=f"55119111{n:05d}:1@s.whatsapp.net", **kw)


@pytest.mark.smoke
def test_claims_never_overlap_and_expired_leases_are_taken_over(acme):
    conns = [paired(acme, i) for i in range(4)]
    unpaired = ConnectionFactory(tenant=acme)  # not paired, not pairing: nobody should connect it
    paused = paired(acme, 9, desired_state=Connection.DesiredState.STOPPED)
    a = {c.pk for c in actions.claim_connections("a", 3)}
    b = {c.pk for c in actions.claim_connections("b", 10)}
    assert len(a) == 3 and len(b) == 1 and not a & b
    assert unpaired.pk not in a | b and paused.pk not in a | b
    assert actions.claim_connections("c", 10) == []
    # a's leases run out: c takes them; a's renewal then reports it lost them.
    Connection.objects.unscoped().filter(pk__in=a).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    c = {x.pk for x in actions.claim_connections("c", 10)}
    assert c == a
    assert actions.renew_leases("a", list(a))[0] == set()
    assert actions.renew_leases("c", list(c), heartbeat_ids=list(c))[0] == c
    # The history says why the numbers moved.
    lost = ConnectionEvent.objects.unscoped().filter(connection_id__in=c, kind="runner_lost")
    assert lost.count() == 3 and all("runner a stopped renewing" in e.detail for e in lost)
    assert all(x.last_heartbeat_at for x in Connection.objects.unscoped().filter(pk__in=c))
    actions.release_leases("c", list(c))
    assert set(Connection.objects.unscoped().filter(runner_id="").values_list("pk", flat=True)) >= c
    assert {x.pk for x in conns} == a | b


def test_backoff_doubles_with_jitter_up_to_the_cap(settings):
    settings.RUNNER_BACKOFF_BASE_SECONDS, settings.RUNNER_BACKOFF_CAP_SECONDS = 1.0, 300.0
    for attempt, nominal in [(1, 1), (2, 2), (3, 4), (6, 32), (20, 300)]:
        delays = {actions.backoff_delay(attempt) for _ in range(20)}
        assert all(nominal * 0.5 <= d <= nominal for d in delays)
        assert len(delays) > 1  # jittered


def test_after_the_last_attempt_it_is_failed_with_an_alert_and_beat_retries_it_slowly(acme, settings):
    settings.RUNNER_MAX_RECONNECT_ATTEMPTS = 3
    conn = paired(acme, 20, runner_id="r")
    delays = [actions.do_record_connect_failure(conn.pk, "r", "dial error")[1] for _ in range(3)]
    assert delays[0] is not None and delays[1] is not None and delays[2] is None
    conn.refresh_from_db()
    assert conn.status == Connection.Status.FAILED and conn.reconnect_attempts == 3
    assert Alert.objects.unscoped().filter(connection=conn, kind=Alert.Kind.CONNECTION_FAILED).count() == 1
    assert ConnectionEvent.objects.unscoped().filter(connection=conn, kind="failed").exists()
    assert actions.claim_connections("r", 10) == []  # runners leave it alone ...
    assert retry_failed_connections_task() == []  # ... and beat waits for next_retry_at
    Connection.objects.unscoped().filter(pk=conn.pk).update(next_retry_at=timezone.now() - timedelta(seconds=1))
    assert retry_failed_connections_task() == [conn.pk]
    conn.refresh_from_db()
    assert conn.status == Connection.Status.DISCONNECTED and conn.reconnect_attempts == 0
    assert [c.pk for c in actions.claim_connections("r", 10)] == [conn.pk]


def test_terminal_states_stop_reconnecting_record_why_and_alert(acme):
    out, ban, replaced = (paired(acme, n, runner_id="r") for n in (30, 31, 32))
    actions.do_mark_terminal(out.pk, "r", "logged_out", "logged out on the phone")
    actions.do_mark_terminal(ban.pk, "r", "banned", "temporarily banned", retry_after=3600)
    actions.do_mark_terminal(replaced.pk, "r", "stream_replaced", "opened elsewhere")
    for c in (out, ban, replaced):
        c.refresh_from_db()
    assert out.status == "logged_out" and out.jid is None
    assert ban.status == "failed" and ban.next_retry_at > timezone.now() + timedelta(minutes=59)
    assert replaced.status == "failed" and replaced.next_retry_at is None
    assert set(Alert.objects.unscoped().values_list("kind", flat=True)) == {"logged_out", "banned", "stream_replaced"}
    assert actions.claim_connections("r", 10) == []


def test_supervise_marks_stale_heartbeats_disconnected(acme, settings):
    settings.RUNNER_LEASE_SECONDS = 30
    fresh = paired(acme, 40, status="connected", last_heartbeat_at=timezone.now())
    stale = paired(acme, 41, status="connected", last_heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert supervise_connections_task() == {"stale": [stale.pk], "runner_lost": []}
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.status == "disconnected" and fresh.status == "connected"
    assert ConnectionEvent.objects.unscoped().get(connection=stale).kind == "heartbeat_stale"


def test_beat_schedules_exist_in_django_celery_beat():
    tasks = set(PeriodicTask.objects.filter(enabled=True).values_list("task", flat=True))
    assert {"connections.tasks.supervise_connections_task", "connections.tasks.retry_failed_connections_task",
            "sync.tasks.journal_safety_net_task"} <= tasks


@pytest.mark.smoke
def test_spooled_events_are_journaled_when_the_database_is_back(acme_connection, tmp_path, settings):
    settings.EVENT_SPOOL_DIR = str(tmp_path)
    name, data = eb.serialize(eb.message_ev("5511987654321@s.whatsapp.net", "5511987654321@s.whatsapp.net", "SPOOL1", "oi"))
    spool_event(acme_connection.pk, name, data, timezone.now())
    spool_event(acme_connection.pk, name, data, timezone.now())  # the same event twice: journaled once
    assert len(pending_spool_files()) == 1
    seen = []
    assert replay_spool(journal=lambda cid, events: seen.append((cid, events)) or 0) == 2
    assert pending_spool_files() == []  # journaled, then deleted
    spool_event(acme_connection.pk, name, data, timezone.now())
    from sync.journal import journal_events

    replay_spool(journal=lambda cid, events: journal_events(cid, events, schedule=False))
    assert bytes(RawEvent.objects.unscoped().get(connection=acme_connection).payload) == data


def test_a_torn_spool_file_is_journaled_up_to_the_tear_and_kept_for_an_operator(acme_connection, tmp_path, settings):
    settings.EVENT_SPOOL_DIR = str(tmp_path)
    path = spool_event(acme_connection.pk, "MessageEv", b"\x01", timezone.now())
    with open(path, "a") as fh:
        fh.write('{"event": "MessageEv", "payl')  # a crash mid-line
    seen = []
    assert replay_spool(journal=lambda cid, events: seen.extend(events)) == 1
    assert [(name, payload) for name, payload, _ in seen] == [("MessageEv", b"\x01")]
    assert pending_spool_files() == []  # not replayed again and again
    kept = list(tmp_path.glob("*.torn"))
    assert len(kept) == 1 and kept[0].read_text().endswith('"payl')  # the torn line is kept, never deleted


def test_nudge_rejects_unknown_actions_and_simulate_explains_bad_input(acme_connection):
    with pytest.raises(ValueError, match="unknown nudge action"):
        nudge(acme_connection.pk, "explode")
    with pytest.raises(CommandError, match="no connection"):
        call_command("simulate", "--connection", "999999", "--text", "hi")
    with pytest.raises(CommandError, match="nothing to do"):
        call_command("simulate", "--connection", str(acme_connection.pk))
    neo = ConnectionFactory(tenant=acme_connection.tenant, transport=Connection.Transport.NEONIZE)
    with pytest.raises(CommandError, match="only simulator"):
        call_command("simulate", "--connection", str(neo.pk), "--text", "hi")
