"""The tenant's API page (/t/<slug>/api/): tokens and webhook endpoints, for owners and admins.

Views parse input, resolve access (tenant_view, api.access) and call one action (api.tokens,
api.webhooks)."""

from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from api import tokens, webhooks
from api.access import access_delivery, access_endpoint, access_token
from api.forms import EnabledForm, EndpointForm, TokenForm
from api.models import WebhookEndpoint
from inbox.resolver import tenant_view


def _context(request, slug, **extra) -> dict:
    extra.setdefault("token_form", TokenForm())
    extra.setdefault("endpoint_form", EndpointForm())
    endpoints = list(WebhookEndpoint.objects.for_tenant(request.tenant).order_by("-created_at"))
    return {"slug": slug, "tenant": request.tenant, "membership": request.membership, "nav": "api",
            "tokens": tokens.tenant_tokens(request.tenant), "endpoints": endpoints, **extra}


@tenant_view(manager_only=True)
@require_GET
def api_page(request, slug):
    return render(request, "api/api.html", _context(request, slug))


@tenant_view(manager_only=True)
@require_POST
def token_create(request, slug):
    form = TokenForm(request.POST)
    if not form.is_valid():
        return render(request, "api/api.html", _context(request, slug, token_form=form), status=422)
    row, token = tokens.do_create_token(request.tenant, name=form.cleaned_data["name"],
                                        scope=form.cleaned_data["scope"], created_by=request.user)
    # Shown in this answer only: the database keeps its hash.
    return render(request, "api/api.html", _context(request, slug, new_token=token, new_token_row=row))


@tenant_view(manager_only=True)
@require_POST
def token_revoke(request, slug, token_id):
    tokens.do_revoke_token(access_token(request.tenant, token_id), user=request.user)
    return redirect("api_page", slug=slug)


@tenant_view(manager_only=True)
@require_POST
def endpoint_create(request, slug):
    form = EndpointForm(request.POST)
    if form.is_valid():
        try:
            endpoint = webhooks.check_create_endpoint(request.tenant, url=form.cleaned_data["url"],
                                                      events=form.cleaned_data["events"], user=request.user,
                                                      batch_size=form.cleaned_data["batch_size"] or 1)
            return redirect("api_endpoint", slug=slug, endpoint_id=endpoint.pk)
        except webhooks.EndpointRefused as refused:
            form.add_error("url", str(refused))
    return render(request, "api/api.html", _context(request, slug, endpoint_form=form), status=422)


@tenant_view(manager_only=True)
@require_GET
def endpoint_page(request, slug, endpoint_id):
    endpoint = access_endpoint(request.tenant, endpoint_id)
    return render(request, "api/endpoint.html", {
        "slug": slug, "tenant": request.tenant, "membership": request.membership, "nav": "api",
        "endpoint": endpoint, "deliveries": webhooks.endpoint_deliveries(endpoint), "events": webhooks.EVENTS})


@tenant_view(manager_only=True)
@require_POST
def endpoint_enabled(request, slug, endpoint_id):
    endpoint = access_endpoint(request.tenant, endpoint_id)
    form = EnabledForm(request.POST)
    if form.is_valid():
        webhooks.do_set_endpoint_enabled(endpoint, form.cleaned_data["enabled"] == "on",
                                         reason="disabled by a person", user=request.user)
    return redirect("api_endpoint", slug=slug, endpoint_id=endpoint.pk)


@tenant_view(manager_only=True)
@require_POST
def endpoint_delete(request, slug, endpoint_id):
    webhooks.do_delete_endpoint(access_endpoint(request.tenant, endpoint_id), user=request.user)
    return redirect("api_page", slug=slug)


@tenant_view(manager_only=True)
@require_POST
def delivery_redeliver(request, slug, endpoint_id, delivery_id):
    endpoint = access_endpoint(request.tenant, endpoint_id)
    webhooks.do_redeliver(access_delivery(endpoint, delivery_id), user=request.user)
    return redirect("api_endpoint", slug=slug, endpoint_id=endpoint.pk)
