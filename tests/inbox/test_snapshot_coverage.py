"""The guard that keeps tenant snapshots complete: every tenant-owned model in the app registry (the core's
and the api app's) is exported or deliberately excluded with its reason, and every column of an exported
model is in its member or said to stay behind (inbox/snapshot/tables.py)."""

from django.apps import apps

from inbox.snapshot import tables
from inbox.tenancy import TenantOwned


def test_every_tenant_owned_model_and_column_is_exported_or_excluded_with_a_reason():
    assert tables.coverage_gaps() == []


def test_the_guard_names_a_model_nobody_decided_about():
    without_journal = {k: v for k, v in tables.excluded().items() if k != "sync.RawEvent"}
    assert tables.coverage_gaps(without_journal) == [
        "sync.RawEvent: neither exported nor excluded with a reason (inbox/snapshot/tables.py)"]
    blank_reason = {**tables.excluded(), "sync.RawEvent": "  "}
    assert "sync.RawEvent: neither exported nor excluded with a reason (inbox/snapshot/tables.py)" in \
        tables.coverage_gaps(blank_reason)


def test_the_guard_names_a_column_left_out(monkeypatch):
    from inbox.snapshot import export

    monkeypatch.setitem(export.MEMBER_FIELDS, "inbox.Contact", [f for f in export.CONTACT_FIELDS if f != "attributes"])
    assert tables.coverage_gaps() == ["inbox.Contact.attributes: a column in no member and not in LOCAL_COLUMNS"]


def test_the_api_apps_tables_are_found_through_the_registry_and_decided():
    api_models = {m._meta.label for m in apps.get_models() if issubclass(m, TenantOwned) and m._meta.app_label == "api"}
    assert api_models == {"api.ApiToken", "api.IdempotencyKey", "api.WebhookEndpoint", "api.WebhookDelivery"}
    exported = {t.model_label for t in tables.integration_tables()}
    assert exported == {"api.ApiToken", "api.WebhookEndpoint"}
    assert {"api.IdempotencyKey", "api.WebhookDelivery"} <= set(tables.excluded())
    endpoint = next(t for t in tables.integration_tables() if t.model_label == "api.WebhookEndpoint")
    assert endpoint.secrets == ("secret",) and "secret" not in endpoint.exported_columns()
