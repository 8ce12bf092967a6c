"""The tenant's API page, mounted under /t/<slug:slug>/api/ (config/urls.py)."""

from django.urls import path

from api import pages

urlpatterns = [
    path("", pages.api_page, name="api_page"),
    path("tokens/", pages.token_create, name="api_token_create"),
    path("tokens/<int:token_id>/revoke/", pages.token_revoke, name="api_token_revoke"),
    path("webhooks/", pages.endpoint_create, name="api_endpoint_create"),
    path("webhooks/<int:endpoint_id>/", pages.endpoint_page, name="api_endpoint"),
    path("webhooks/<int:endpoint_id>/enabled/", pages.endpoint_enabled, name="api_endpoint_enabled"),
    path("webhooks/<int:endpoint_id>/delete/", pages.endpoint_delete, name="api_endpoint_delete"),
    path("webhooks/<int:endpoint_id>/deliveries/<int:delivery_id>/redeliver/", pages.delivery_redeliver,
         name="api_delivery_redeliver"),
]
