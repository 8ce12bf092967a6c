"""Headers of the pages: a tenant's pages are never stored by a cache; every page carries the CSP."""

import pytest
from django.urls import reverse

from tests.factories import ConversationFactory

pytestmark = pytest.mark.django_db


@pytest.mark.smoke
def test_tenant_pages_and_fragments_are_never_cached(client, acme_owner, acme_connection):
    conv = ConversationFactory(connection=acme_connection)
    client.force_login(acme_owner)
    pages = [reverse("inbox", args=["acme"]), reverse("conversation_list", args=["acme"]),
             reverse("conversation", args=["acme", conv.pk]), reverse("thread_messages", args=["acme", conv.pk]),
             reverse("connections", args=["acme"]), reverse("tenant_picker") + "?pick=1",
             reverse("conversation_list", args=["acme"]) + "?cursor=bad"]  # a 400 too
    for url in pages:
        response = client.get(url)
        assert response.status_code in (200, 400), url
        cache_control = {part.strip() for part in response["Cache-Control"].split(",")}
        assert {"no-store", "private", "no-cache"} <= cache_control, (url, cache_control)
    posted = client.post(reverse("set_status", args=["acme", conv.pk]), {"status": "pending"})
    assert "no-store" in posted["Cache-Control"]


def test_pages_carry_a_content_security_policy_without_inline_code(client, acme_owner):
    for url in [reverse("login")]:
        policy = client.get(url)["Content-Security-Policy"]
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
        assert directives["default-src"] == "'self'" and directives["script-src"] == "'self'"
        assert directives["style-src"] == "'self'" and directives["frame-ancestors"] == "'none'"
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    client.force_login(acme_owner)
    page = client.get(reverse("inbox", args=["acme"]))
    assert "Content-Security-Policy" in page
    html = page.content.decode()
    # htmx reads its config from a meta tag: no indicator <style> injected, nothing evaluated.
    assert '"includeIndicatorStyles": false' in html and '"allowEval": false' in html
    assert " onsubmit=" not in html and " onclick=" not in html and "<style" not in html
