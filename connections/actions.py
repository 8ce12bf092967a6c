"""Writes of the connections app: status changes, ConnectionEvents, alerts, leases.

``do_*`` change state and validate nothing. Each status change writes a ConnectionEvent (the
reconnection history) and publishes the connection on commit; failures that need a person raise an
Alert. The runner and the Celery tasks call these; they hold no rules of their own.
"""

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from config.backoff import backoff
from connections.models import Connection, ConnectionEvent
from connections.nudge import nudge_on_commit
from connections.protocol import Nudge
from inbox import integrations
from inbox.alerts import connection_down_cause, do_raise_alert, do_resolve_alert
from inbox.events import publish_connection_on_commit, publish_heartbeats_on_commit
from inbox.models import Alert

logger = logging.getLogger(__name__)
# Log event names written from more than one place.
STATUS_LOGGED = "connections.status"  # a status change committed
STATUS_REFUSED = "connections.status_refused"  # a runner wrote a connection whose lease it no longer holds

Kind = ConnectionEvent.Kind
Status = Connection.Status
# How long a connection that gave up waits before beat's slow retry tries again.
SLOW_RETRY = timedelta(minutes=30)
BEAT = "beat"  # the runner id beat's writes carry


def backoff_delay(attempt: int) -> float:
    """Reconnects: base doubling per attempt up to the cap, with jitter (many numbers drop together)."""
    return backoff(attempt, base=settings.RUNNER_BACKOFF_BASE_SECONDS, cap=settings.RUNNER_BACKOFF_CAP_SECONDS,
                   jitter=True)


def _conn_id(connection) -> int:
    return connection if isinstance(connection, int) else connection.pk


def do_record_event(connection, kind: str, detail: str = "", runner_id: str = "") -> ConnectionEvent:
    tenant_id = connection.tenant_id if isinstance(connection, Connection) else (
        Connection.objects.unscoped().values_list("tenant_id", flat=True).get(pk=connection))
    return ConnectionEvent.objects.create(tenant_id=tenant_id, connection_id=_conn_id(connection), kind=kind,
                                          detail=detail[:2000], runner_id=runner_id)


class NotHolder(Exception):
    """A runner wrote the status of a connection whose lease it no longer holds: refused."""


def _locked_for(connection_id: int, runner_id: str) -> Connection:
    """Lock the row; a runner may only touch the connections it holds the lease of (beat, pages and
    commands pass no runner id). Call inside transaction.atomic()."""
    conn = Connection.objects.unscoped().select_for_update().get(pk=connection_id)
    if runner_id and runner_id != BEAT and conn.runner_id != runner_id:
        raise NotHolder(f"connection {connection_id} is held by {conn.runner_id or 'no runner'}, not {runner_id}")
    return conn


def do_set_status(connection, status: str, *, event_kind: str | None = None, detail: str = "", runner_id: str = "",
                  alert_kind: str | None = None, **fields) -> Connection | None:
    """Set status (+ other fields), record a ConnectionEvent, raise an Alert if asked, publish on commit.

    A runner writes only the status of a connection it holds the lease of: a runner that lost its lease
    (frozen, cut off from the database) must not overwrite what the new holder wrote. Such a write is
    refused, logged (``connections.status_refused``) and returns None.
    """
    try:
        with transaction.atomic():
            conn = _locked_for(_conn_id(connection), runner_id)
            return _write_status(conn, status, event_kind=event_kind, detail=detail, runner_id=runner_id,
                                 alert_kind=alert_kind, **fields)
    except NotHolder as exc:
        logger.warning(STATUS_REFUSED, extra={"connection_id": _conn_id(connection), "status": status,
                                                            "event_kind": event_kind, "runner_id": runner_id,
                                                            "error": str(exc)})
        return None


