"""The whatsmeow session store's URL, derived from DATABASE_URL: TLS options kept, never downgraded."""

import psycopg
import pytest
from django.db import connection

from config.settings.base import BASE_DIR, whatsmeow_store_for
from connections.transport.neonize import libpq_url, read_store


@pytest.mark.smoke
@pytest.mark.parametrize("database_url, store_url", [
    # The project URL's query (TLS options) is kept as it is, sslmode included.
    ("postgres://app:pw@db.example.com:5432/inbox?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem",
     "postgres://app:pw@db.example.com:5432/inbox_whatsmeow?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem"),
    ("postgres://app:pw@127.0.0.1/inbox?sslmode=require", "postgres://app:pw@127.0.0.1/inbox_whatsmeow?sslmode=require"),
    ("postgres://app:pw@db.internal/inbox?sslmode=disable", "postgres://app:pw@db.internal/inbox_whatsmeow?sslmode=disable"),
    # No sslmode, another machine: TLS required, whatever the driver's default.
    ("postgres://app:pw@db.example.com/inbox", "postgres://app:pw@db.example.com/inbox_whatsmeow?sslmode=require"),
    ("postgresql://app@10.0.0.5:6432/inbox?connect_timeout=5",
     "postgresql://app@10.0.0.5:6432/inbox_whatsmeow?connect_timeout=5&sslmode=require"),
    # No sslmode, this machine (loopback, localhost, a Unix socket): a laptop's PostgreSQL has no TLS.
    ("postgres://postgres@127.0.0.1:5432/inbox", "postgres://postgres@127.0.0.1:5432/inbox_whatsmeow?sslmode=disable"),
    ("postgres://postgres@localhost/inbox", "postgres://postgres@localhost/inbox_whatsmeow?sslmode=disable"),
    ("postgres://postgres@[::1]/inbox", "postgres://postgres@[::1]/inbox_whatsmeow?sslmode=disable"),
    ("postgres://postgres@/inbox?host=/var/run/postgresql",
     "postgres://postgres@/inbox_whatsmeow?host=/var/run/postgresql&sslmode=disable"),
    # A "host" parameter names the server, whatever the URL's host part says.
    ("postgres://app@localhost/inbox?host=db.example.com", "postgres://app@localhost/inbox_whatsmeow?host=db.example.com&sslmode=require"),
])
def test_store_url_keeps_tls_options_and_disables_tls_only_on_this_machine(database_url, store_url):
    assert whatsmeow_store_for(database_url) == store_url


@pytest.mark.smoke
def test_sqlite_projects_get_a_sqlite_store_file():
    assert whatsmeow_store_for("sqlite:////srv/inbox/db.sqlite3") == str(BASE_DIR / "whatsmeow.sqlite3")


@pytest.mark.django_db
def test_the_derived_sslmode_is_what_a_postgres_driver_gets(settings):
    """The query reaches the server as options: this machine's PostgreSQL (no TLS here) accepts the local
    URL and refuses the TLS-requiring one a remote host would get."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    db = connection.settings_dict
    local = f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    store = whatsmeow_store_for(local)
    assert store.endswith("_whatsmeow?sslmode=disable")
    # Connect to the project's database with the store URL's query (the store database may not exist yet).
    query = store.split("?", 1)[1]
    with psycopg.connect(f"{local}?{query}") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with connection.cursor() as cursor:
        cursor.execute("SHOW ssl")
        server_tls = cursor.fetchone()[0] == "on"
    if not server_tls:
        with pytest.raises(psycopg.OperationalError, match="SSL"):
            psycopg.connect(f"{local}?sslmode=require", connect_timeout=5)


@pytest.mark.smoke
def test_our_own_store_reads_keep_the_tls_options_and_drop_what_libpq_does_not_know():
    url = "postgres://app:pw@db.example.com:5432/inbox_whatsmeow?sslmode=verify-full&sslrootcert=/ca.pem&binary_parameters=yes"
    assert libpq_url(url) == "postgres://app:pw@db.example.com:5432/inbox_whatsmeow?sslmode=verify-full&sslrootcert=%2Fca.pem"
    assert libpq_url(url, path="/postgres").startswith("postgres://app:pw@db.example.com:5432/postgres?sslmode=verify-full")


@pytest.mark.django_db
def test_a_store_read_goes_through_the_store_urls_tls_mode(settings):
    """read_store connects with the store URL's sslmode: this machine's server has no TLS, so a store
    that requires it is refused, not silently read in clear."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    with connection.cursor() as cursor:
        cursor.execute("SHOW ssl")
        if cursor.fetchone()[0] == "on":
            pytest.skip("the server here speaks TLS: nothing to refuse")
    db = connection.settings_dict
    base = f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    settings.WHATSMEOW_STORE = f"{base}?sslmode=disable&binary_parameters=yes"
    assert read_store("SELECT 41 + ?", [1]) == [(42,)]
    settings.WHATSMEOW_STORE = f"{base}?sslmode=require"
    with pytest.raises(psycopg.OperationalError, match="SSL"):
        read_store("SELECT 1")
