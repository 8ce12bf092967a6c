"""The test suite: PostgreSQL by default (DATABASE_URL may point at SQLite for the smoke run)."""

import os
from pathlib import Path
from urllib.parse import urlsplit

os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "test-only-secret-key")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/inbox")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/9")
# Two suites on one machine (two checkouts, or a helper's worktree beside CI) share Redis: the Celery
# queue and the channel-layer prefix are named after the database, so one suite's workers never take
# the other's tasks or pushes. The default database keeps the historical names.
_db_name = Path(urlsplit(os.environ["DATABASE_URL"]).path).name or "inbox"
_suffix = "" if _db_name == "inbox" else f"-{_db_name}"
os.environ.setdefault("CELERY_QUEUE", f"test-inbox{_suffix}")
os.environ.setdefault("CHANNEL_LAYER_PREFIX", f"test-asgi{_suffix}")
os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
# Media files of the test runs: never the dev server's. The suite points it at its session's scratch
# directory (tests/leftovers.py) and hands that to the processes it starts; this covers a bare import.
os.environ.setdefault("MEDIA_ROOT", str(Path(__file__).resolve().parents[2] / "var" / "test-media"))

from .base import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": STORAGES["default"],  # noqa: F405 (MEDIA_STORAGE, filesystem unless a test's process sets s3)
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A file, not ":memory:", so child processes started by the tests see the same database.
    # Named after DATABASE_URL's file, so two smoke runs with different files never share one.
    _db_file = Path(DATABASES["default"]["NAME"])  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(_db_file.with_name(f"test-{_db_file.name}"))}  # noqa: F405
