"""One django-environ reader for every settings module; .env (if any) is read first.

Also the one place that names the default settings module of every entry point (manage.py, ASGI,
WSGI, Celery): production. A process started without DJANGO_SETTINGS_MODULE (in the environment or
in .env) is a production one, and production.py refuses to start without DEBUG off, a strong
SECRET_KEY and ALLOWED_HOSTS; so a forgotten variable fails loudly instead of serving DEBUG pages.
`make run` names config.settings.local; the tests name config.settings.test.
"""

import os
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_SETTINGS_MODULE = "config.settings.production"

env = environ.Env()
_dotenv = BASE_DIR / ".env"
if _dotenv.exists():
    env.read_env(str(_dotenv))  # never overrides a variable already in the environment


def use_default_settings_module() -> None:
    """Call before Django loads: DJANGO_SETTINGS_MODULE from the environment or .env, else production."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", DEFAULT_SETTINGS_MODULE)