def _write_status(conn: Connection, status: str, *, event_kind: str | None, detail: str, runner_id: str,
                  alert_kind: str | None = None, **fields) -> Connection:
    """do_set_status's write, on a row locked by the caller's transaction."""
    if conn.status != status:
        integrations.record_events(conn.tenant_id, [integrations.number_event(conn.pk, status, detail)])
    conn.status = status
    conn.status_detail = detail[:500]
    for name, value in fields.items():
        setattr(conn, name, value)
    conn.save(update_fields=["status", "status_detail", "updated_at", *fields])
    if event_kind:
        ConnectionEvent.objects.create(tenant_id=conn.tenant_id, connection=conn, kind=event_kind,
                                       detail=detail[:2000], runner_id=runner_id)
    if alert_kind:  # one open "number down" alert per number, whatever the latest reason (inbox.alerts)
        do_raise_alert(connection_down_cause(conn.pk), kind=alert_kind, message=f"{conn.name}: {detail}",
                       tenant_id=conn.tenant_id, connection_id=conn.pk)
    elif status == Status.CONNECTED:
        do_resolve_alert(connection_down_cause(conn.pk))
    publish_connection_on_commit(conn.tenant_id, conn.pk)
    transaction.on_commit(lambda: logger.info(STATUS_LOGGED, extra={
        "connection_id": conn.pk, "status": status, "event_kind": event_kind, "detail": detail, "runner_id": runner_id}))
    return conn


def do_mark_connecting(connection_id: int, runner_id: str, *, attempt: int) -> Connection:
    kind = Kind.RECONNECT_ATTEMPT if attempt > 0 else Kind.CONNECTING
    detail = f"attempt {attempt}" if attempt else "connecting"
    return do_set_status(connection_id, Status.CONNECTING, event_kind=kind, detail=detail, runner_id=runner_id)


def do_mark_pairing(connection_id: int, runner_id: str, *, code: str = "", expires_in: float = 60,
                    detail: str = "scan the QR code") -> Connection | None:
    """Store the current QR string / pair code for the pairing page (no event per rotated code)."""
    now = timezone.now()
    try:
        with transaction.atomic():
            conn = _locked_for(connection_id, runner_id)
            first = conn.status != Status.PAIRING or not conn.pairing_code
            Connection.objects.unscoped().filter(pk=connection_id).update(
                status=Status.PAIRING, status_detail=detail, pairing_code=code,
                pairing_expires_at=now + timedelta(seconds=expires_in), updated_at=now)
            if first:
                ConnectionEvent.objects.create(tenant_id=conn.tenant_id, connection=conn, kind=Kind.PAIRING,
                                               detail=detail, runner_id=runner_id)
            publish_connection_on_commit(conn.tenant_id, conn.pk)
        return conn
    except NotHolder as exc:
        logger.warning(STATUS_REFUSED, extra={"connection_id": connection_id, "status": Status.PAIRING,
                                                            "runner_id": runner_id, "error": str(exc)})
        return None


def do_mark_paired(connection_id: int, runner_id: str, *, jid: str, push_name: str = "") -> Connection | None:
    now = timezone.now()
    number = jid.partition("@")[0].partition(":")[0]
    return do_set_status(connection_id, Status.CONNECTING, event_kind=Kind.PAIRED, detail=f"paired as {jid}",
                         runner_id=runner_id, jid=jid, paired_at=now, phone_number=f"+{number}" if number else "",
                         push_name=push_name[:255], pairing_code="", pairing_expires_at=None)


def do_mark_connected(connection_id: int, runner_id: str) -> Connection:
    now = timezone.now()
    return do_set_status(connection_id, Status.CONNECTED, event_kind=Kind.CONNECTED, detail="connected",
                         runner_id=runner_id, last_connected_at=now, last_heartbeat_at=now, reconnect_attempts=0,
                         next_retry_at=None, pairing_code="", pairing_expires_at=None)


