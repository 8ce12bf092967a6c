"""Login throttling (django-axes): per username and address, a clear lockout page, lifted by an admin."""

import re

import httpx
import pytest
from django.test import Client
from django.urls import reverse

from tests import procs
from tests.factories import PASSWORD, UserFactory

LOCKED = "Too many failed logins for this username from your network: logging in is locked for 15 minutes."
WRONG = "Please enter a correct username and password."


def attempt(client, password, username="acme-agent", url="/login/", **extra):
    return client.post(url, {"username": username, "password": password}, **extra)


def text(response) -> str:
    return response.content.decode().replace("&#x27;", "'")


@pytest.mark.smoke
@pytest.mark.django_db
def test_the_fifth_failure_locks_and_the_sixth_attempt_is_refused_even_with_the_right_password(acme_agent):
    client = Client()
    for _ in range(4):
        response = attempt(client, "wrong")
        assert response.status_code == 200 and WRONG in text(response) and LOCKED not in text(response)
    fifth = attempt(client, "wrong")
    assert fifth.status_code == 429 and LOCKED in text(fifth)
    sixth = attempt(client, PASSWORD)  # the right password changes nothing while locked
    assert sixth.status_code == 429 and LOCKED in text(sixth)
    assert 'data-testid="lockout"' in text(sixth) and 'value="acme-agent"' in text(sixth)  # the form, filled in
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_the_lock_is_per_username_and_address(acme_agent, acme_owner):
    client = Client()
    for _ in range(5):
        attempt(client, "wrong")
    assert attempt(client, PASSWORD).status_code == 429
    # Another user from the same address, and the same user from another address, log in.
    assert attempt(Client(), PASSWORD, username="acme-admin").status_code == 302
    assert attempt(Client(REMOTE_ADDR="10.1.2.3"), PASSWORD).status_code == 302


@pytest.mark.django_db
def test_a_platform_admin_lifts_the_lock_and_the_right_password_works_again(acme_agent):
    client = Client()
    for _ in range(6):
        attempt(client, "wrong")
    assert attempt(client, PASSWORD).status_code == 429

    admin = Client()
    admin.force_login(UserFactory(username="platform", is_staff=True, is_superuser=True))
    changelist = reverse("admin:axes_accessattempt_changelist")
    listed = admin.get(changelist, {"locked_out": "yes"})
    assert listed.status_code == 200 and "acme-agent" in text(listed)
    from axes.models import AccessAttempt

    pks = list(AccessAttempt.objects.filter(username="acme-agent").values_list("pk", flat=True))
    lifted = admin.post(changelist, {"action": "delete_selected", "_selected_action": pks, "post": "yes"})
    assert lifted.status_code == 302 and not AccessAttempt.objects.filter(username="acme-agent").exists()

    ok = attempt(client, PASSWORD)
    assert ok.status_code == 302 and ok.url == reverse("tenant_picker")


@pytest.mark.django_db
def test_the_admin_login_is_throttled_with_the_same_message(acme_agent):
    staff = UserFactory(username="staffer", is_staff=True)
    client = Client()
    for _ in range(5):
        response = attempt(client, "wrong", username=staff.username, url="/admin/login/")
    assert response.status_code == 429 and LOCKED in text(response)
    assert 'class="errornote"' in text(response) and 'id="login-form"' in text(response)  # admin's own page
    assert attempt(client, PASSWORD, username=staff.username, url="/admin/login/").status_code == 429


@pytest.mark.django_db
def test_behind_a_declared_proxy_the_address_is_the_one_the_proxy_appended(acme_agent, settings):
    """A client that writes its own X-Forwarded-For cannot pick a fresh address per attempt."""
    settings.BEHIND_TLS_PROXY = True
    for n in range(5):
        attempt(Client(), "wrong", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}, 198.51.100.7")
    assert attempt(Client(), PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.99, 198.51.100.7").status_code == 429
    assert attempt(Client(), PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.8").status_code == 302
    settings.BEHIND_TLS_PROXY = False  # no proxy declared: the header is ignored, the socket's address counts
    assert attempt(Client(), PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.7").status_code == 302


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_lockout_under_daphne(acme_agent):
    """The ASGI path (axes' async middleware) shows the same page as the test client's WSGI path."""
    port = procs.free_port()
    web = procs.daphne(port)
    try:
        base = f"http://127.0.0.1:{port}"
        procs.wait_for(lambda: _up(base), 20, message="daphne")
        with httpx.Client(base_url=base) as http:
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', http.get("/login/").text).group(1)
            statuses = []
            for password in ["wrong"] * 5 + [PASSWORD]:
                response = http.post("/login/", data={"username": "acme-agent", "password": password,
                                                      "csrfmiddlewaretoken": token})
                statuses.append(response.status_code)
            assert statuses == [200, 200, 200, 200, 429, 429], web.output()[-3000:]
            assert LOCKED in response.text.replace("&#x27;", "'")
    finally:
        web.stop()


def _up(base):
    try:
        return httpx.get(f"{base}/login/", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
