"""Outbound webhooks: what happened in a tenant, POSTed to its endpoints, signed, in order, retried.

Recording (``record_events``, registered at ready() as the core's recorder: ``inbox.integrations``) is called
by the actions that make the changes, inside their transaction:
one query for the tenant's enabled endpoints and one bulk insert of ``WebhookDelivery`` rows carrying
only ids and the event's own data, then, on commit, one Celery task per endpoint. The sync engine calls
it once per ingested batch, so a flood costs two statements per batch, never an HTTP request; a tenant
without endpoints costs one indexed query per batch. A change that rolls back leaves no delivery; a
committed one always has its rows (the outbox pattern, as for replies).

Delivery (``deliver_pending``, from ``api.tasks.deliver_webhooks_task``): one process at a time per
endpoint (a Redis lock), deliveries in id order, and per ``ordering_key`` (a conversation, a number, an
alert) strictly in order: while one is waiting for its retry, the later ones of its key wait too, other
keys go on. The JSON body is built at the first attempt from the latest state (the API's serializers)
and kept, so retries and redeliveries send the same bytes. A failed attempt is retried after
``config.backoff`` (base doubling to the cap, with jitter); after ``WEBHOOK_MAX_ATTEMPTS`` the delivery is
given up (``failed``; the log keeps it and a person may redeliver). ``WEBHOOK_DISABLE_AFTER_FAILURES``
failed attempts in a row disable the endpoint and raise an alert to the tenant.

Signature: ``X-Inbox-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``. A receiver
recomputes it over the raw body, compares in constant time and refuses a timestamp older than a few
minutes (``verify_signature`` is the reference; docs/api.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
import urllib.error
from datetime import timedelta
from uuid import uuid4

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from api.models import WebhookDelivery, WebhookEndpoint
from config.backoff import backoff
from config.redis import redis_client
from config.scope import database_scope
from inbox.integrations import EVENTS, Event
from inbox.outbound import RefusedURL, check_public_url, post_json

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Inbox-Signature"
SIGNATURE_TOLERANCE_SECONDS = 300
LOCK_MS = 120_000  # the lock is renewed before each request; a dead holder frees it within this
PAGE = 200


# --- recording (inside the writer's transaction) ----------------------------------------------------


def record_events(tenant_id: int, events: list[Event]) -> int:
    """Deliveries of these events for the tenant's enabled endpoints that subscribed to them; the
    delivery tasks start on commit. Returns how many rows were written. Never raises into the caller's
    business beyond a database error of its own transaction."""
    if not events or not tenant_id:
        return 0
    endpoints = list(WebhookEndpoint.objects.for_tenant(tenant_id).filter(enabled=True).values_list("id", "events"))
    if not endpoints:
        return 0
    rows = [WebhookDelivery(tenant_id=tenant_id, endpoint_id=endpoint_id, event=e.name, ordering_key=e.ordering_key,
                            object_id=e.object_id, data=e.data)
            for e in events for endpoint_id, subscribed in endpoints if e.name in subscribed]
    if not rows:
        return 0
    WebhookDelivery.objects.bulk_create(rows, batch_size=1000)
    endpoint_ids = sorted({r.endpoint_id for r in rows})
    transaction.on_commit(lambda: enqueue_deliveries(endpoint_ids), robust=True)
    return len(rows)


def enqueue_deliveries(endpoint_ids, countdown: float | None = None) -> None:
    from api.tasks import deliver_webhooks_task

    for endpoint_id in endpoint_ids:
        try:
            deliver_webhooks_task.apply_async((endpoint_id,), countdown=countdown)
        except Exception as exc:  # noqa: BLE001 - broker down: the rows wait; beat's safety net enqueues them
            logger.error("webhook.enqueue_failed", extra={"endpoint_id": endpoint_id, "error": repr(exc)[:300]})


# --- endpoints (the tenant's API page) ---------------------------------------------------------------


class EndpointRefused(ValueError):
    """A URL or an event list a webhook endpoint cannot have; the message is for the form."""


def check_create_endpoint(tenant, *, url: str, events: list[str], user=None) -> WebhookEndpoint:
    try:
        check_public_url(url)
    except RefusedURL as exc:
        raise EndpointRefused(f"This URL cannot receive webhooks: {exc}.") from None
    unknown = sorted(set(events) - set(EVENTS))
    if unknown or not events:
        raise EndpointRefused("Choose at least one event." if not events else f"Unknown events: {', '.join(unknown)}")
    endpoint = WebhookEndpoint.objects.create(tenant=tenant, url=url, events=sorted(set(events)), created_by=user,
                                              secret="whsec_" + secrets.token_urlsafe(32))
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
            transaction.on_commit(lambda: enqueue_deliveries([endpoint.pk]), robust=True)
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
            payload=delivery.payload, redelivery_of=delivery)
        transaction.on_commit(lambda: enqueue_deliveries([delivery.endpoint_id]), robust=True)
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


def _lock_key(endpoint_id: int) -> str:
    return f"webhook-lock:{database_scope()}:{endpoint_id}"


_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


def deliver_pending(endpoint_id: int, *, budget_seconds: float = 50.0) -> int:
    """Send the endpoint's due deliveries, in order; returns how many attempts were made. One caller per
    endpoint at a time: a second one returns at once, and the holder looks again after releasing the
    lock, so a delivery recorded meanwhile is never left behind. Work left when the budget runs out, and
    retries not yet due, are handed to a later task."""
    r = redis_client()
    key, token = _lock_key(endpoint_id), uuid4().hex
    deadline = time.monotonic() + budget_seconds
    attempts = 0
    while True:
        if not r.set(key, token, nx=True, px=LOCK_MS):
            return attempts
        try:
            attempts += _deliver_due(endpoint_id, deadline, lambda: r.pexpire(key, LOCK_MS))
        finally:
            r.eval(_RELEASE, 1, key, token)
        due, later = _pending_state(endpoint_id)
        if due and time.monotonic() < deadline:
            continue
        if due:
            enqueue_deliveries([endpoint_id])
        elif later is not None:
            enqueue_deliveries([endpoint_id], countdown=max(0.0, (later - timezone.now()).total_seconds()) + 0.05)
        return attempts


def _endpoint(endpoint_id: int) -> WebhookEndpoint | None:
    # unscoped: the task's endpoint id names one tenant's row; its tenant scopes everything after.
    return WebhookEndpoint.objects.unscoped().filter(pk=endpoint_id).first()


def _pending_state(endpoint_id: int):
    """(a pending delivery is due now, when the earliest one not due yet is due)."""
    endpoint = _endpoint(endpoint_id)
    if endpoint is None or not endpoint.enabled:
        return False, None
    pending = WebhookDelivery.objects.for_tenant(endpoint.tenant_id).filter(endpoint_id=endpoint_id,
                                                                            status=WebhookDelivery.Status.PENDING)
    now = timezone.now()
    blocked_until = {}
    for key, at in pending.order_by("id").values_list("ordering_key", "next_attempt_at")[:5000]:
        if key in blocked_until:
            continue
        if at is None or at <= now:
            return True, None
        blocked_until[key] = at
    return False, min(blocked_until.values(), default=None)


def _deliver_due(endpoint_id: int, deadline: float, renew) -> int:
    endpoint = _endpoint(endpoint_id)
    if endpoint is None or not endpoint.enabled:
        return 0
    blocked: set[str] = set()
    attempts, after = 0, 0
    while time.monotonic() < deadline:
        page = list(WebhookDelivery.objects.for_tenant(endpoint.tenant_id)
                    .filter(endpoint_id=endpoint_id, status=WebhookDelivery.Status.PENDING, pk__gt=after)
                    .order_by("id")[:PAGE])
        if not page:
            break
        build_payloads(page)  # a page's bodies in a few queries, not one per delivery (kept once sent)
        for delivery in page:
            after = delivery.pk
            if delivery.ordering_key in blocked:
                continue
            if delivery.next_attempt_at and delivery.next_attempt_at > timezone.now():
                blocked.add(delivery.ordering_key)
                continue
            if time.monotonic() >= deadline:
                return attempts
            renew()
            attempts += 1
            if not _attempt(endpoint, delivery):
                blocked.add(delivery.ordering_key)
                if not endpoint.enabled:
                    return attempts
    return attempts


def _objects(tenant_id: int, kind: str, ids) -> dict[int, dict]:
    """The API's representation of these objects of one kind, by id (one query)."""
    from api import serializers as s
    from connections.models import Connection
    from inbox.models import Alert, Conversation, Message

    if kind == "message":
        rows, serializer = Message.objects.for_tenant(tenant_id), s.MessageSerializer
    elif kind == "conversation":
        rows, serializer = Conversation.objects.for_tenant(tenant_id).select_related("contact", "assignee"), \
            s.ConversationSerializer
    elif kind == "number":
        rows, serializer = Connection.objects.for_tenant(tenant_id), s.NumberSerializer
    elif kind == "alert":
        rows, serializer = Alert.objects.for_tenant(tenant_id), s.AlertSerializer
    else:
        return {}
    return {row.pk: serializer(row).data for row in rows.filter(pk__in=list(ids))}


