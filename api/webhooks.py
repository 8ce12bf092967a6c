"""Outbound webhooks: what happened in a tenant, POSTed to its endpoints, signed, in order, retried.

Recording (``record_events``, registered at ready() as the core's recorder: ``inbox.integrations``) is called
by the actions that make the changes, inside their transaction: one query for the tenant's enabled endpoints
and one insert of ``WebhookDelivery`` rows (arrays, not a model instance per row: ``api.statements.insert_deliveries``)
carrying only ids and the event's own data, then, on commit, a Celery task per endpoint partition touched
(unless one is already queued for it). The sync engine calls it once per ingested batch, so a flood costs two
statements per batch, never an HTTP request; a tenant without endpoints costs one indexed query per batch. A
change that rolls back leaves no delivery; a committed one always has its rows (the outbox pattern, as for
replies).

Delivery (``deliver_pending``, from ``api.tasks.deliver_webhooks_task``): rows are split into
``WEBHOOK_PARTITIONS`` partitions by their ``ordering_key`` (a conversation, a number, an alert: one key is
always in one partition), one process at a time per endpoint partition (a Redis lock), deliveries in id order,
and per key strictly in order: while one is waiting for its retry, the later ones of its key wait too, other
keys go on. An endpoint with ``batch_size`` > 1 gets JSON arrays of up to that many events per request (signed
over the whole body); otherwise one event object per request. The JSON of each event is built at its first
attempt from the latest state (the API's serializers) and kept, so retries and redeliveries send the same
event; it is encoded once, and those bytes are the body and what the log row stores. A failed request is
retried after ``config.backoff`` (base doubling to the cap, with jitter); after ``WEBHOOK_MAX_ATTEMPTS`` a
delivery is given up (``failed``; the log keeps it and a person may redeliver).
``WEBHOOK_DISABLE_AFTER_FAILURES`` failed requests in a row disable the endpoint and raise an alert to the
tenant. Requests go over kept-alive connections (``inbox.outbound.post_json_pooled``, the SSRF guard before
each one).

Signature: ``X-Inbox-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``. A receiver
recomputes it over the raw body, compares in constant time and refuses a timestamp older than a few minutes
(``verify_signature`` is the reference; docs/api.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import zlib
from datetime import timedelta
from uuid import uuid4

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Mod
from django.utils import timezone
from django.utils.translation import gettext as _

from api import statements
from api.models import WebhookDelivery, WebhookEndpoint, new_webhook_secret
from config.backoff import backoff
from config.redis import redis_client
from config.scope import database_scope
from inbox.integrations import EVENTS, Event
from inbox.outbound import HTTPFailure, RefusedURL, check_public_url, post_json_pooled

logger = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Inbox-Signature"
SIGNATURE_TOLERANCE_SECONDS = 300
LOCK_MS = 120_000  # the lock is renewed before each request; a dead holder frees it within this
PAGE = 500
SHARDS = 1024  # WebhookDelivery.shard's range: partitions are shard % WEBHOOK_PARTITIONS
QUEUED_FLAG_MS = 60_000


# --- recording (inside the writer's transaction) ----------------------------------------------------


def shard_of(ordering_key: str) -> int:
    return zlib.crc32(ordering_key.encode()) % SHARDS


def partition_of(shard: int) -> int:
    return shard % max(1, settings.WEBHOOK_PARTITIONS)


def record_events(tenant_id: int, events: list[Event]) -> int:
    """Deliveries of these events for the tenant's enabled endpoints that subscribed to them; the
    delivery tasks (one per endpoint and partition touched) start on commit. Returns how many rows were
    written. Never raises into the caller's business beyond a database error of its own transaction."""
    if not events or not tenant_id:
        return 0
    endpoints = list(WebhookEndpoint.objects.for_tenant(tenant_id).filter(enabled=True).values_list("id", "events"))
    if not endpoints:
        return 0
    shards = {e.ordering_key: shard_of(e.ordering_key) for e in events}
    rows = [(endpoint_id, e.name, e.ordering_key, shards[e.ordering_key], e.object_id, e.data)
            for e in events for endpoint_id, subscribed in endpoints if e.name in subscribed]
    if not rows:
        return 0
    statements.insert_deliveries(tenant_id, rows)
    targets = sorted({(endpoint_id, partition_of(shard)) for endpoint_id, _, _, shard, _, _ in rows})
    transaction.on_commit(lambda: enqueue_deliveries(targets, wait=settings.WEBHOOK_COALESCE_SECONDS), robust=True)
    return len(rows)


