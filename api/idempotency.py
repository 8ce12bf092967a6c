"""``Idempotency-Key`` for API writes: the same key twice is one write and the same answer.

The key's row is inserted in the write's own transaction, before the write. A second request with the
key waits on the unique index while the first is in flight (PostgreSQL) and then reads the stored answer;
a first request that fails (refused, rolled back) leaves no row, so the client may retry with the same key.
The same key with another body is refused (422): it names a different write.
"""

import hashlib
import json

from django.db import IntegrityError, transaction
from rest_framework.renderers import JSONRenderer

from api.models import IdempotencyKey

MAX_KEY_LENGTH = 200


class KeyReused(ValueError):
    """The key was used for a request with another body or on another resource."""


def request_fingerprint(method: str, path: str, data) -> str:
    text = json.dumps([method, path, data], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def run_idempotent(tenant, token, key: str, fingerprint: str, write) -> tuple[int, dict]:
    """``write()`` (returning ``(status, body, message)``) at most once per (tenant, key); returns the
    (status, body) of the one time it ran. Call outside a transaction."""
    with transaction.atomic():
        try:
            with transaction.atomic():
                record = IdempotencyKey.objects.create(tenant=tenant, token=token, key=key, request_hash=fingerprint)
        except IntegrityError:
            record = IdempotencyKey.objects.for_tenant(tenant).get(key=key)
            if record.request_hash != fingerprint:
                raise KeyReused("This Idempotency-Key was used for a different request.") from None
            return record.response_status, record.response_body
        status, body, message = write()
        # Stored as the API renders it (DRF's encoder: ISO 8601 times), and answered from what was stored, so
        # the first answer and a replay are alike.
        record.response_status = status
        record.response_body = json.loads(JSONRenderer().render(body))
        record.message = message
        record.save(update_fields=["response_status", "response_body", "message"])
        return record.response_status, record.response_body