def do_record_connect_failure(connection_id: int, runner_id: str, detail: str, *, kind: str = Kind.CONNECT_FAILED
                              ) -> tuple[Connection | None, float | None]:
    """A lost session or failed attempt: count it, schedule the retry with backoff, or give up.

    Returns (connection, seconds until the retry), (connection, None) once it gave up (status failed,
    an Alert raised, beat's slow retry takes over), or (None, None) if ``runner_id`` no longer holds it.
    """
    now = timezone.now()
    try:
        with transaction.atomic():
            conn = _locked_for(connection_id, runner_id)
            attempts = conn.reconnect_attempts + 1
            if attempts >= settings.RUNNER_MAX_RECONNECT_ATTEMPTS:
                conn = _write_status(conn, Status.FAILED, event_kind=Kind.FAILED,
                                     detail=f"gave up after {attempts} failed attempts: {detail}", runner_id=runner_id,
                                     alert_kind=Alert.Kind.CONNECTION_FAILED, reconnect_attempts=attempts,
                                     next_retry_at=now + SLOW_RETRY)
                return conn, None
            delay = backoff_delay(attempts)
            # An unpaired number stays "pairing" so a restarted runner still picks it up.
            conn = _write_status(conn, Status.DISCONNECTED if conn.jid else Status.PAIRING, event_kind=kind,
                                 detail=f"{detail} (attempt {attempts}, retry in {delay:.1f} s)", runner_id=runner_id,
                                 reconnect_attempts=attempts, next_retry_at=now + timedelta(seconds=delay))
            return conn, delay
    except NotHolder as exc:
        logger.warning(STATUS_REFUSED, extra={"connection_id": connection_id, "event_kind": kind,
                                                            "runner_id": runner_id, "error": str(exc)})
        return None, None


_TERMINAL = {
    "logged_out": (Status.LOGGED_OUT, Kind.LOGGED_OUT, Alert.Kind.LOGGED_OUT),
    "banned": (Status.FAILED, Kind.BANNED, Alert.Kind.BANNED),
    "stream_replaced": (Status.FAILED, Kind.STREAM_REPLACED, Alert.Kind.STREAM_REPLACED),
    "qr_expired": (Status.NEW, Kind.QR_EXPIRED, None),
}


def do_mark_terminal(connection_id: int, runner_id: str, state: str, detail: str, *, retry_after: float | None = None
                     ) -> Connection:
    """Logged out, banned, stream replaced, QR expired: stop reconnecting, record why, alert.

    A ban is retried by beat after it expires (next_retry_at); stream replaced is not retried
    automatically (the keys are in use elsewhere); logged out needs pairing again.
    """
    status, kind, alert = _TERMINAL[state]
    fields = {"next_retry_at": timezone.now() + timedelta(seconds=retry_after) if retry_after else None,
              "pairing_code": "", "pairing_expires_at": None}
    if state == "logged_out":
        fields["jid"] = None
    return do_set_status(connection_id, status, event_kind=kind, detail=detail, runner_id=runner_id, alert_kind=alert,
                         **fields)


def do_mark_stopped(connection_id: int, runner_id: str, detail: str = "stopped") -> Connection | None:
    """The session was stopped here (paused, or the runner is stopping). An unpaired number keeps
    waiting for pairing, so the next runner that claims it shows a fresh QR code."""
    paired = Connection.objects.unscoped().filter(pk=connection_id).exclude(jid__isnull=True).exclude(jid="").exists()
    return do_set_status(connection_id, Status.DISCONNECTED if paired else Status.PAIRING, event_kind=Kind.STOPPED,
                         detail=detail, runner_id=runner_id, next_retry_at=None, pairing_code="",
                         pairing_expires_at=None)


# --- leases ---------------------------------------------------------------------------------------


def claimable_connections():
    """Connections a runner should hold: desired connected, paired (or pairing was asked for), not archived
    (a deleted number is never hosted, whatever its desired state says: inbox.deletion)."""
    return Connection.objects.unscoped().filter(
        Q(jid__isnull=False) & ~Q(jid="") | Q(status=Status.PAIRING),
        desired_state=Connection.DesiredState.CONNECTED, archived_at__isnull=True,
    ).exclude(status__in=[Status.FAILED, Status.LOGGED_OUT])