def _queued_key(endpoint_id: int, partition) -> str:
    return f"webhook-queued:{database_scope()}:{endpoint_id}:{partition}"


def enqueue_deliveries(targets, countdown: float | None = None, wait: float = 0.0) -> None:
    """A delivery task for each ``(endpoint id, partition)`` (partition None: every partition).

    A flood records deliveries many times a second; a task is enqueued only when none is waiting for that
    partition (a Redis flag set here and cleared by the task as it starts, before it reads the rows), so
    a waiting task picks up everything recorded before it starts and the queue holds one task per
    partition, not one per write. The flag expires, so a task lost with the broker costs one minute
    (beat's safety net), never the deliveries. ``wait``: the flagged task starts that many seconds later
    (``WEBHOOK_COALESCE_SECONDS``), so it carries what is recorded meanwhile in the same requests.
    ``countdown`` (a retry's): the task is scheduled without the flag."""
    from api.tasks import deliver_webhooks_task

    targets = list(targets)
    flagged = False  # the targets left are the ones whose flag this call set
    if countdown is None:
        # One round trip for every target's flag (the ingest's commit waits on it).
        try:
            pipe = redis_client().pipeline(transaction=False)
            for endpoint_id, partition in targets:
                pipe.set(_queued_key(endpoint_id, partition), "1", nx=True, px=QUEUED_FLAG_MS)
            # A target whose flag was set already has a task waiting in the queue, which will read this row.
            targets = [target for target, ok in zip(targets, pipe.execute(), strict=True) if ok]
            flagged = True
        except Exception as exc:  # noqa: BLE001 - Redis down: enqueue anyway (the broker decides)
            logger.warning("webhook.queue_flag_failed", extra={"targets": targets[:20], "error": repr(exc)[:300]})
    for endpoint_id, partition in targets:
        try:
            deliver_webhooks_task.apply_async((endpoint_id, partition), countdown=countdown or wait or None)
        except Exception as exc:  # noqa: BLE001 - broker down: the rows wait; beat's safety net enqueues them
            logger.error("webhook.enqueue_failed", extra={"endpoint_id": endpoint_id, "error": repr(exc)[:300]})
            if flagged:
                try:
                    redis_client().delete(_queued_key(endpoint_id, partition))
                except Exception:  # noqa: BLE001, S110 - the flag expires on its own
                    pass


def clear_queued_flag(endpoint_id: int, partition) -> None:
    """Called by the task as it starts: a row committed from now on enqueues a new task."""
    try:
        redis_client().delete(_queued_key(endpoint_id, partition))
    except Exception as exc:  # noqa: BLE001 - the flag expires on its own
        logger.warning("webhook.queue_flag_failed", extra={"endpoint_id": endpoint_id, "error": repr(exc)[:300]})


# --- endpoints (the tenant's API page) ---------------------------------------------------------------


class EndpointRefused(ValueError):
    """A URL or an event list a webhook endpoint cannot have; the message is for the form."""


def check_create_endpoint(tenant, *, url: str, events: list[str], user=None, batch_size: int = 1) -> WebhookEndpoint:
    try:
        check_public_url(url)
    except RefusedURL as exc:
        raise EndpointRefused(_("This URL cannot receive webhooks: %(reason)s.") % {"reason": exc}) from None
    unknown = sorted(set(events) - set(EVENTS))
    if unknown or not events:
        raise EndpointRefused(_("Choose at least one event.") if not events
                             else _("Unknown events: %(events)s") % {"events": ", ".join(unknown)})
    if not 1 <= batch_size <= settings.WEBHOOK_BATCH_MAX:
        raise EndpointRefused(_("Events per request: from 1 to %(max)d.") % {"max": settings.WEBHOOK_BATCH_MAX})
    endpoint = WebhookEndpoint.objects.create(tenant=tenant, url=url, events=sorted(set(events)), created_by=user,
                                              batch_size=batch_size, secret=new_webhook_secret())
    logger.info("webhook.endpoint_created", extra={"tenant_id": tenant.pk, "endpoint_id": endpoint.pk,
                                                   "user_id": getattr(user, "pk", None)})
    return endpoint


