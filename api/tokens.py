"""API tokens: made and revoked by a tenant's owners and admins (the API page), looked up by hash.

A token reads ``inb_<8 characters>_<43 characters>``: the first part is the visible ``prefix`` shown on
the page; the whole token's SHA-256 is what the database keeps. 256 random bits make a slow hash pointless
(nobody can guess one to test against a stolen table), and a unique index on the hash makes the lookup
one indexed query that compares no secret in Python.
"""

import hashlib
import logging
import secrets
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from api.models import ApiToken

logger = logging.getLogger(__name__)
TOKEN_START = "inb_"
LAST_USED_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often per token


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def do_create_token(tenant, *, name: str, scope: str, created_by=None) -> tuple[ApiToken, str]:
    """A new token; returns (row, the token in clear), the only time the clear token exists."""
    prefix = TOKEN_START + secrets.token_hex(4)
    token = f"{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiToken.objects.create(tenant=tenant, name=name, prefix=prefix, key_hash=hash_token(token), scope=scope,
                                  created_by=created_by)
    logger.info("api.token_created", extra={"tenant_id": tenant.pk, "token_id": row.pk, "prefix": prefix,
                                            "scope": scope, "user_id": getattr(created_by, "pk", None)})
    return row, token


def do_revoke_token(token: ApiToken, *, user=None) -> None:
    ApiToken.objects.for_tenant(token.tenant_id).filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now())
    logger.info("api.token_revoked", extra={"tenant_id": token.tenant_id, "token_id": token.pk,
                                            "user_id": getattr(user, "pk", None)})


def token_for_request(token: str) -> ApiToken | None:
    """The live (not revoked) token with this value, with its tenant; None for anything else."""
    if not token.startswith(TOKEN_START) or len(token) > 200:
        return None
    # unscoped: the token is what names the tenant; its hash is unique across every tenant.
    # An archived tenant's tokens stop working with it (inbox.deletion) and work again when it is restored.
    row = ApiToken.objects.unscoped().select_related("tenant").filter(
        key_hash=hash_token(token), revoked_at__isnull=True, tenant__archived_at__isnull=True).first()
    if row is not None:
        now = timezone.now()
        if row.last_used_at is None or now - row.last_used_at >= LAST_USED_EVERY:
            ApiToken.objects.for_tenant(row.tenant_id).filter(pk=row.pk).filter(
                Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_EVERY)).update(last_used_at=now)
    return row


def tenant_tokens(tenant) -> list[ApiToken]:
    return list(ApiToken.objects.for_tenant(tenant).select_related("created_by").order_by("revoked_at", "-created_at"))
