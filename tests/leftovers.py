"""What a test run leaves behind, kept to what the suite owns and checked at the end of the session.

- The **session store**: one whatsmeow store for the run, beside the test database, for the runners the
  tests start (``procs.process_env`` names it) and for code run in the test process (``WHATSMEOW_STORE``
  is set to it): PostgreSQL ``<test database>_whatsmeow``, SQLite ``<test database file>.whatsmeow.sqlite3``
  under var/. Removed when the session ends.
- **Scratch files**: the media root (``MEDIA_ROOT``) and, of the processes the tests start, their logs
  and the runners' spool directories: under one directory, removed when the session ends.
- Anything else of the kind is a **leak**: a database on the test server named after the test database
  (``<test database>_...``: stores and copies that tests make for themselves must drop them), the store
  derived from the configured database's name, or a whatsmeow store file under the checkout or var/
  that was not there when the session started. The session's end removes them and fails, naming them.
"""

import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STORE_FILE_PATTERNS = ("*whatsmeow*.sqlite3*", "*wmstore*")
_scratch: Path | None = None


def scratch_dir() -> Path:
    """This session's directory for process logs and spools (removed at the session's end)."""
    global _scratch
    if _scratch is None:
        _scratch = Path(tempfile.mkdtemp(prefix="inbox-tests-"))
    return _scratch


def remove_scratch_dir() -> None:
    global _scratch
    if _scratch is not None:
        shutil.rmtree(_scratch, ignore_errors=True)
        _scratch = None


def is_postgresql(settings_dict) -> bool:
    return settings_dict["ENGINE"].endswith("postgresql")


def server_url(settings_dict, database: str = "postgres") -> str:
    db = settings_dict
    return f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{database}"


def session_store(settings_dict) -> str:
    """The run's whatsmeow store, named after the test database."""
    if is_postgresql(settings_dict):
        return server_url(settings_dict, f"{settings_dict['NAME']}_whatsmeow") + "?sslmode=disable"
    database = Path(settings_dict["NAME"])
    return str(database.with_name(f"{database.stem}.whatsmeow.sqlite3"))


def remove_session_store(settings_dict) -> None:
    store = session_store(settings_dict)
    if is_postgresql(settings_dict):
        drop_databases(settings_dict, [store.split("?")[0].rsplit("/", 1)[1]])
    else:
        for path in Path(store).parent.glob(f"{Path(store).name}*"):  # with its -wal / -shm / -journal
            path.unlink(missing_ok=True)


def drop_databases(settings_dict, names) -> None:
    import psycopg

    with psycopg.connect(server_url(settings_dict), autocommit=True) as admin:
        for name in names:  # FORCE: neonize never closes its store connections
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def suite_databases(settings_dict, configured_name: str) -> set[str]:
    """Databases on the test server that only a test run makes: ``<test database>_...``, and the store
    derived from the configured database (what a process started without the session store would make)."""
    if not is_postgresql(settings_dict):
        return set()
    import psycopg

    with psycopg.connect(server_url(settings_dict), autocommit=True) as admin:
        rows = admin.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s) OR datname = %s",
                             [f"{settings_dict['NAME']}_", f"{configured_name}_whatsmeow"]).fetchall()
    return {name for (name,) in rows}


def store_files() -> set[Path]:
    return {path for folder in (ROOT, ROOT / "var") for pattern in STORE_FILE_PATTERNS for path in folder.glob(pattern)}


class LeakCheck:
    """Taken when the session starts; ``finish()`` at its end removes what the run owns and what leaked,
    and returns a description of the leaks (empty: none)."""

    def __init__(self, settings_dict, configured_name: str):
        self.settings_dict, self.configured_name = settings_dict, configured_name
        self.databases_before = suite_databases(settings_dict, configured_name)
        self.files_before = store_files()

    def finish(self) -> str:
        remove_session_store(self.settings_dict)
        remove_scratch_dir()
        databases = sorted(suite_databases(self.settings_dict, self.configured_name) - self.databases_before)
        files = sorted(store_files() - self.files_before)
        if databases:
            drop_databases(self.settings_dict, databases)
        for path in files:
            path.unlink(missing_ok=True)
        leaks = [f"database {name}" for name in databases] + [f"file {path}" for path in files]
        return ", ".join(leaks)