def claim_connections(runner_id: str, limit: int) -> list[Connection]:
    """Lease up to ``limit`` free connections (lease expired or never held) for this runner.

    PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED`` so runners claiming together never wait on or
    take the same rows. SQLite: the IMMEDIATE transaction serialises writers. Either way the UPDATE
    re-checks the lease, so a row can never end up held by two runners. A row whose lease another
    runner let expire gets a ``runner_lost`` event: the history says why the number went away.
    """
    if limit <= 0:
        return []
    now = timezone.now()
    expires = now + timedelta(seconds=settings.RUNNER_LEASE_SECONDS)
    free = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now) | Q(runner_id="")
    with transaction.atomic():
        previous = dict(claimable_connections().filter(free).exclude(runner_id=runner_id, lease_expires_at__gte=now)
                        .order_by("id").select_for_update(skip_locked=True).values_list("id", "runner_id")[:limit])
        if not previous:
            return []
        Connection.objects.unscoped().filter(free, pk__in=list(previous)).update(runner_id=runner_id, lease_expires_at=expires)
        claimed = list(Connection.objects.unscoped().filter(pk__in=list(previous), runner_id=runner_id))
        events = []
        for c in claimed:
            lost = previous[c.pk]
            if lost and lost != runner_id:
                events.append(ConnectionEvent(tenant_id=c.tenant_id, connection=c, kind=Kind.RUNNER_LOST,
                                              detail=f"runner {lost} stopped renewing its lease; taken over by {runner_id}",
                                              runner_id=runner_id))
            events.append(ConnectionEvent(tenant_id=c.tenant_id, connection=c, kind=Kind.LEASE_ACQUIRED,
                                          detail="lease acquired", runner_id=runner_id))
        ConnectionEvent.objects.bulk_create(events)
    if claimed:
        logger.info("connections.lease_acquired", extra={"runner_id": runner_id, "connection_ids": [c.pk for c in claimed],
                                                         "taken_over": {c.pk: previous[c.pk] for c in claimed
                                                                        if previous[c.pk] and previous[c.pk] != runner_id}})
    return claimed


def renew_leases(runner_id: str, connection_ids, *, heartbeat_ids=()) -> tuple[set[int], datetime | None]:
    """Extend this runner's leases (and write last_heartbeat_at for live sessions); returns the ids still
    held and the new expiry. A live session whose row does not say ``connected`` (beat marked it stale
    while this runner was frozen, say) is corrected, with an event: the holder's view is the truth."""
    if not connection_ids:
        return set(), None
    now = timezone.now()
    expires = now + timedelta(seconds=settings.RUNNER_LEASE_SECONDS)
    mine = Connection.objects.unscoped().filter(runner_id=runner_id)
    with transaction.atomic():
        mine.filter(pk__in=connection_ids).update(lease_expires_at=expires)
        held = set(mine.filter(pk__in=connection_ids).values_list("id", flat=True))
        alive = [i for i in heartbeat_ids if i in held]
        if alive:
            mine.filter(pk__in=alive).update(last_heartbeat_at=now)
            beats = defaultdict(list)
            for cid, tenant_id in mine.filter(pk__in=alive).values_list("id", "tenant_id"):
                beats[tenant_id].append(cid)
            publish_heartbeats_on_commit(dict(beats), now)  # the numbers pages' ages, without waiting
            stale = list(mine.filter(pk__in=alive).exclude(status=Status.CONNECTED))
            if stale:
                for conn in stale:
                    _write_status(conn, Status.CONNECTED, event_kind=Kind.CONNECTED, runner_id=runner_id,
                                  detail=f"status corrected: the session is alive (the row said {conn.status})",
                                  reconnect_attempts=0, next_retry_at=None)
    return held, expires


def release_leases(runner_id: str, connection_ids) -> None:
    if not connection_ids:
        return
    with transaction.atomic():
        conns = list(Connection.objects.unscoped().filter(pk__in=connection_ids, runner_id=runner_id))
        Connection.objects.unscoped().filter(pk__in=[c.pk for c in conns], runner_id=runner_id).update(
            runner_id="", lease_expires_at=None)
        ConnectionEvent.objects.bulk_create([
            ConnectionEvent(tenant_id=c.tenant_id, connection=c, kind=Kind.LEASE_RELEASED, detail="lease released",
                            runner_id=runner_id) for c in conns
        ])
        for c in conns:
            publish_connection_on_commit(c.tenant_id, c.pk)
    logger.info("connections.lease_released", extra={"runner_id": runner_id, "connection_ids": list(connection_ids)})


