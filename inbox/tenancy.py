"""Tenant scoping, in one place.

Every tenant-owned model uses ``TenantManager``: ``Model.objects.for_tenant(tenant)`` is the way in.
Code that really must see every tenant (Django admin, the runner, Celery tasks working on an id they
were handed) says so with ``Model.objects.unscoped()``, a name meant to make a reviewer look twice.
A plain ``Model.objects.filter(...)`` still works (Django itself needs it: admin, related managers),
but application code goes through ``for_tenant`` or the ``access_*`` helpers in ``inbox.access``.
"""

from django.db import models


class TenantQuerySet(models.QuerySet):
    def for_tenant(self, tenant):
        if tenant is None:
            raise ValueError("for_tenant() needs a tenant; use unscoped() only where every tenant is meant")
        tenant_id = tenant if isinstance(tenant, int) else tenant.pk
        return self.filter(tenant_id=tenant_id)

    def unscoped(self):
        return self.all()


class TenantManager(models.Manager.from_queryset(TenantQuerySet)):
    pass


class TenantOwned(models.Model):
    """Abstract base: a ``tenant`` foreign key on every tenant-owned row."""

    tenant = models.ForeignKey("inbox.Tenant", on_delete=models.CASCADE, related_name="+")

    objects = TenantManager()

    class Meta:
        abstract = True