def do_set_endpoint_enabled(endpoint: WebhookEndpoint, enabled: bool, *, reason: str = "", user=None) -> None:
    """Enable (failures forgotten; what waited is sent) or disable an endpoint (nothing new is recorded
    for it; pending deliveries wait)."""
    with transaction.atomic():
        WebhookEndpoint.objects.for_tenant(endpoint.tenant_id).filter(pk=endpoint.pk).update(
            enabled=enabled, consecutive_failures=0 if enabled else F("consecutive_failures"),
            disabled_reason="" if enabled else reason[:300], updated_at=timezone.now())
        endpoint.refresh_from_db()
        if enabled:
            transaction.on_commit(lambda: enqueue_deliveries([(endpoint.pk, None)]), robust=True)
    logger.info("webhook.endpoint_enabled" if enabled else "webhook.endpoint_disabled", extra={
        "tenant_id": endpoint.tenant_id, "endpoint_id": endpoint.pk, "reason": reason,
        "user_id": getattr(user, "pk", None)})


def do_delete_endpoint(endpoint: WebhookEndpoint, *, user=None) -> None:
    WebhookEndpoint.objects.for_tenant(endpoint.tenant_id).filter(pk=endpoint.pk).delete()
    logger.info("webhook.endpoint_deleted", extra={"tenant_id": endpoint.tenant_id, "endpoint_id": endpoint.pk,
                                                   "user_id": getattr(user, "pk", None)})


def do_redeliver(delivery: WebhookDelivery, *, user=None) -> WebhookDelivery:
    """Send a logged delivery again, as a new log entry with the same body (and event id)."""
    with transaction.atomic():
        again = WebhookDelivery.objects.create(
            tenant_id=delivery.tenant_id, endpoint_id=delivery.endpoint_id, event=delivery.event,
            ordering_key=delivery.ordering_key, object_id=delivery.object_id, data=delivery.data,
            shard=shard_of(delivery.ordering_key), payload=delivery.payload, redelivery_of=delivery)
        targets = [(delivery.endpoint_id, partition_of(again.shard))]
        transaction.on_commit(lambda: enqueue_deliveries(targets), robust=True)
    logger.info("webhook.redelivery", extra={"delivery_id": delivery.pk, "new_delivery_id": again.pk,
                                             "user_id": getattr(user, "pk", None)})
    return again


def endpoint_deliveries(endpoint: WebhookEndpoint, limit: int = 50) -> list[WebhookDelivery]:
    return list(WebhookDelivery.objects.for_tenant(endpoint.tenant_id).filter(endpoint_id=endpoint.pk)
                .order_by("-id")[:limit])


# --- signing ----------------------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(secret: str, header: str, body: bytes, *, tolerance: int = SIGNATURE_TOLERANCE_SECONDS,
                     now: float | None = None) -> bool:
    """What a receiver does: the header's timestamp is recent and one of its v1 signatures matches."""
    parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
    timestamps = [v for k, v in parts if k.strip() == "t"]
    signatures = [v.strip() for k, v in parts if k.strip() == "v1"]
    if len(timestamps) != 1 or not timestamps[0].strip().isdigit() or not signatures:
        return False
    timestamp = int(timestamps[0])
    if abs((now if now is not None else time.time()) - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, s) for s in signatures)


# --- delivery (Celery) ------------------------------------------------------------------------------


def _lock_key(endpoint_id: int, partition: int) -> str:
    return f"webhook-lock:{database_scope()}:{endpoint_id}:{partition}"


_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


def deliver_pending(endpoint_id: int, partition: int | None = None, *, budget_seconds: float = 50.0) -> int:
    """Send the due deliveries of one partition of the endpoint (None: each partition in turn), in order;
    returns how many requests were made. One caller per partition at a time: a second one returns at
    once, and the holder looks again after releasing the lock, so a delivery recorded meanwhile is never
    left behind. Work left when the budget runs out, and retries not yet due, go to a later task."""
    if partition is None:
        deadline = time.monotonic() + budget_seconds
        return sum(deliver_pending(endpoint_id, p, budget_seconds=max(0.1, deadline - time.monotonic()))
                   for p in range(max(1, settings.WEBHOOK_PARTITIONS)))
    r = redis_client()
    key, token = _lock_key(endpoint_id, partition), uuid4().hex
    deadline = time.monotonic() + budget_seconds
    requests_made = 0
    while True:
        if not r.set(key, token, nx=True, px=LOCK_MS):
            return requests_made
        try:
            requests_made += _deliver_due(endpoint_id, partition, deadline, lambda: r.pexpire(key, LOCK_MS))
        finally:
            r.eval(_RELEASE, 1, key, token)
        due, later = _pending_state(endpoint_id, partition)
        if due and time.monotonic() < deadline:
            continue
        if due:
            enqueue_deliveries([(endpoint_id, partition)])
        elif later is not None:
            enqueue_deliveries([(endpoint_id, partition)],
                               countdown=max(0.0, (later - timezone.now()).total_seconds()) + 0.05)
        return requests_made