# --- what people ask for (pages call these; the runner reacts to the nudge) ------------------------


def do_request_pairing(connection: Connection, *, method: str = "qr", phone: str = "") -> None:
    """Start pairing: the runner that claims it shows a QR (or a phone code when ``method == "phone"``)."""
    with transaction.atomic():
        Connection.objects.unscoped().filter(pk=connection.pk).update(
            status=Status.PAIRING, desired_state=Connection.DesiredState.CONNECTED, status_detail="waiting for a runner",
            pairing_code="", reconnect_attempts=0, next_retry_at=None, updated_at=timezone.now())
        do_record_event(connection, Kind.PAIRING, f"pairing requested ({method})")
        publish_connection_on_commit(connection.tenant_id, connection.pk)
        nudge_on_commit(connection.pk, Nudge.PAIR, method=method, phone=phone)


def do_set_desired_state(connection: Connection, desired: str) -> None:
    """Pause (stopped), resume (connected) or log out one number; see do_set_desired_states."""
    do_set_desired_states([connection], desired)


def do_set_desired_states(connections, desired: str) -> None:
    """Pause (stopped), resume (connected) or log out numbers; the holding runners act on the nudges.

    Two UPDATEs whatever the count. Resuming resets the reconnect attempts, and a number that gave up
    (``failed``, checked in the database, not on the caller's copy) goes back to ``disconnected``.
    """
    action = {"connected": Nudge.RESUME, "stopped": Nudge.PAUSE, "logged_out": Nudge.LOGOUT}[desired]
    connections = list(connections)
    if desired == Connection.DesiredState.CONNECTED:  # an archived number stays logged out until restored
        connections = [c for c in connections if c.archived_at is None]
    ids = [c.pk for c in connections]
    with transaction.atomic():
        fields = {"desired_state": desired, "updated_at": timezone.now()}
        if desired == Connection.DesiredState.CONNECTED:
            fields.update(reconnect_attempts=0, next_retry_at=None)
            Connection.objects.unscoped().filter(pk__in=ids, status=Status.FAILED).update(status=Status.DISCONNECTED)
        Connection.objects.unscoped().filter(pk__in=ids).update(**fields)
        for conn in connections:
            publish_connection_on_commit(conn.tenant_id, conn.pk)
            nudge_on_commit(conn.pk, action)


# --- beat ----------------------------------------------------------------------------------------


def _bulk_set_status(conns: list[Connection], status: str, *, event_kind: str, detail_for, **fields) -> list[int]:
    """do_set_status for many rows in a fixed number of queries (beat touches them all at once)."""
    if not conns:
        return []
    ids = [c.pk for c in conns]
    with transaction.atomic():
        Connection.objects.unscoped().filter(pk__in=ids).update(status=status, updated_at=timezone.now(), **fields)
        for tenant_id in sorted({c.tenant_id for c in conns}):
            integrations.record_events(tenant_id, [integrations.number_event(c.pk, status, detail_for(c))
                                               for c in conns if c.tenant_id == tenant_id and c.status != status])
        ConnectionEvent.objects.bulk_create([
            ConnectionEvent(tenant_id=c.tenant_id, connection=c, kind=event_kind, detail=detail_for(c)[:2000], runner_id=BEAT)
            for c in conns
        ])
        for c in conns:
            publish_connection_on_commit(c.tenant_id, c.pk)
            nudge_on_commit(c.pk, Nudge.RECONCILE)
    logger.info(STATUS_LOGGED, extra={"connection_ids": ids, "status": status, "event_kind": event_kind,
                                             "runner_id": BEAT})
    return ids


