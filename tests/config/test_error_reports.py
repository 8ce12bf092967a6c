"""The DEBUG error page (and error reports) never show a credential, URL passwords included."""

import pytest
from django.test import Client

from config.errors import SafeSettingsReporterFilter, mask_url_credentials

SECRETS = {
    "DATABASE_URL": "postgres://app:db-secret-1@db.example.com:5432/inbox?sslmode=require",
    "REDIS_URL": "redis://:redis-secret-2@cache.example.com:6379/0",
    "CELERY_BROKER_URL": "redis://broker:broker-secret-3@cache.example.com:6379/1",
    "WHATSMEOW_STORE": "postgres://wm:store-secret-4@db.example.com/inbox_whatsmeow?sslmode=require",
}


@pytest.mark.smoke
@pytest.mark.parametrize("text, masked", [
    ("postgres://app:pw@db/x", "postgres://app:********@db/x"),
    ("redis://:pw@cache:6379/0", "redis://:********@cache:6379/0"),
    ("amqp://token@mq/", "amqp://********@mq/"),
    ("hosts ['redis://u:p@h:1', 'rediss://:q@h2']", "hosts ['redis://u:********@h:1', 'rediss://:********@h2']"),
    ("https://example.com/a@b", "https://example.com/a@b"),  # an @ in the path is no credential
    ("no url here", "no url here"),
])
def test_url_passwords_are_masked(text, masked):
    assert mask_url_credentials(text) == masked


def test_every_url_setting_is_hidden_or_masked(settings):
    for name, value in SECRETS.items():
        setattr(settings, name, value)
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer",
                                           "CONFIG": {"hosts": ["redis://:layer-secret-5@cache.example.com:6379/0"]}}}
    settings.PAYMENTS_ENDPOINT = "https://shop:any-setting-secret-6@api.example.com/v1"  # any setting with a URL
    safe = SafeSettingsReporterFilter().get_safe_settings()
    text = repr(safe)
    for secret in ("db-secret-1", "redis-secret-2", "broker-secret-3", "store-secret-4", "layer-secret-5",
                   "any-setting-secret-6"):
        assert secret not in text
    assert safe["DATABASE_URL"] == safe["WHATSMEOW_STORE"] == safe["CELERY_BROKER_URL"] == "********************"
    assert safe["CHANNEL_LAYERS"]["default"]["CONFIG"]["hosts"] == ["redis://:********@cache.example.com:6379/0"]
    assert safe["PAYMENTS_ENDPOINT"] == "https://shop:********@api.example.com/v1"


@pytest.mark.django_db
def test_the_debug_error_page_shows_no_credential(settings):
    settings.DEBUG = True
    settings.ROOT_URLCONF = "tests.config.urls_boom"
    for name, value in SECRETS.items():
        setattr(settings, name, value)
    client = Client(raise_request_exception=False)
    # Under WSGI the environment is in request.META (DATABASE_URL and friends with it).
    response = client.get("/boom/", **SECRETS, HTTP_AUTHORIZATION="Bearer header-secret-8",
                          HTTP_X_UPSTREAM="see postgres://u:meta-secret-9@db/x")
    assert response.status_code == 500
    page = response.content.decode()
    assert "RuntimeError" in page and "boom" in page and "conn_params" in page  # it is the technical page
    for secret in ["db-secret-1", "redis-secret-2", "broker-secret-3", "store-secret-4", "frame-secret-7",
                   "header-secret-8", "meta-secret-9"]:
        assert secret not in page, secret
    assert "see postgres://wm:********@db.example.com/inbox_whatsmeow" in page  # a local, masked, still useful
