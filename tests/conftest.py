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
def _session_store_and_leak_check(django_db_setup, django_db_blocker):
    """The run's whatsmeow store beside the test database and its media root in the scratch directory,
    for the processes the tests start and for the test process, removed at the end with the scratch
    files; a store database or file that a test made and left is removed too, and fails the session's end
    (tests/leftovers.py)."""
    from pathlib import Path
    from urllib.parse import urlsplit

    from django.conf import settings
    from django.db import connection
    from django.test import override_settings

    from tests import leftovers

    configured = Path(urlsplit(settings.DATABASE_URL).path).name
    check = leftovers.LeakCheck(connection.settings_dict, configured)
    with override_settings(WHATSMEOW_STORE=leftovers.session_store(connection.settings_dict),
                           MEDIA_ROOT=str(leftovers.scratch_dir() / "media")):
        yield
    leaks = check.finish()
    assert not leaks, f"the tests left (now removed): {leaks}"