def do_mark_stale_connections() -> list[int]:
    """Connected rows whose heartbeat is older than two lease periods: disconnected, recorded, nudged."""
    cutoff = timezone.now() - timedelta(seconds=2 * settings.RUNNER_LEASE_SECONDS)
    stale = list(Connection.objects.unscoped().filter(status=Status.CONNECTED)
                 .filter(Q(last_heartbeat_at__lt=cutoff) | Q(last_heartbeat_at__isnull=True)))
    return _bulk_set_status(stale, Status.DISCONNECTED, event_kind=Kind.HEARTBEAT_STALE,
                            detail_for=lambda c: f"no heartbeat since {c.last_heartbeat_at}",
                            status_detail="heartbeat stale")


def do_mark_lost_runners() -> list[int]:
    """Rows whose runner let the lease expire a whole lease period ago and that no runner took over:
    the runner is gone. Recorded as ``runner_lost``, the lease cleared, a live-looking status set to
    disconnected (an unpaired number stays pairing), so the page never shows a dead number as up."""
    cutoff = timezone.now() - timedelta(seconds=settings.RUNNER_LEASE_SECONDS)
    lost = list(Connection.objects.unscoped().exclude(runner_id="").filter(lease_expires_at__lt=cutoff))
    if not lost:
        return []
    ids = [c.pk for c in lost]
    with transaction.atomic():
        Connection.objects.unscoped().filter(pk__in=ids, lease_expires_at__lt=cutoff).update(
            runner_id="", lease_expires_at=None, updated_at=timezone.now())
        live = [Status.CONNECTED, Status.CONNECTING]
        Connection.objects.unscoped().filter(pk__in=ids, status__in=live).exclude(jid__isnull=True).exclude(jid="").update(
            status=Status.DISCONNECTED, status_detail="its runner was lost")
        Connection.objects.unscoped().filter(Q(jid__isnull=True) | Q(jid=""), pk__in=ids, status__in=live).update(
            status=Status.PAIRING, status_detail="its runner was lost")
        ConnectionEvent.objects.bulk_create([
            ConnectionEvent(tenant_id=c.tenant_id, connection=c, kind=Kind.RUNNER_LOST, runner_id=BEAT,
                            detail=f"runner {c.runner_id} stopped renewing its lease (expired {c.lease_expires_at:%H:%M:%S})")
            for c in lost
        ])
        for c in lost:
            publish_connection_on_commit(c.tenant_id, c.pk)
            nudge_on_commit(c.pk, Nudge.RECONCILE)
    logger.warning("connections.runner_lost", extra={"connection_ids": ids, "runner_ids": sorted({c.runner_id for c in lost})})
    return ids


def do_retry_failed_connections() -> list[int]:
    """Slow retry: failed connections whose retry time passed go back to the runners (attempts reset)."""
    due = list(Connection.objects.unscoped().filter(status=Status.FAILED, desired_state=Connection.DesiredState.CONNECTED,
                                                    next_retry_at__lte=timezone.now()))
    # An unpaired number goes back to "pairing", which is what makes it claimable without a JID.
    return [i for status, group in ((Status.DISCONNECTED, [c for c in due if c.jid]),
                                    (Status.PAIRING, [c for c in due if not c.jid]))
            for i in _bulk_set_status(group, status, event_kind=Kind.RECONNECT_ATTEMPT,
                                      detail_for=lambda c: "slow retry by beat", status_detail="slow retry by beat",
                                      reconnect_attempts=0, next_retry_at=None)]


# --- self-service (tenant owners and admins; views validate, these write) --------------------------


class NumberLimitReached(Exception):
    """The tenant already has settings.TENANT_MAX_NUMBERS numbers (archived ones do not count)."""


FILTER_FIELDS = ("skip_status_broadcasts", "skip_newsletters", "skip_broadcast_lists", "skip_groups")


