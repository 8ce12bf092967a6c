"""The real neonize transport, without a network: its dial error and its dispatcher with real bytes."""

import ctypes
import threading
import time
from datetime import UTC, datetime

import psycopg
import pytest
from django.db import connection as django_connection
from neonize.events import EVENT_TO_INT, LoggedOutEv, MessageEv

from connections.models import Connection, ConnectionEvent
from connections.transport import NotSupported, SessionCallbacks, SessionConfig, State, supports_history_requests
from connections.transport.base import LOGGED_OUT_REASON
from connections.transport.neonize import HISTORY_NOT_SUPPORTED, NeonizeTransport
from sync import events_builder as eb
from sync.journal import journal_events
from sync.models import RawEvent
from tests import procs
from tests.connections.helpers import event_kinds, row, runner_env, start_runner
from tests.factories import ConnectionFactory, TenantFactory


def dispatch(client, ev):
    """Drive neonize's own dispatcher exactly as the Go side does: (uuid, address, size, event code)."""
    data = ev.SerializeToString()
    buf = ctypes.create_string_buffer(data, len(data))
    client.event.execute(client.uuid, ctypes.addressof(buf), len(data), EVENT_TO_INT[type(ev)])
    return data


@pytest.mark.django_db
def test_events_from_neonizes_dispatcher_reach_the_journal_byte_for_byte(acme_connection, tmp_path, settings):
    settings.WHATSMEOW_STORE = str(tmp_path / "store.sqlite3")
    states = []
    callbacks = SessionCallbacks(
        on_event=lambda name, payload: journal_events(acme_connection.pk, [(name, payload, None)], schedule=False),
        on_state=lambda kind, detail="", **data: states.append((kind, detail)),
    )
    transport = NeonizeTransport(SessionConfig(connection_id=acme_connection.pk), callbacks)
    client = transport.build_client()

    msg = eb.message_ev("5511987654321@s.whatsapp.net", "5511987654321@s.whatsapp.net", "3EB0C0FFEE0001", "oi",
                        1_760_000_000_123, sender_alt="123456789@lid", push_name="Ana")
    hist = eb.history_sync_ev([eb.history_conversation("5511987654321@s.whatsapp.net",
                                                       [eb.web_message("5511987654321@s.whatsapp.net", "OLD1", "antes")])])
    sent_msg, sent_hist = dispatch(client, msg), dispatch(client, hist)
    sent_out = dispatch(client, LoggedOutEv(OnConnect=False, Reason=LOGGED_OUT_REASON))

    rows = {r.event_name: bytes(r.payload) for r in RawEvent.objects.unscoped().filter(connection=acme_connection)}
    assert rows["MessageEv"] == sent_msg and MessageEv.FromString(rows["MessageEv"]) == msg
    assert rows["HistorySyncEv"] == sent_hist
    assert rows["LoggedOutEv"] == sent_out
    # Lifecycle events are interpreted after journaling: logged out on the phone is terminal.
    assert states == [(State.LOGGED_OUT, "logged out on the phone (reason LOGGED_OUT)")]


def test_history_requests_are_refused_clearly_by_neonize_and_supported_by_the_simulator(tmp_path, settings):
    settings.WHATSMEOW_STORE = str(tmp_path / "store.sqlite3")
    transport = NeonizeTransport(SessionConfig(connection_id=1), SessionCallbacks(lambda *a: None, lambda *a, **k: None))
    with pytest.raises(NotSupported, match="not supported by neonize 0.5.2"):
        transport.request_history("5511987654321@s.whatsapp.net", datetime.now(UTC))
    assert "neonize 0.5.2" in HISTORY_NOT_SUPPORTED
    assert supports_history_requests("simulator") is True
    assert supports_history_requests("neonize") is False


