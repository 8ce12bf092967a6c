"""Production: DEBUG refused, a strong SECRET_KEY and ALLOWED_HOSTS required, HTTPS only.

The default settings module of manage.py, ASGI, WSGI and Celery (config/env.py): a process started
without DJANGO_SETTINGS_MODULE is a production one and fails loudly here if it is not configured as one.
`make run` and the tests name their own (local, test). `manage.py check --deploy` is clean with these
settings (tests/config/test_production_settings.py).
"""

import os

from django.core.exceptions import ImproperlyConfigured

from config.env import env

_LAPTOP = "On a laptop, use DJANGO_SETTINGS_MODULE=config.settings.local (what `make run` does)."

# DEBUG pages print settings, source and local variables: never in production, whatever the environment
# (or a .env copied from .env.example) says.
if env.bool("DEBUG", default=False):
    raise ImproperlyConfigured(f"DEBUG is on, but these are the production settings: unset DEBUG. {_LAPTOP}")
os.environ["DEBUG"] = "false"

from .base import *  # noqa: E402,F403
from .base import ALLOWED_HOSTS, BEHIND_TLS_PROXY, SECRET_KEY  # noqa: E402

if not SECRET_KEY:
    raise ImproperlyConfigured(f"SECRET_KEY must be set in production (see .env.example). {_LAPTOP}")
if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or SECRET_KEY.startswith(("dev-only", "django-insecure", "test-only")):
    raise ImproperlyConfigured(
        "SECRET_KEY is too weak for production: at least 50 random characters "
        '(python -c "import secrets; print(secrets.token_urlsafe(50))").'
    )
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must name the host(s) this site answers to (comma-separated).")

# --- HTTPS ----------------------------------------------------------------------------------------
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
# Load balancers probe /health/ over plain HTTP on the private network: answer, don't redirect.
SECURE_REDIRECT_EXEMPT = [r"^health/$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
# Preloading asks browsers to hard-code HTTPS for the whole domain, beyond the operator's control for
# months: a decision for the domain's owner, off unless asked for (then security.W021 has nothing to say).
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

# X-Forwarded-Proto says "https" only when a TLS-terminating proxy in front of daphne sets it (and strips
# a client's own): trusting it otherwise lets any client claim HTTPS. Off unless the deployment says so.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_TLS_PROXY else None

WHITENOISE_USE_FINDERS = False
