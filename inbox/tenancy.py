"""Tenant scoping, in one place, failing closed for every tenant-owned model.

Every tenant-owned model carries a ``tenant`` foreign key (``TenantOwned``). Its ``objects`` manager has
two doors that say what they do:

- ``Model.objects.for_tenant(tenant)``: the rows of one tenant (a ``Tenant`` or its id);
- ``Model.objects.unscoped()``: every tenant's rows, a name meant to make a reviewer look twice. For
  code handed an id it trusts (a Celery task, the runner and its children, the sync engine holding a
  connection's journal lock, the watchdog, the health checks: the id already names one tenant's row, or
  the code works across tenants by design), and for staff in the Django admin.

The default manager of every ``TenantOwned`` model (``SCOPED_MODELS``: what customers said and who they
are, and the numbers, their history, alerts, the journal, sync runs and the sync's bookkeeping) is
``ScopedTenantManager``: a plain ``Model.objects.filter(...)`` (or ``.all()``, ``.get()``,
``.count()``...) outside a scope raises ``UnscopedQueryError`` instead of reading every tenant (PostHog's
pattern). Inside ``with tenant_scope(tenant):`` it returns only that tenant's rows; ``tenant_view`` (the
request resolver) sets that scope for every tenant page, and ``StaffAdminScopeMiddleware`` sets the
unscoped one for staff in the admin. Related managers (``conversation.messages``, ``connection.events``)
are scoped by their parent row and work anywhere; ``create``/``bulk_create``/``bulk_update`` write rows
that carry their own tenant (one in another tenant than the current scope is refused). Django's base
manager (forward relations, ``save``, ``refresh_from_db``, deletion cascades) is untouched.

Platform alerts (``Alert`` with no tenant: a dead runner, worker or beat) belong to no tenant: no tenant
scope shows them, and they are read only through ``Alert.objects.unscoped()`` (the watchdog, the staff
pages, the admin); raising one inside a tenant scope is refused like any other tenant's row.

Not covered, by design: ``Tenant`` itself and ``Membership`` (how a user reaches a tenant at all:
``inbox.access.access_tenant`` reads memberships by user, before any scope exists), users, and
``AlertEmailOptOut`` (a user's own setting, no tenant).

The scope is a ``contextvars.ContextVar``: it follows a request through sync and async code (asgiref
copies the context into ``sync_to_async`` threads) and never leaks between requests or tasks.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

from django.db import models, router
from django.utils.translation import gettext_lazy as _

_UNSCOPED = object()
_scope: ContextVar = ContextVar("inbox_tenant_scope", default=None)


class UnscopedQueryError(RuntimeError):
    """A query of a tenant-scoped model with no tenant named: a bug, never a reason to read everything."""


def _tenant_id(tenant) -> int:
    if tenant is None or isinstance(tenant, bool):
        raise ValueError("a tenant scope needs a tenant; use unscoped() only where every tenant is meant")
    tenant_id = tenant if isinstance(tenant, int) else getattr(tenant, "pk", None)
    if not isinstance(tenant_id, int):
        raise ValueError(f"a tenant scope needs a Tenant or its integer id, not {tenant!r}")
    return tenant_id


@contextmanager
def tenant_scope(tenant):
    """Plain queries of scoped models inside this block read and write only this tenant's rows."""
    token = _scope.set(_tenant_id(tenant))
    try:
        yield
    finally:
        _scope.reset(token)


@contextmanager
def unscoped_scope():
    """Plain queries of scoped models inside this block read every tenant (staff in the Django admin)."""
    token = _scope.set(_UNSCOPED)
    try:
        yield
    finally:
        _scope.reset(token)


def current_tenant_id() -> int | None:
    """The tenant of the current scope; None outside one or inside an unscoped one."""
    scope = _scope.get()
    return None if scope is _UNSCOPED else scope


class TenantQuerySet(models.QuerySet):
    def for_tenant(self, tenant):
        return self.filter(tenant_id=_tenant_id(tenant))

    def unscoped(self):
        return self.all()


class ScopedTenantManager(models.Manager.from_queryset(TenantQuerySet)):
    """Fails closed: a plain query outside ``tenant_scope``/``unscoped_scope`` raises UnscopedQueryError."""

    def _all_tenants(self):
        return TenantQuerySet(self.model, using=self._db, hints=self._hints)

    def get_queryset(self):
        queryset = super().get_queryset()
        if getattr(self, "instance", None) is not None:
            return queryset  # a related manager (conversation.messages): the rows of one parent row
        scope = _scope.get()
        if scope is _UNSCOPED:
            return queryset
        if scope is None:
            name = self.model.__name__
            raise UnscopedQueryError(
                f"{name}.objects queried outside a tenant scope: use {name}.objects.for_tenant(tenant), "
                f"`with tenant_scope(tenant):`, or {name}.objects.unscoped() where every tenant is meant")
        return queryset.filter(tenant_id=scope)

    def for_tenant(self, tenant):
        return self._all_tenants().for_tenant(tenant)

    def unscoped(self):
        return self._all_tenants()

    # Writes of rows that carry their tenant: allowed outside a scope, refused across one.
    def _check_scope(self, objs):
        scope = _scope.get()
        if scope is None or scope is _UNSCOPED:
            return
        for obj in objs:
            if obj.tenant_id != scope:
                raise UnscopedQueryError(
                    f"{self.model.__name__} of tenant {obj.tenant_id} written inside the scope of tenant {scope}")

    def create(self, **kwargs):
        obj = self.model(**kwargs)
        self._check_scope([obj])
        obj.save(force_insert=True, using=self._db or router.db_for_write(self.model, **self._hints))
        return obj

    def bulk_create(self, objs, *args, **kwargs):
        objs = list(objs)
        self._check_scope(objs)
        return self._all_tenants().bulk_create(objs, *args, **kwargs)

    def bulk_update(self, objs, *args, **kwargs):
        objs = list(objs)
        self._check_scope(objs)
        return self._all_tenants().bulk_update(objs, *args, **kwargs)


# The models whose default manager fails closed (item 11 of issue 10): every TenantOwned model, which
# tests/inbox/test_tenant_scoping.py checks against the registry.
SCOPED_MODELS = (
    "Message", "Conversation", "Contact", "ContactIdentity", "GroupParticipant", "MessageRevision", "MessageSearchEntry",
    "Alert", "Connection", "ConnectionEvent", "RawEvent", "SyncRun", "PendingOperation", "JidMapping", "SearchBacklog",
    "Note", "NoteMention", "Label", "ConversationLabel", "Snooze", "CannedResponse", "MediaFile",
    "ApiToken", "IdempotencyKey", "WebhookEndpoint", "WebhookDelivery",
)


class TenantOwned(models.Model):
    """Abstract base: a ``tenant`` foreign key on every tenant-owned row, and a default manager that fails
    closed outside a tenant scope (a new tenant-owned model is scoped from its first line)."""

    tenant = models.ForeignKey("inbox.Tenant", on_delete=models.CASCADE, related_name="+", verbose_name=_("tenant"))

    objects = ScopedTenantManager()

    class Meta:
        abstract = True
