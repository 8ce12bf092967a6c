"""Real chromium (Debian's) through Playwright against a real daphne serving the test database."""

import os
import socket
import time

import pytest

from tests import procs

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop in this thread

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = os.environ.get("UI_SCREENSHOTS_DIR", "")


def _wait_port(port, proc, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise AssertionError(f"daphne exited:\n{proc.output()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"daphne did not listen on {port}:\n{proc.output()}")


@pytest.fixture(scope="module")
def web(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        port = procs.free_port()
        proc = procs.daphne(port)
    _wait_port(port, proc)
    yield f"http://127.0.0.1:{port}"
    proc.stop()


@pytest.fixture
def worker():
    """A Celery worker beside the web process, as in production: a conversation-list update that comes
    within 250 ms of another is flushed by a Celery task (inbox/list_coalescer.py)."""
    proc = procs.celery_worker(concurrency=1)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        browser.close()


# Every page reports Content-Security-Policy violations (the event, and chromium's console line) to the
# test: a test that triggers one fails, so the pages keep passing the policy of config/settings/base.py.
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", function (e) {
  window.__reportCspViolation([e.violatedDirective, e.blockedURI, e.sourceFile + ":" + e.lineNumber,
                               (e.sample || "").slice(0, 80)].join(" | "));
});
"""


@pytest.fixture
def csp_violations():
    return []


@pytest.fixture
def new_page(transactional_db, chromium, csp_violations):
    """Pages in fresh browser contexts. It asks for the database first so that its teardown, closing the
    pages and their sockets, runs before the database is flushed: an open socket's access re-check
    querying the tables while the flush truncates them could deadlock it."""
    contexts = []

    def make(width=1280, height=800, locale="en-US"):
        # The browser's language (Accept-Language, navigator.language): English unless a test asks for
        # another, whatever the machine's own locale (pages follow it: docs/i18n.md).
        ctx = chromium.new_context(viewport={"width": width, "height": height}, locale=locale)
        contexts.append(ctx)
        ctx.expose_function("__reportCspViolation", lambda text: csp_violations.append(text))
        ctx.add_init_script(CSP_LISTENER)
        page = ctx.new_page()
        page.set_default_timeout(8000)
        page.dialogs = []
        page.dialog_handler = lambda d: (page.dialogs.append(d.message), d.dismiss())  # removable by a test
        page.on("dialog", page.dialog_handler)
        page.on("console", lambda m: csp_violations.append(f"console: {m.text}")
                if m.type == "error" and "Content Security Policy" in m.text else None)
        return page

    yield make
    for ctx in contexts:
        ctx.close()
    _wait_for_the_servers_statements()
    assert csp_violations == [], "Content-Security-Policy violations:\n" + "\n".join(csp_violations)


def _wait_for_the_servers_statements(timeout: float = 3.0) -> None:
    """Closing a page does not wait for what the server still does for it (the thread it last opened, its
    socket's goodbye): let the other sessions' statements on the test database end before the flush truncates
    the tables under them (a TRUNCATE against a read of several tables deadlocked once in CI)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')")
            if not cursor.fetchone()[0]:
                return
            time.sleep(0.05)


def login(page, base, username, password="demo-pass-123"):
    page.goto(f"{base}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def wait_online(page):
    # A selector, not wait_for_function: Playwright evals a predicate in the page, which the CSP refuses.
    from playwright.sync_api import expect

    expect(page.locator("body[data-live=online]")).to_have_count(1, timeout=8000)


def wait_until(page, predicate, message, timeout=8.0):
    """Poll a Python-side predicate (what the page's events filled in) while Playwright dispatches them:
    the positive marker a test waits for instead of a fixed wait."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        page.wait_for_timeout(25)


def screenshot(page, name):
    if SCREENSHOTS:
        os.makedirs(SCREENSHOTS, exist_ok=True)
        page.screenshot(path=os.path.join(SCREENSHOTS, f"{name}.png"))