def build_payloads(deliveries: list[WebhookDelivery]) -> None:
    """Set ``payload`` on those without one: the object as the API shows it now (one query per kind of
    object for the whole list), plus what the event itself carried."""
    missing = [d for d in deliveries if d.payload is None]
    wanted: dict[tuple[int, str], set[int]] = {}
    for d in missing:
        wanted.setdefault((d.tenant_id, d.event.split(".", 1)[0]), set()).add(d.object_id)
    found = {key: _objects(key[0], key[1], ids) for key, ids in wanted.items()}
    for d in missing:
        kind = d.event.split(".", 1)[0]
        data = dict(d.data)
        data[kind] = found[(d.tenant_id, kind)].get(d.object_id) or {"id": d.object_id, "gone": True}
        payload = {"id": f"evt_{d.pk}", "event": d.event, "created_at": d.created_at, "data": data}
        d.payload = json.loads(json.dumps(payload, cls=DjangoJSONEncoder))


def build_payload(delivery: WebhookDelivery) -> dict:
    build_payloads([delivery])
    return delivery.payload


def _attempt(endpoint: WebhookEndpoint, delivery: WebhookDelivery) -> bool:
    """One POST of one delivery; the row and the endpoint's failure count are updated. True if accepted."""
    if delivery.payload is None:
        delivery.payload = build_payload(delivery)
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()  # jsonb reorders keys
    headers = {SIGNATURE_HEADER: sign(endpoint.secret, int(time.time()), body), "X-Inbox-Event": delivery.event,
               "X-Inbox-Delivery": delivery.payload["id"], "User-Agent": "inbox-webhooks/1"}
    code, error = None, ""
    try:
        code = post_json(endpoint.url, body, timeout=settings.WEBHOOK_TIMEOUT_SECONDS, headers=headers)
    except urllib.error.HTTPError as exc:
        code, error = exc.code, f"HTTP {exc.code}" + (f": {exc.msg}" if exc.msg else "")
    except RefusedURL as exc:
        error = f"refused: {exc}"
    except Exception as exc:  # noqa: BLE001 - URLError, TimeoutError, ConnectionError...: the receiver is unreachable
        error = repr(exc)
    ok = not error
    now = timezone.now()
    delivery.attempts += 1
    delivery.last_attempt_at, delivery.response_code, delivery.error = now, code, error[:500]
    if ok:
        delivery.status, delivery.next_attempt_at = WebhookDelivery.Status.SUCCEEDED, None
    elif delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
        delivery.status, delivery.next_attempt_at = WebhookDelivery.Status.FAILED, None
    else:
        delivery.next_attempt_at = now + timedelta(seconds=backoff(
            delivery.attempts, base=settings.WEBHOOK_RETRY_BASE_SECONDS, cap=settings.WEBHOOK_RETRY_CAP_SECONDS,
            jitter=True))
    delivery.save(update_fields=["payload", "attempts", "last_attempt_at", "response_code", "error", "status",
                                 "next_attempt_at"])
    _count(endpoint, ok)
    log = logger.info if ok else logger.warning
    log("webhook.delivered" if ok else "webhook.failed", extra={
        "endpoint_id": endpoint.pk, "delivery_id": delivery.pk, "event": delivery.event, "status_code": code,
        "attempt": delivery.attempts, "gave_up": delivery.status == WebhookDelivery.Status.FAILED, "error": error[:300]})
    return ok


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


def endpoints_with_due_deliveries() -> list[int]:
    # unscoped: every tenant's endpoints are this sweep's business; it only reads ids.
    from django.db.models import Q

    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=timezone.now())
    return sorted(set(WebhookDelivery.objects.unscoped().filter(due, status=WebhookDelivery.Status.PENDING,
                                                                endpoint__enabled=True)
                      .values_list("endpoint_id", flat=True).distinct()[:10_000]))
