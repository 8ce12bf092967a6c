"""Reads for the numbers dashboard and the staff /ops/ view: everything for N numbers in a fixed number
of queries (grouped by number, never a query per number)."""

from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import Count, F, Q, Window
from django.db.models.functions import RowNumber, TruncHour
from django.utils import timezone
from django.utils.translation import gettext as _

from connections.models import Connection, ConnectionEvent
from inbox.charts import bar_chart_svg

HOURS = 7 * 24
RECONNECT_KINDS = [ConnectionEvent.Kind.RECONNECT_ATTEMPT, ConnectionEvent.Kind.DISCONNECTED,
                   ConnectionEvent.Kind.RUNNER_LOST]
# State history without these by default: a runner renewing or handing over a lease is not news.
LEASE_NOISE = [ConnectionEvent.Kind.LEASE_ACQUIRED, ConnectionEvent.Kind.LEASE_RELEASED]


@dataclass
class NumberStats:
    reconnects_24h: int = 0
    journal_pending: int = 0
    journal_failed: int = 0
    journal_quarantined: int = 0
    open_alerts: int = 0
    runs: list = field(default_factory=list)
    reconnects_chart: str = ""
    messages_chart: str = ""
    child: str = ""
    media: dict = field(default_factory=dict)  # {"fetched", "pending", "failed", "expired", "bytes"}


def _hour_series(rows, ids, since) -> dict[int, list[int]]:
    series = {cid: [0] * HOURS for cid in ids}
    for row in rows:
        index = int((row["hour"] - since).total_seconds() // 3600)
        if 0 <= index < HOURS and row["connection_id"] in series:
            series[row["connection_id"]][index] += row["n"]
    return series


def number_stats(tenant_ids, connection_ids, runner_children: dict | None = None) -> dict[int, NumberStats]:
    """Per number: reconnects in 24 h, journal backlog and failures, open alerts, the last sync runs and
    7-day hourly charts of reconnects and messages, media downloads by state (the background fetch of a
    history sync's files). Seven queries whatever the count of numbers."""
    from django.db.models import Sum

    from inbox.models import Alert, MediaFile, Message
    from sync.models import RawEvent, SyncRun

    ids = list(connection_ids)
    stats = {cid: NumberStats() for cid in ids}
    if not ids:
        return stats
    now = timezone.now()
    since = (now - timedelta(hours=HOURS - 1)).replace(minute=0, second=0, microsecond=0)
    day_ago = now - timedelta(hours=24)

    reconnects = _hour_series(
        ConnectionEvent.objects.unscoped().filter(tenant_id__in=tenant_ids, connection_id__in=ids,
                                                  kind__in=RECONNECT_KINDS, created_at__gte=since)
        .annotate(hour=TruncHour("created_at")).values("connection_id", "hour").annotate(n=Count("id")), ids, since)
    messages = _hour_series(
        Message.objects.unscoped().filter(tenant_id__in=tenant_ids, connection_id__in=ids, sent_at__gte=since)
        .annotate(hour=TruncHour("sent_at")).values("connection_id", "hour").annotate(n=Count("id")), ids, since)
    for row in (ConnectionEvent.objects.unscoped().filter(tenant_id__in=tenant_ids, connection_id__in=ids,
                                                          kind__in=RECONNECT_KINDS, created_at__gte=day_ago)
                .values("connection_id").annotate(n=Count("id"))):
        stats[row["connection_id"]].reconnects_24h = row["n"]
    states = RawEvent.State
    for row in (RawEvent.objects.unscoped().filter(tenant_id__in=tenant_ids, connection_id__in=ids,
                                                   state__in=[states.PENDING, states.FAILED, states.QUARANTINED])
                .values("connection_id")
                .annotate(pending=Count("id", filter=Q(state=states.PENDING)),
                          failed=Count("id", filter=Q(state=states.FAILED)),
                          quarantined=Count("id", filter=Q(state=states.QUARANTINED)))):
        s = stats[row["connection_id"]]
        s.journal_pending, s.journal_failed, s.journal_quarantined = row["pending"], row["failed"], row["quarantined"]
    for row in (Alert.objects.unscoped().filter(tenant_id__in=tenant_ids, connection_id__in=ids, resolved_at__isnull=True)
                .values("connection_id").annotate(n=Count("id"))):
        stats[row["connection_id"]].open_alerts = row["n"]
    runs = (SyncRun.objects.unscoped().filter(tenant_id__in=tenant_ids, connection_id__in=ids)
            .annotate(rank=Window(RowNumber(), partition_by=[F("connection_id")], order_by=[F("started_at").desc()]))
            .filter(rank__lte=3).order_by("connection_id", "-started_at"))
    for run in runs:
        stats[run.connection_id].runs.append(run)
    ms = MediaFile.State
    for row in (MediaFile.objects.unscoped().filter(tenant_id__in=tenant_ids, connection_id__in=ids)
                .values("connection_id")
                .annotate(fetched=Count("id", filter=Q(state=ms.FETCHED)), pending=Count("id", filter=Q(state=ms.PENDING)),
                          failed=Count("id", filter=Q(state=ms.FAILED)), expired=Count("id", filter=Q(state=ms.EXPIRED)),
                          bytes=Sum("size", filter=Q(state=ms.FETCHED)))):
        cid = row.pop("connection_id")
        stats[cid].media = {**row, "bytes": row["bytes"] or 0}
    for cid, s in stats.items():
        s.reconnects_chart = bar_chart_svg(reconnects[cid], label=_("Reconnects per hour, 7 days"), color="#dc2626")
        s.messages_chart = bar_chart_svg(messages[cid], label=_("Messages per hour, 7 days"))
        s.child = (runner_children or {}).get(cid, "")
    return stats


def runner_children() -> dict[int, str]:
    """{connection id: "runner / child N"} from the runners' marks in Redis (empty if Redis is down)."""
    from config import heartbeats

    try:
        marks = heartbeats.runner_marks()
    except Exception:  # noqa: BLE001 - the page still renders; the health check reports Redis
        return {}
    out = {}
    for runner_id, mark in marks.items():
        for child, sessions in (mark.get("hosts") or {}).items():
            for cid in sessions:
                out[int(cid)] = f"{runner_id} / child {child}"
    return out


def history_page(tenant, connection_id, *, kind: str = "", include_leases: bool = False, before_id: int | None = None,
                 page_size: int = 50) -> tuple[list, int | None]:
    """A page of a number's state changes, newest first (keyset by id); returns (events, next before_id)."""
    qs = ConnectionEvent.objects.for_tenant(tenant).filter(connection_id=connection_id)
    if kind:
        qs = qs.filter(kind=kind)
    elif not include_leases:
        qs = qs.exclude(kind__in=LEASE_NOISE)
    if before_id:
        qs = qs.filter(id__lt=before_id)
    events = list(qs.order_by("-id")[:page_size + 1])
    more = len(events) > page_size
    events = events[:page_size]
    return events, (events[-1].pk if more else None)


def ops_numbers() -> list[Connection]:
    return list(Connection.objects.unscoped().select_related("tenant").order_by("tenant__name", "name", "pk"))
