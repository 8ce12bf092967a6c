"""The API app's database-specific SQL (webhook deliveries): one function per statement, the PostgreSQL form
first and the SQLite fallback beside it, so ``api.webhooks`` never branches on the database. Both run in
their caller's transaction. The core's statements are ``sync.statements`` and ``inbox.statements``.
"""

from __future__ import annotations

import json

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection as db
from django.utils import timezone

from api.models import WebhookDelivery

_INSERT_COLUMNS = ("endpoint_id", "event", "ordering_key", "shard", "object_id", "data")


def insert_deliveries(tenant_id: int, rows: list[tuple]) -> None:
    """Pending deliveries ``(endpoint id, event, ordering key, shard, object id, data)`` in id order. This runs
    in the writer's transaction (the ingest's, for the live inbox): on PostgreSQL one INSERT of arrays
    (``unnest``, in order) instead of a model instance and a dozen parameters per row (bulk_create's cost,
    several times the statement's); the other columns get the model's defaults, written out here."""
    if db.vendor != "postgresql":
        WebhookDelivery.objects.bulk_create([WebhookDelivery(tenant_id=tenant_id, **dict(zip(_INSERT_COLUMNS, row,
                                                                                                strict=True)))
                                             for row in rows], batch_size=1000)
        return
    columns = list(zip(*rows, strict=True))
    data = [json.dumps(d, cls=DjangoJSONEncoder) if d else "{}" for d in columns[5]]
    table = WebhookDelivery._meta.db_table
    with db.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (tenant_id, endpoint_id, event, ordering_key, shard, object_id, data, status, "  # noqa: S608
            "attempts, error, created_at) "
            "SELECT %s, v.endpoint_id, v.event, v.ordering_key, v.shard, v.object_id, v.data, %s, 0, '', %s "
            "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::int[], %s::bigint[], %s::jsonb[]) "
            "WITH ORDINALITY AS v(endpoint_id, event, ordering_key, shard, object_id, data, n) ORDER BY v.n",
            [tenant_id, WebhookDelivery.Status.PENDING, timezone.now(), list(columns[0]), list(columns[1]),
             list(columns[2]), list(columns[3]), list(columns[4]), data])


def save_delivery_attempts(tenant_id: int, deliveries: list[WebhookDelivery], new_payloads: dict[int, bytes],
                           at, code, error: str) -> None:
    """One request's outcome on its rows (their attempts, status and next attempt as set on the instances; the
    request's time, response code and error), in one statement. ``new_payloads``: delivery id -> the event's
    JSON text as sent, for payloads built at this attempt; a payload already stored (a retry) is not sent to
    the database again. On PostgreSQL an ``UPDATE ... FROM jsonb_to_recordset`` (Django's bulk_update builds
    a CASE per field and row, which cost more than the request itself); elsewhere bulk_update."""
    if db.vendor != "postgresql":
        WebhookDelivery.objects.for_tenant(tenant_id).bulk_update(
            deliveries, ["payload", "attempts", "last_attempt_at", "response_code", "error", "status",
                         "next_attempt_at"])
        return
    # The rows' JSON written around each event's text (no second encoding of the payloads); null: COALESCE keeps
    # the stored one.
    rows = b"[" + b",".join(
        b'{"id":%d,"attempts":%d,"status":%s,"next_at":%s,"payload":%s}' % (
            d.pk, d.attempts, json.dumps(d.status).encode(),
            json.dumps(d.next_attempt_at, cls=DjangoJSONEncoder).encode(), new_payloads.get(d.pk, b"null"))
        for d in deliveries) + b"]"
    table = WebhookDelivery._meta.db_table
    with db.cursor() as cursor:
        # One parameter for all rows (jsonb_to_recordset): cheap to send whatever the batch size. The tenant in
        # the WHERE is the same fence as for_tenant() (the ids come from this tenant's rows anyway), written as a
        # filter on the rows the ids find (IS TRUE), never a way to find them: without fresh statistics on the
        # table the planner took "tenant_id = X" for a few rows and read every delivery of the tenant into a hash
        # join, a cost growing with the log (docs/measurements.md, "Webhook fan-out beside the live inbox").
        cursor.execute(
            f"UPDATE {table} AS d SET payload = COALESCE(v.payload, d.payload), attempts = v.attempts, "  # noqa: S608
            "status = v.status, next_attempt_at = v.next_at, last_attempt_at = %s, response_code = %s, error = %s "
            "FROM jsonb_to_recordset(%s::jsonb) AS v(id bigint, payload jsonb, attempts int, status text, "
            "next_at timestamptz) WHERE d.id = v.id AND (d.tenant_id = %s) IS TRUE",
            [at, code, error, rows.decode(), tenant_id])
