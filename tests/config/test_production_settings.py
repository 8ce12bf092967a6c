"""Production settings, in processes of their own (settings are read once per process).

Each process gets the environment a deployment would have, built from scratch for the variables that
matter (the test process's own DEBUG, SECRET_KEY and ALLOWED_HOSTS are not inherited).
"""

import json
import subprocess
import sys

import pytest

from tests import procs

STRONG_KEY = "k7Qv2-" + "x9ZpL4mR8tW1yB6nC3dF5gH0jK2sA7eU" + "-q1w2e3r4t5y6u7i8o9p0"  # 60 chars, many distinct
PRODUCTION = {"DJANGO_SETTINGS_MODULE": "config.settings.production", "SECRET_KEY": STRONG_KEY,
              "ALLOWED_HOSTS": "inbox.example.com,testserver"}
CLEARED = ("DJANGO_SETTINGS_MODULE", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "BEHIND_TLS_PROXY", "SECURE_SSL_REDIRECT",
           "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD", "SESSION_COOKIE_SECURE",
           "CSRF_COOKIE_SECURE",
           "DJANGO_ALLOW_ASYNC_UNSAFE")  # set by tests/browser/conftest.py for Playwright; no deployment has it


def run(args, **env_vars) -> subprocess.CompletedProcess:
    env = {k: v for k, v in procs.process_env().items() if k not in CLEARED}
    env.update({k: v for k, v in env_vars.items() if v is not None})
    return subprocess.run([sys.executable, *args], cwd=procs.ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.django_db
def test_check_deploy_is_clean_with_production_settings():
    done = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **PRODUCTION)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout


LOAD_SETTINGS = ["-c", "from django.conf import settings; settings.DEBUG"]


@pytest.mark.parametrize("override, message", [
    ({"DEBUG": "true"}, "DEBUG is on, but these are the production settings"),
    ({"DEBUG": "1"}, "DEBUG is on, but these are the production settings"),
    ({"SECRET_KEY": None}, "SECRET_KEY must be set in production"),
    ({"SECRET_KEY": "dev-only-insecure-key-change-me"}, "SECRET_KEY is too weak for production"),
    ({"SECRET_KEY": "a" * 60}, "SECRET_KEY is too weak for production"),
    ({"ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS must name the host(s)"),
])
def test_production_refuses_to_start_misconfigured(override, message):
    done = run(LOAD_SETTINGS, **{**PRODUCTION, **override})
    assert done.returncode != 0 and message in done.stderr, done.stderr[-2000:]


@pytest.mark.parametrize("entry", [
    ["manage.py", "check"],
    ["-c", "import config.wsgi"],
    ["-c", "import config.asgi"],
    ["-c", "from config.celery import app; app.conf.broker_url"],
], ids=["manage.py", "wsgi", "asgi", "celery"])
def test_every_entry_point_defaults_to_production_and_fails_loudly_unconfigured(entry):
    if (procs.ROOT / ".env").exists():
        pytest.skip("a .env in the project names its own settings module")
    done = run(entry)  # no DJANGO_SETTINGS_MODULE, no SECRET_KEY: what a forgotten deployment variable looks like
    assert done.returncode != 0
    assert "SECRET_KEY must be set in production" in done.stderr and "config.settings.local" in done.stderr


PROBE = """
import json
import django
django.setup()
from django.conf import settings
from django.test import Client

c = Client()
http = c.get("/login/")
https = c.get("/login/", secure=True)
forwarded = c.get("/login/", HTTP_X_FORWARDED_PROTO="https")
health = c.get("/health/")
print(json.dumps({
    "proxy_header": settings.SECURE_PROXY_SSL_HEADER,
    "http": [http.status_code, http.get("Location", "")],
    "forwarded": forwarded.status_code,
    "health": health.status_code,
    "hsts": https.get("Strict-Transport-Security", ""),
    "csp": https.get("Content-Security-Policy", ""),
    "session_cookie_secure": settings.SESSION_COOKIE_SECURE,
}))
"""


@pytest.mark.django_db
def test_https_only_and_the_proxy_header_is_trusted_only_when_the_deployment_says_so():
    untrusted = run(["-c", PROBE], **PRODUCTION)
    assert untrusted.returncode == 0, untrusted.stderr[-3000:]
    facts = json.loads(untrusted.stdout.strip().splitlines()[-1])
    assert facts["proxy_header"] is None
    assert facts["http"] == [301, "https://testserver/login/"]
    assert facts["forwarded"] == 301  # a client's own X-Forwarded-Proto claims nothing
    assert facts["health"] in (200, 503)  # load balancers probe plain HTTP: no redirect
    assert facts["hsts"] == "max-age=31536000; includeSubDomains"
    assert "script-src 'self'" in facts["csp"] and "unsafe-inline" not in facts["csp"]
    assert facts["session_cookie_secure"] is True

    behind_proxy = run(["-c", PROBE], **PRODUCTION, BEHIND_TLS_PROXY="true", SECURE_HSTS_SECONDS="600",
                       SECURE_HSTS_PRELOAD="true")
    assert behind_proxy.returncode == 0, behind_proxy.stderr[-3000:]
    facts = json.loads(behind_proxy.stdout.strip().splitlines()[-1])
    assert facts["proxy_header"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert facts["forwarded"] == 200
    assert facts["hsts"] == "max-age=600; includeSubDomains; preload"


def test_local_settings_keep_the_laptop_working_without_any_variable():
    if (procs.ROOT / ".env").exists():
        pytest.skip("a .env in the project names its own settings module")
    done = run(["-c", "from django.conf import settings; print(settings.DEBUG, bool(settings.SECRET_KEY))"],
               DJANGO_SETTINGS_MODULE="config.settings.local")
    assert done.returncode == 0 and done.stdout.split() == ["True", "True"], done.stderr[-2000:]
