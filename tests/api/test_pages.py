"""The tenant's API page: owners and admins make tokens (shown once), revoke them, add webhooks (through
the SSRF guard), read the delivery log and redeliver. Agents get 403 and other tenants 404
(tests/inbox/test_tenant_isolation.py walks these routes too)."""

import pytest

from api.models import ApiToken, WebhookDelivery, WebhookEndpoint
from api.tokens import hash_token

pytestmark = pytest.mark.django_db


def test_an_owner_creates_a_token_shown_once_and_revokes_it(client, acme, acme_owner):
    client.force_login(acme_owner)
    assert client.get("/t/acme/api/").status_code == 200
    response = client.post("/t/acme/api/tokens/", {"name": "ERP", "scope": "read_write"})
    assert response.status_code == 200
    token = response.context["new_token"]
    assert token in response.content.decode()
    row = ApiToken.objects.for_tenant(acme).get()
    assert row.key_hash == hash_token(token) and row.scope == "read_write" and row.created_by == acme_owner
    page = client.get("/t/acme/api/").content.decode()
    assert token not in page and row.prefix in page  # never shown again
    assert client.get("/api/v1/numbers/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    assert client.post(f"/t/acme/api/tokens/{row.pk}/revoke/").status_code == 302
    assert client.get("/api/v1/numbers/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401


def test_webhooks_are_added_through_the_ssrf_guard_and_logged(client, acme, acme_owner, settings, monkeypatch):
    client.force_login(acme_owner)
    refused = client.post("/t/acme/api/webhooks/", {"url": "http://10.0.0.5/hook", "events": ["message.received"]})
    assert refused.status_code == 422 and "cannot receive webhooks" in refused.content.decode()
    settings.OUTBOUND_ALLOW_PRIVATE_ADDRESSES = True
    response = client.post("/t/acme/api/webhooks/", {"url": "http://127.0.0.1:9/hook",
                                                     "events": ["message.received", "alert.raised"]})
    endpoint = WebhookEndpoint.objects.for_tenant(acme).get()
    assert response.status_code == 302 and endpoint.events == ["alert.raised", "message.received"]
    delivery = WebhookDelivery.objects.create(tenant=acme, endpoint=endpoint, event="alert.raised",
                                              ordering_key="alert:1", object_id=1, status="failed", attempts=10,
                                              response_code=500, payload={"id": "evt_1"})
    page = client.get(f"/t/acme/api/webhooks/{endpoint.pk}/").content.decode()
    assert endpoint.secret in page and "500" in page
    monkeypatch.setattr("api.webhooks.enqueue_deliveries", lambda ids, countdown=None: None)
    client.post(f"/t/acme/api/webhooks/{endpoint.pk}/deliveries/{delivery.pk}/redeliver/")
    again = WebhookDelivery.objects.for_tenant(acme).exclude(pk=delivery.pk).get()
    assert again.status == "pending" and again.payload == {"id": "evt_1"} and again.redelivery_of == delivery
    client.post(f"/t/acme/api/webhooks/{endpoint.pk}/enabled/", {"enabled": "off"})
    endpoint.refresh_from_db()
    assert not endpoint.enabled
    client.post(f"/t/acme/api/webhooks/{endpoint.pk}/delete/")
    assert not WebhookEndpoint.objects.for_tenant(acme).exists()


def test_agents_may_not(client, acme_agent):
    client.force_login(acme_agent)
    assert client.get("/t/acme/api/").status_code == 403
    assert client.post("/t/acme/api/tokens/", {"name": "x", "scope": "read_write"}).status_code == 403