def _endpoint(endpoint_id: int) -> WebhookEndpoint | None:
    # unscoped: the task's endpoint id names one tenant's row; its tenant scopes everything after.
    return WebhookEndpoint.objects.unscoped().filter(pk=endpoint_id).first()


def _pending(endpoint: WebhookEndpoint, partition: int):
    """The endpoint's pending deliveries in this partition (the partial index on (endpoint, id) finds them)."""
    partitions = max(1, settings.WEBHOOK_PARTITIONS)
    rows = WebhookDelivery.objects.for_tenant(endpoint.tenant_id).filter(endpoint_id=endpoint.pk,
                                                                         status=WebhookDelivery.Status.PENDING)
    if partitions > 1:
        rows = rows.annotate(partition=Mod("shard", partitions)).filter(partition=partition)
    return rows


def _pending_page(endpoint: WebhookEndpoint, partition: int, after: int) -> list[WebhookDelivery]:
    """The next page of pending deliveries after id ``after``, in id order."""
    return list(_pending(endpoint, partition).filter(pk__gt=after).order_by("id")[:PAGE])


def _pending_state(endpoint_id: int, partition: int):
    """(a pending delivery is due now, when the earliest one not due yet is due)."""
    endpoint = _endpoint(endpoint_id)
    if endpoint is None or not endpoint.enabled:
        return False, None
    now = timezone.now()
    blocked_until = {}
    for key, at in _pending(endpoint, partition).order_by("id").values_list("ordering_key", "next_attempt_at")[:5000]:
        if key in blocked_until:
            continue
        if at is None or at <= now:
            return True, None
        blocked_until[key] = at
    return False, min(blocked_until.values(), default=None)


def _deliver_due(endpoint_id: int, partition: int, deadline: float, renew) -> int:
    """Due deliveries in id order, skipping every later one of a key whose earlier one waits for its retry,
    in requests of up to the endpoint's batch size; stops when a failure disables the endpoint."""
    endpoint = _endpoint(endpoint_id)
    if endpoint is None or not endpoint.enabled:
        return 0
    size = max(1, min(endpoint.batch_size, settings.WEBHOOK_BATCH_MAX))
    blocked: set[str] = set()
    requests_made, after = 0, 0

    def send(batch) -> bool:
        nonlocal requests_made
        renew()
        requests_made += 1
        if not _send(endpoint, batch):
            blocked.update(d.ordering_key for d in batch)
        return endpoint.enabled

    while time.monotonic() < deadline:
        page = _pending_page(endpoint, partition, after)
        if not page:
            break
        last_page = len(page) < PAGE  # what is recorded from now on, deliver_pending's look after the lock finds
        now = timezone.now()
        due = []
        for delivery in page:
            after = delivery.pk
            if delivery.ordering_key in blocked:
                continue
            if delivery.next_attempt_at and delivery.next_attempt_at > now:
                blocked.add(delivery.ordering_key)
                continue
            due.append(delivery)
        build_payloads(due)  # a page's bodies in a few queries, not one per delivery (kept once sent)
        batch: list[WebhookDelivery] = []
        for delivery in due:
            if delivery.ordering_key in blocked:  # an earlier batch of this page failed for its key
                continue
            batch.append(delivery)
            if len(batch) >= size:
                if time.monotonic() >= deadline or not send(batch):
                    return requests_made
                batch = []
        if batch and (time.monotonic() >= deadline or not send(batch)):
            return requests_made
        if last_page:
            break
    return requests_made