def check_create_connection(tenant, *, name: str, transport: str, user=None) -> Connection:
    """Add a number if the tenant is under its limit. The count is taken with the tenant's row locked,
    so two admins adding at once cannot both pass the last free place."""
    from inbox.models import Tenant

    with transaction.atomic():
        Tenant.objects.select_for_update().get(pk=tenant.pk)
        count = Connection.objects.for_tenant(tenant).filter(archived_at__isnull=True).count()
        if count >= settings.TENANT_MAX_NUMBERS:
            raise NumberLimitReached(_("This workspace already has %(count)d numbers, the most allowed (%(max)d). "
                                       "Delete one or ask the platform team for more.")
                                     % {"count": count, "max": settings.TENANT_MAX_NUMBERS})
        conn = Connection.objects.create(tenant=tenant, name=name, transport=transport, status=Status.NEW,
                                         desired_state=Connection.DesiredState.CONNECTED)
        do_record_event(conn, Kind.ADDED, f"added ({transport})" + (f" by {user.get_username()}" if user else ""))
        publish_connection_on_commit(conn.tenant_id, conn.pk)
    logger.info("connections.added", extra={"connection_id": conn.pk, "tenant_id": tenant.pk, "transport": transport,
                                            "user_id": getattr(user, "pk", None)})
    return conn


def do_rename_connection(connection: Connection, name: str, user=None) -> None:
    with transaction.atomic():
        old = connection.name
        Connection.objects.unscoped().filter(pk=connection.pk).update(name=name, updated_at=timezone.now())
        connection.name = name
        do_record_event(connection, Kind.RENAMED, f"{old} → {name}")
        publish_connection_on_commit(connection.tenant_id, connection.pk)
    logger.info("connections.renamed", extra={"connection_id": connection.pk, "user_id": getattr(user, "pk", None)})


def do_set_filters(connection: Connection, user=None, **filters) -> list[str]:
    """Change the skip filters (only FILTER_FIELDS); returns the names that changed. The runner and the
    journal processor read them from the row, so new events follow at once; older ones only on a replay."""
    changed = [f for f in FILTER_FIELDS if f in filters and bool(filters[f]) != getattr(connection, f)]
    if not changed:
        return []
    with transaction.atomic():
        values = {f: bool(filters[f]) for f in changed}
        Connection.objects.unscoped().filter(pk=connection.pk).update(**values, updated_at=timezone.now())
        for f, v in values.items():
            setattr(connection, f, v)
        do_record_event(connection, Kind.FILTERS_CHANGED, ", ".join(f"{f}={'on' if v else 'off'}" for f, v in values.items()))
        publish_connection_on_commit(connection.tenant_id, connection.pk)
    logger.info("connections.filters_changed", extra={"connection_id": connection.pk, "changed": changed,
                                                      "user_id": getattr(user, "pk", None)})
    return changed


def do_request_replay(connection: Connection, user=None) -> None:
    """Replay the number's whole journal with its current filters, by a Celery task after commit
    (idempotent: what is stored stays, what the new filters let through is added)."""
    from sync.tasks import replay_journal_task

    transaction.on_commit(lambda: replay_journal_task.delay(connection.pk))
    logger.info("connections.replay_requested", extra={"connection_id": connection.pk,
                                                       "user_id": getattr(user, "pk", None)})


def do_archive_connection(connection: Connection, user=None, *, at: datetime | None = None) -> None:
    """Delete a number but keep its history: logged out (the runner unlinks the session), hidden from the
    numbers page, no longer counted against the limit; conversations and messages stay (inbox.deletion).
    ``at``: the archive time (a tenant's archive gives all its numbers its own, to restore them together)."""
    with transaction.atomic():
        now = at or timezone.now()
        Connection.objects.unscoped().filter(pk=connection.pk).update(
            archived_at=now, desired_state=Connection.DesiredState.LOGGED_OUT, pairing_code="", updated_at=now)
        connection.archived_at, connection.desired_state = now, Connection.DesiredState.LOGGED_OUT
        do_record_event(connection, Kind.ARCHIVED, "deleted, history kept" + (f" by {user.get_username()}" if user else ""))
        publish_connection_on_commit(connection.tenant_id, connection.pk)
        nudge_on_commit(connection.pk, Nudge.LOGOUT)
    logger.info("connections.archived", extra={"connection_id": connection.pk, "user_id": getattr(user, "pk", None)})
