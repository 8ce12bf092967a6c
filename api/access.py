"""Lookups by id for the tenant's API page: another tenant's token, endpoint or delivery is the same 404
as a missing one (the pattern of inbox.access)."""

from django.http import Http404

from api.models import ApiToken, WebhookDelivery, WebhookEndpoint
from inbox.selectors import parse_id


def _get(queryset, pk):
    found = queryset.filter(pk=parse_id(str(pk))).first() if parse_id(str(pk)) else None
    if found is None:
        raise Http404
    return found


def access_token(tenant, token_id) -> ApiToken:
    return _get(ApiToken.objects.for_tenant(tenant), token_id)


def access_endpoint(tenant, endpoint_id) -> WebhookEndpoint:
    return _get(WebhookEndpoint.objects.for_tenant(tenant), endpoint_id)


def access_delivery(endpoint, delivery_id) -> WebhookDelivery:
    return _get(WebhookDelivery.objects.for_tenant(endpoint.tenant_id).filter(endpoint_id=endpoint.pk), delivery_id)
