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


@pytest.fixture(autouse=True)
def _fresh_simulator_server(request):
    """The simulated WhatsApp server keeps its state in Redis, keyed by database and connection id; a
    fresh test database reuses the ids, so each test starts with an empty server."""
    if "django_db" not in request.keywords and "db" not in request.fixturenames:
        yield
        return
    from connections.transport.simulator import reset_server_state

    reset_server_state()
    yield