def test_direct_connect_fails_with_neonizes_dial_error(tmp_path, settings):
    settings.WHATSMEOW_STORE = str(tmp_path / "store.sqlite3")
    states, done = [], threading.Event()

    def on_state(kind, detail="", **data):
        states.append((kind, detail))
        done.set()

    transport = NeonizeTransport(SessionConfig(connection_id=7), SessionCallbacks(lambda *a: None, on_state))
    transport.connect()
    assert done.wait(15)
    kind, detail = states[0]
    assert kind == State.CONNECT_FAILED and "failed to dial whatsapp web websocket" in detail
    assert transport.is_alive() is False


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_runner_records_the_dial_error_and_backs_off(tmp_path):
    conn = ConnectionFactory(transport=Connection.Transport.NEONIZE, status=Connection.Status.PAIRING, jid=None)
    env = runner_env(WHATSMEOW_STORE=str(tmp_path / "whatsmeow.sqlite3"), RUNNER_BACKOFF_BASE_SECONDS=0.5,
                     RUNNER_BACKOFF_CAP_SECONDS=2)
    runner = start_runner("neonize", env)
    try:
        procs.wait_for(lambda: event_kinds(conn.pk).count("connect_failed") >= 2, 20, message="two failed attempts")
        failures = list(ConnectionEvent.objects.unscoped().filter(connection=conn, kind="connect_failed").order_by("id"))
        assert "failed to dial whatsapp web websocket" in failures[0].detail
        assert "attempt 1" in failures[0].detail and "attempt 2" in failures[1].detail
        # Backoff: the second attempt waited at least the jittered first delay (0.25-0.5 s).
        attempts = list(ConnectionEvent.objects.unscoped().filter(connection=conn, kind="reconnect_attempt").order_by("id"))
        assert attempts and (attempts[0].created_at - failures[0].created_at).total_seconds() >= 0.2
        current = row(conn.pk)
        assert current.reconnect_attempts >= 2 and current.status in ("pairing", "connecting")
        assert runner.alive()
    finally:
        runner.stop()


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not django_connection.settings_dict["ENGINE"].endswith("postgresql"),
                    reason="counts the whatsmeow store's PostgreSQL connections")
@pytest.mark.faults
def test_store_connections_stay_bounded_however_many_connect_attempts_fail():
    """Every neonize connect attempt leaks one store connection (NEONIZE.md). Children are recycled after
    a budget of attempts and at most RUNNER_MAX_RETIRING_CHILDREN retiring ones stay, so the store's
    connections stay bounded while attempts go on and on."""
    db = django_connection.settings_dict
    server = f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    store_db = f"{db['NAME']}_whatsmeow"
    budget, retiring = 3, 1
    tenant = TenantFactory()
    conns = [ConnectionFactory(tenant=tenant, transport=Connection.Transport.NEONIZE, status=Connection.Status.PAIRING,
                               jid=None) for _ in range(3)]
    env = runner_env(WHATSMEOW_STORE=f"{server}/{store_db}?sslmode=disable", RUNNER_BACKOFF_BASE_SECONDS=0.1,
                     RUNNER_BACKOFF_CAP_SECONDS=0.3, RUNNER_CHILD_MAX_CONNECT_ATTEMPTS=budget,
                     RUNNER_MAX_RETIRING_CHILDREN=retiring, RUNNER_MAX_RECONNECT_ATTEMPTS=1000)
    runner = start_runner("leaky", env)
    peak = 0
    try:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            def attempts():
                return ConnectionEvent.objects.unscoped().filter(connection__in=conns, kind="connect_failed").count()

            deadline = time.monotonic() + 90
            while attempts() < 8 * budget and time.monotonic() < deadline:
                (n,) = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [store_db]).fetchone()
                peak = max(peak, n)
                time.sleep(0.1)
        made = attempts()
        print(f"store connections: peak {peak} over {made} failed attempts")
        assert made >= 8 * budget, f"only {made} attempts were made"
        # Without recycling every attempt would still hold its connection (>= 24 here).
        # A child retires after `budget` attempts beyond one per number it hosts.
        assert peak <= (retiring + 1) * (budget + len(conns) + 1), f"{peak} store connections after {made} attempts"
        assert runner.alive()
    except Exception:
        print(runner.output()[-6000:])
        raise
    finally:
        runner.stop()
