"""A URLconf for tests/config/test_error_reports.py: one view that fails with credentials in its frame."""

from django.conf import settings
from django.urls import path


def boom(request):
    redis_url = settings.REDIS_URL  # noqa: F841 - locals are what the DEBUG page shows
    conn_params = {"host": "db.example.com", "user": "app", "password": "frame-" + "secret-7"}  # noqa: F841 (split: the page shows source lines)
    note = f"see {settings.WHATSMEOW_STORE}"  # noqa: F841
    raise RuntimeError("boom")


urlpatterns = [path("boom/", boom)]
