"""Tenant isolation over EVERY tenant URL: found by walking the URLconf, so a new page is covered at once.

For each route under /t/<slug>/: anonymous users are sent to login; a globex user gets 404 on acme's
pages and acme's objects (also by swapping in acme's object ids under globex's own slug); an agent
gets 403 on manager-only pages.
"""

import re

import pytest
from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver

from connections.transport import samples
from inbox.canned import do_create_canned
from inbox.labels import do_create_label
from inbox.media import do_store_media
from inbox.models import Alert, MediaFile
from tests.factories import ConversationFactory, MembershipFactory, MessageFactory

pytestmark = pytest.mark.django_db

ID_PARAMS = {"conversation_id", "contact_id", "connection_id", "message_id", "alert_id", "membership_id", "label_id",
             "canned_id", "media_id", "token_id", "endpoint_id", "delivery_id"}
# Routes that name their id "pk": the path segment before it says which object it is.
PK_SEGMENTS = {"c": "conversation_id", "conversations": "conversation_id", "contacts": "contact_id",
               "connections": "connection_id", "messages": "message_id"}


def _tenant_routes():
    """(route string, pattern) for every URL whose route has <slug:slug> as the tenant prefix."""

    def walk(patterns, prefix=""):
        for p in patterns:
            route = prefix + str(p.pattern)
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, route)
            elif isinstance(p, URLPattern) and route.startswith("t/<slug:slug>/"):
                yield route, p

    return list(walk(get_resolver().url_patterns))


TENANT_ROUTES = _tenant_routes()


def _fill(route: str, slug: str, objects: dict) -> str:
    path = route.replace("<slug:slug>", slug)
    path = re.sub(r"(\w+)/<int:pk>", lambda m: f"{m[1]}/{objects[PK_SEGMENTS[m[1]]]}", path)
    for name, value in objects.items():
        for conv in ("int", "str", "slug"):
            path = path.replace(f"<{conv}:{name}>", str(value))
    assert "<" not in path, f"the isolation test does not know how to fill {route}: add the parameter to ID_PARAMS"
    return "/" + path


@pytest.fixture
def acme_objects(acme, acme_connection):
    conversation = ConversationFactory(connection=acme_connection)
    message = MessageFactory(conversation=conversation)
    photo = MessageFactory(conversation=conversation, type="image")
    media = MediaFile.objects.create(tenant=acme, message=photo, connection=acme_connection, kind="image")
    assert do_store_media(media, samples.jpeg())  # stored and thumbnailed: its members would get it
    return {
        "conversation_id": conversation.pk,
        "contact_id": conversation.contact_id,
        "connection_id": acme_connection.pk,
        "message_id": message.pk,
        "alert_id": Alert.objects.create(tenant=acme, connection=acme_connection, kind="other", message="x").pk,
        "membership_id": MembershipFactory(tenant=acme).pk,
        "label_id": do_create_label(acme, "VIP", "red").pk,
        "canned_id": do_create_canned(acme, "hello", "Hello!").pk,
        "media_id": media.pk,
        **_api_objects(acme, conversation),
    }


def _api_objects(acme, conversation) -> dict:
    """A token, a webhook endpoint and one of its deliveries (the tenant's API page)."""
    from api.models import WebhookDelivery, WebhookEndpoint
    from api.tokens import do_create_token

    endpoint = WebhookEndpoint.objects.create(tenant=acme, url="https://example.com/hook", secret="whsec_test",
                                              events=["conversation.status"])
    delivery = WebhookDelivery.objects.create(tenant=acme, endpoint=endpoint, event="conversation.status",
                                              ordering_key=f"conversation:{conversation.pk}", object_id=conversation.pk,
                                              status="succeeded")
    return {"token_id": do_create_token(acme, name="erp", scope="read")[0].pk, "endpoint_id": endpoint.pk,
            "delivery_id": delivery.pk}


def _request(client, path):
    """GET, or POST where the view only takes POST: the gate must answer before the method check."""
    response = client.get(path)
    return client.post(path) if response.status_code == 405 else response


def test_there_are_tenant_routes_to_check():
    assert len(TENANT_ROUTES) >= 1


@pytest.mark.parametrize("route", [r for r, _ in TENANT_ROUTES])
def test_anonymous_is_sent_to_login(client, route, acme_objects):
    response = _request(client, _fill(route, "acme", acme_objects))
    assert response.status_code == 302
    assert response["Location"].startswith(settings.LOGIN_URL if settings.LOGIN_URL.startswith("/") else "/login")


@pytest.mark.parametrize("route", [r for r, _ in TENANT_ROUTES])
def test_other_tenant_user_gets_404_on_acme_pages(client, route, acme_objects, globex_owner):
    client.force_login(globex_owner)
    assert _request(client, _fill(route, "acme", acme_objects)).status_code == 404


@pytest.mark.parametrize("route", [r for r, _ in TENANT_ROUTES if "<int:" in r])
def test_acme_object_ids_under_globex_slug_are_404(client, route, acme_objects, globex_owner):
    client.force_login(globex_owner)
    assert _request(client, _fill(route, "globex", acme_objects)).status_code == 404


@pytest.mark.parametrize("route", [r for r, p in TENANT_ROUTES if getattr(p.callback, "manager_only", False)])
def test_agent_gets_403_on_manager_pages(client, route, acme_objects, acme_agent):
    client.force_login(acme_agent)
    assert _request(client, _fill(route, "acme", acme_objects)).status_code == 403


def test_every_tenant_route_goes_through_the_resolver():
    unguarded = [r for r, p in TENANT_ROUTES if not getattr(p.callback, "tenant_view", False)]
    assert unguarded == [], "tenant routes must be wrapped by inbox.resolver.tenant_view"