def _objects(tenant_id: int, kind: str, ids) -> dict[int, dict]:
    """The API's representation of these objects of one kind, by id (one query)."""
    from api import serializers as s
    from connections.models import Connection
    from inbox.labels import labels_prefetch
    from inbox.models import Alert, Contact, Conversation, Message

    if kind == "message":
        # extra (WhatsApp's leftovers) and the media's download reference are not in the API's shape.
        rows = Message.objects.for_tenant(tenant_id).select_related("media").defer("extra", "media__ref")
        serializer = s.MessageSerializer
    elif kind == "conversation":
        rows = (Conversation.objects.for_tenant(tenant_id).select_related("contact", "assignee")
                .prefetch_related(labels_prefetch(tenant_id)))
        serializer = s.ConversationSerializer
    elif kind == "contact":
        rows = Contact.objects.for_tenant(tenant_id).prefetch_related("identities")
        serializer = s.ContactDetailSerializer
    elif kind == "number":
        rows, serializer = Connection.objects.for_tenant(tenant_id), s.NumberSerializer
    elif kind == "alert":
        rows, serializer = Alert.objects.for_tenant(tenant_id), s.AlertSerializer
    else:
        return {}
    rows = list(rows.filter(pk__in=list(ids)))
    # many=True: the serializer's fields are built once for the list, not once per row (most of the cost).
    return {row.pk: data for row, data in zip(rows, serializer(rows, many=True).data, strict=True)}


_ENCODER = DjangoJSONEncoder()


def build_payloads(deliveries: list[WebhookDelivery]) -> None:
    """Set ``payload`` on those without one: the object as the API shows it now (one query per kind of
    object for the whole list), plus what the event itself carried. Each new payload is encoded once
    (``event_json``): the same text is the request's body and what ``_save_attempts`` stores."""
    missing = [d for d in deliveries if d.payload is None]
    wanted: dict[tuple[int, str], set[int]] = {}
    for d in missing:
        wanted.setdefault((d.tenant_id, d.event.split(".", 1)[0]), set()).add(d.object_id)
    found = {key: _objects(key[0], key[1], ids) for key, ids in wanted.items()}
    for d in missing:
        kind = d.event.split(".", 1)[0]
        data = dict(d.data)
        data[kind] = found[(d.tenant_id, kind)].get(d.object_id) or {"id": d.object_id, "gone": True}
        # The serializers' output is JSON already (datetimes as strings); the event's own time is made one
        # here as DjangoJSONEncoder writes it (milliseconds, "Z").
        d.payload = {"id": f"evt_{d.pk}", "event": d.event, "created_at": _ENCODER.default(d.created_at),
                     "data": data}
        d.payload_is_new = True


def build_payload(delivery: WebhookDelivery) -> dict:
    build_payloads([delivery])
    return json.loads(event_json(delivery))  # as a receiver (and the log, once stored) sees it


def _dumps(payload) -> bytes:
    # jsonb reorders keys: sorted, a stored payload sent again (a retry, a redelivery) gives the same bytes.
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, cls=DjangoJSONEncoder).encode()


def event_json(delivery: WebhookDelivery) -> bytes:
    """The delivery's event as sent, encoded once per delivery and kept on the instance."""
    body = getattr(delivery, "event_json_bytes", None)
    if body is None:
        body = delivery.event_json_bytes = _dumps(delivery.payload)
    return body


def request_body(endpoint: WebhookEndpoint, deliveries: list[WebhookDelivery]) -> bytes:
    """One event object (batch size 1: the original format), or a JSON array of events in order."""
    if endpoint.batch_size <= 1:
        return event_json(deliveries[0])
    return b"[" + b",".join(event_json(d) for d in deliveries) + b"]"


