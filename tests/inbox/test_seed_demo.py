import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import call_command

from connections.models import Connection
from inbox.models import Membership, Tenant

pytestmark = [pytest.mark.django_db, pytest.mark.smoke]


def _counts():
    models = [m for app in ("inbox", "connections", "sync") for m in apps.get_app_config(app).get_models()]
    return {m._meta.label: m._base_manager.count() for m in models}


def test_seed_demo_twice_leaves_the_same_rows():
    call_command("seed_demo")
    first = _counts()
    call_command("seed_demo")
    assert _counts() == first
    assert first["inbox.Message"] > 0 and first["inbox.Conversation"] >= 3


def test_seed_demo_creates_the_documented_logins():
    call_command("seed_demo")
    User = get_user_model()
    assert set(Tenant.objects.values_list("slug", flat=True)) == {"acme", "globex"}
    for username in ["acme-admin", "acme-agent", "globex-admin", "admin"]:
        assert User.objects.get(username=username).check_password("demo-pass-123")
    assert User.objects.get(username="admin").is_superuser
    roles = dict(Membership.objects.values_list("user__username", "role"))
    assert roles == {"acme-admin": "owner", "acme-agent": "agent", "globex-admin": "owner"}
    for tenant in Tenant.objects.all():
        connection = Connection.objects.unscoped().get(tenant=tenant)
        assert connection.transport == "simulator" and connection.is_paired
