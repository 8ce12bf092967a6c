"""``field__any=ids`` (config/lookups.py) finds what ``field__in=ids`` finds; on PostgreSQL as one array."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from inbox.models import Membership, Tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenants(db):
    return [Tenant.objects.create(name=f"T{i}", slug=f"t{i}") for i in range(5)]


@pytest.mark.smoke
@pytest.mark.parametrize("pick", [[0, 2, 4], [1], [], [0, None, 3]])
def test_any_finds_what_in_finds(tenants, pick):
    ids = [tenants[i].pk if i is not None else None for i in pick]
    assert (sorted(Tenant.objects.filter(pk__any=ids).values_list("pk", flat=True))
            == sorted(Tenant.objects.filter(pk__in=ids).values_list("pk", flat=True)))


def test_a_relation_and_a_negation(tenants, acme_owner, acme):
    owner = Membership.objects.get(user=acme_owner)
    assert list(Membership.objects.filter(tenant_id__any=[acme.pk, tenants[0].pk])) == [owner]
    assert acme.pk not in Tenant.objects.exclude(pk__any=[acme.pk]).values_list("pk", flat=True)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's array form")
def test_on_postgresql_the_ids_are_one_parameter(tenants):
    ids = [t.pk for t in tenants]
    with CaptureQueriesContext(connection) as queries:
        assert len(list(Tenant.objects.filter(pk__any=ids))) == 5
        assert list(Tenant.objects.filter(slug__any=["t1"])) == [tenants[1]]  # not integers: IN (...)
    any_sql, in_sql = (q["sql"] for q in queries.captured_queries)
    assert "= ANY('{" in any_sql and "IN (" not in any_sql
    assert "IN ('t1')" in in_sql
