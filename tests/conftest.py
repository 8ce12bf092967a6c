import pytest

from tests.factories import ConnectionFactory, MembershipFactory, TenantFactory, UserFactory
from tests.s3 import s3_media, s3_server  # noqa: F401 (fixtures: media on a local S3 server)


@pytest.fixture(scope="session", autouse=True)
def _compiled_translations():
    """The catalogs under locale/ compiled (``make`` does it; this covers a bare pytest run), before any
    page is rendered."""
    from config.translations import compile_stale_catalogs

    compile_stale_catalogs()


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


@pytest.fixture(scope="session", autouse=True)
def _drop_session_stores(django_db_setup, django_db_blocker):
    """Every runner a test starts creates its whatsmeow store beside its database (run_connections ->
    ensure_store): the stores go with the test database instead of piling up on the shared server."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    drop_store_databases(connection.settings_dict, connection.settings_dict["NAME"])


def drop_store_databases(settings_dict, *database_names):
    """Drop the whatsmeow stores derived from these databases (``<name>_whatsmeow``), if any."""
    import psycopg

    db = settings_dict
    server = f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/postgres"
    with psycopg.connect(server, autocommit=True) as admin:
        for name in database_names:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}_whatsmeow" WITH (FORCE)')
