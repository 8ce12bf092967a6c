import pytest

from tests.factories import ConnectionFactory, MembershipFactory, TenantFactory, UserFactory


@pytest.fixture
def acme(db):
    return TenantFactory(name="Acme", slug="acme")


@pytest.fixture
def globex(db):
    return TenantFactory(name="Globex", slug="globex")


@pytest.fixture
def acme_owner(acme):
    return MembershipFactory(user=UserFactory(username="acme-admin"), tenant=acme, role="owner").user


@pytest.fixture
def acme_agent(acme):
    return MembershipFactory(user=UserFactory(username="acme-agent"), tenant=acme, role="agent").user


@pytest.fixture
def globex_owner(globex):
    return MembershipFactory(user=UserFactory(username="globex-admin"), tenant=globex, role="owner").user


@pytest.fixture
def acme_connection(acme):
    return ConnectionFactory(tenant=acme, name="Acme support")
