"""Who may read /health/detailed and what each sees (the 503s are in tests/faults/test_health_detailed.py)."""

import pytest
from django.urls import reverse

from tests.factories import ConnectionFactory, UserFactory

pytestmark = pytest.mark.django_db
URL = "/health/detailed"


@pytest.fixture(autouse=True)
def health_settings(settings):
    settings.HEALTH_TOKEN = "s3cret"
    settings.HEALTH_WORKER_PING_SECONDS = 0.2


def test_liveness_stays_plain_and_detailed_needs_credentials(client, acme_agent):
    assert reverse("health_detailed") == URL
    assert client.get(reverse("health")).json() == {"status": "ok"}
    anonymous = client.get(URL)
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"].startswith("Bearer")
    assert client.get(URL, HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get(URL, HTTP_AUTHORIZATION="Bearer s3cr\u00e9t").status_code == 401
    client.force_login(acme_agent)
    assert client.get(URL).status_code == 403  # an agent


def test_token_and_staff_see_every_tenant_and_a_tenant_admin_only_its_own(client, acme, globex, acme_owner):
    mine = ConnectionFactory(tenant=acme, name="Acme 1", status="connected", runner_id="r-a")
    theirs = ConnectionFactory(tenant=globex, name="Globex 1", status="connected", runner_id="r-b")
    by_token = client.get(URL, HTTP_AUTHORIZATION="Bearer s3cret")
    assert by_token.status_code in (200, 503)  # no worker answers in-process; the 503s are tested for real
    body = by_token.json()
    assert set(body["checks"]) == {"database", "redis", "workers", "beat", "runners"}
    assert body["checks"]["database"]["status"] == "ok" and body["checks"]["redis"]["status"] == "ok"
    assert {n["id"] for n in body["numbers"]} == {mine.pk, theirs.pk}
    assert {"pending", "failed", "quarantined", "oldest_pending_age_seconds"} <= set(body["journal"])
    assert {"batches", "messages", "oldest_age_seconds"} <= set(body["search_backlog"])

    client.force_login(UserFactory(username="ops", is_staff=True))
    assert {n["id"] for n in client.get(URL).json()["numbers"]} == {mine.pk, theirs.pk}

    client.force_login(acme_owner)
    own = client.get(URL).json()
    assert [n["id"] for n in own["numbers"]] == [mine.pk]
    assert own["scope"] == {"tenant_ids": [acme.pk]}
    assert "r-b" not in str(own["checks"]["runners"])
    assert isinstance(own["checks"]["workers"]["workers"], int)  # a count, not the platform's host names