def _send(endpoint: WebhookEndpoint, deliveries: list[WebhookDelivery]) -> bool:
    """One signed POST of these deliveries (one, or a batch); their rows are updated in one statement and
    the endpoint's failure count once. True if accepted."""
    build_payloads(deliveries)
    body = request_body(endpoint, deliveries)
    batch = endpoint.batch_size > 1
    headers = {SIGNATURE_HEADER: sign(endpoint.secret, int(time.time()), body),
               "X-Inbox-Event": "batch" if batch else deliveries[0].event,
               "X-Inbox-Delivery": deliveries[0].payload["id"], "User-Agent": "inbox-webhooks/2"}
    if batch:
        headers["X-Inbox-Batch-Size"] = str(len(deliveries))
    code, error = None, ""
    try:
        code = post_json_pooled(endpoint.url, body, timeout=settings.WEBHOOK_TIMEOUT_SECONDS, headers=headers)
    except HTTPFailure as exc:
        code, error = exc.status, str(exc)
    except RefusedURL as exc:
        error = f"refused: {exc}"
    except Exception as exc:  # noqa: BLE001 - connection refused, timeout, reset...: the receiver is unreachable
        error = repr(exc)
    ok = not error
    now = timezone.now()
    # One retry time for the whole request, from its oldest event's attempts: its events were sent together
    # and wait together, so a key's later events never pass its earlier ones.
    retry_at = None if ok else now + timedelta(seconds=backoff(
        deliveries[0].attempts + 1, base=settings.WEBHOOK_RETRY_BASE_SECONDS, cap=settings.WEBHOOK_RETRY_CAP_SECONDS,
        jitter=True))
    gave_up = []
    for delivery in deliveries:
        delivery.attempts += 1
        delivery.last_attempt_at, delivery.response_code, delivery.error = now, code, error[:500]
        if ok:
            delivery.status, delivery.next_attempt_at = WebhookDelivery.Status.SUCCEEDED, None
        elif delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
            delivery.status, delivery.next_attempt_at = WebhookDelivery.Status.FAILED, None
            gave_up.append(delivery.pk)
        else:
            delivery.next_attempt_at = retry_at
    _save_attempts(endpoint.tenant_id, deliveries, now, code, error[:500])
    _count(endpoint, ok)
    log = logger.info if ok else logger.warning
    log("webhook.delivered" if ok else "webhook.failed", extra={
        "endpoint_id": endpoint.pk, "delivery_id": deliveries[0].pk, "events": len(deliveries),
        "webhook_event": "batch" if batch else deliveries[0].event, "status_code": code,
        "attempt": deliveries[0].attempts, "gave_up": gave_up[:50], "error": error[:300]})
    return ok


def _save_attempts(tenant_id: int, deliveries: list[WebhookDelivery], at, code, error: str) -> None:
    """The request's outcome on its rows (one statement: ``api.statements.save_delivery_attempts``), with the
    text of each payload built at this attempt as it was sent (no second encoding)."""
    sent = {d.pk: event_json(d) for d in deliveries if getattr(d, "payload_is_new", False)}
    statements.save_delivery_attempts(tenant_id, deliveries, sent, at, code, error)
    for d in deliveries:
        d.payload_is_new = False


def _count(endpoint: WebhookEndpoint, ok: bool) -> None:
    endpoints = WebhookEndpoint.objects.for_tenant(endpoint.tenant_id).filter(pk=endpoint.pk)
    if ok:
        if endpoint.consecutive_failures:
            endpoints.update(consecutive_failures=0)
            endpoint.consecutive_failures = 0
        return
    endpoints.update(consecutive_failures=F("consecutive_failures") + 1)
    endpoint.consecutive_failures += 1
    if endpoint.consecutive_failures >= settings.WEBHOOK_DISABLE_AFTER_FAILURES:
        _disable_failing(endpoint)


def _disable_failing(endpoint: WebhookEndpoint) -> None:
    from inbox.alerts import do_raise_alert
    from inbox.models import Alert

    reason = f"{endpoint.consecutive_failures} failed attempts in a row"
    with transaction.atomic():
        do_set_endpoint_enabled(endpoint, False, reason=reason)
        do_raise_alert(f"webhook:{endpoint.pk}:disabled", kind=Alert.Kind.OTHER, tenant_id=endpoint.tenant_id,
                       message=f"The webhook {endpoint.url[:200]} was disabled after {reason}; "
                               "its pending events wait. Fix the receiver and enable it on the API page.")


def endpoints_with_due_deliveries() -> list[tuple[int, int]]:
    """(endpoint id, partition) of every enabled endpoint's partition with a due pending delivery."""
    # unscoped: every tenant's endpoints are this sweep's business; it only reads ids.
    from django.db.models import Q

    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=timezone.now())
    rows = (WebhookDelivery.objects.unscoped().filter(due, status=WebhookDelivery.Status.PENDING, endpoint__enabled=True)
            .annotate(partition=Mod("shard", max(1, settings.WEBHOOK_PARTITIONS)))
            .values_list("endpoint_id", "partition").distinct()[:10_000])
    return sorted(set(rows))
