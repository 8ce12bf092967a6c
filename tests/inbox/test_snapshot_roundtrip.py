"""Every kind of tenant row, made through the real actions, through export -> purge -> import -> export: the
same rows table by table (normalized: this database's ids replaced by what they name), a second import
changing nothing, the webhook signing secrets only encrypted, and files of format 1 still imported."""

import gzip
import json
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection as django_connection
from django.utils import timezone

from api.models import ApiToken, WebhookEndpoint
from api.tokens import do_create_token, do_revoke_token, token_for_request
from api.webhooks import EVENTS, check_create_endpoint
from connections.models import Connection
from connections.transport import samples
from inbox.canned import check_create_canned
from inbox.contacts import check_edit_contact
from inbox.deletion import check_purge_tenant, do_run_purge
from inbox.labels import check_create_label, do_add_label
from inbox.models import (
    CannedResponse,
    Contact,
    Conversation,
    ConversationLabel,
    Membership,
    Note,
    NoteMention,
    Snooze,
    Tenant,
)
from inbox.notes import check_add_note, do_mark_mentions_read
from inbox.snapshot import tables
from inbox.snapshot.archive import ArchiveError
from inbox.snapshot.compare import canonical
from inbox.snapshot.export import MEMBER_FIELDS, export_tenant
from inbox.snapshot.load import import_tenant
from inbox.snooze import check_snooze
from tests.inbox.test_snapshot import build_tenant
from tests.inbox.test_snapshot_media import received

pytestmark = pytest.mark.django_db

FIXTURE_V1 = Path(__file__).resolve().parents[1] / "fixtures" / "snapshots" / "tenant-export-v1.zip"
PASSPHRASE = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _settings(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.OUTBOUND_ALLOW_PRIVATE_ADDRESSES = True  # the endpoint's URL is checked, not called


def build_everything(slug="acme"):
    """build_tenant's numbers, contacts, conversations, messages, revisions, alerts, plus media, the agent
    tools' rows, the contact panel's fields, the tenant's settings, API tokens and a webhook endpoint."""
    tenant = build_tenant(slug, messages=12)
    Tenant.objects.filter(pk=tenant.pk).update(time_zone="America/Sao_Paulo", media_retention_days=400)
    tenant.refresh_from_db()
    User = get_user_model()
    owner, agent = User.objects.get(username=f"{slug}-owner"), User.objects.get(username=f"{slug}-agent")
    first, second, group = Conversation.objects.for_tenant(tenant).order_by("pk")
    received(first, "image", samples.jpeg(), "IMG1")
    vip, billing = check_create_label(tenant, "VIP", "red"), check_create_label(tenant, "Billing", "blue")
    do_add_label(first, vip, acting_user=owner)
    do_add_label(first, billing, acting_user=agent)
    do_add_label(group, vip)
    check_add_note(first, owner, f"@{agent.username} please call her back")
    check_add_note(first, agent, "called, she will pay on Monday")
    check_add_note(group, owner, f"@{agent.username} and @{owner.username}: the group wants a quote")
    do_mark_mentions_read(tenant, agent, NoteMention.objects.for_tenant(tenant).order_by("pk").values_list("pk", flat=True)[:1])
    NoteMention.objects.for_tenant(tenant).filter(read_at__isnull=False).update(emailed_at=timezone.now())
    check_create_canned(tenant, "hello", "Hi {{contact_name}}, how can we help?", owner)
    check_create_canned(tenant, "bye", "Thanks, {{contact_name}}!", agent)
    check_snooze(second, timezone.now() + timedelta(days=2), agent)
    check_edit_contact(first.contact, name="Ana Souza", notes="pays late\nprefers voice", user=owner,
                       pairs=[("Pedido", "A-1042"), ("Plan", "gold")])
    _, token = do_create_token(tenant, name="CRM", scope=ApiToken.Scope.READ_WRITE, created_by=owner)
    old, _ = do_create_token(tenant, name="old", scope=ApiToken.Scope.READ, created_by=agent)
    do_revoke_token(old, user=owner)
    check_create_endpoint(tenant, url="http://127.0.0.1:9/hooks/inbox", events=sorted(EVENTS)[:3], user=owner,
                          batch_size=5)
    return tenant, token


def counts(tenant) -> dict[str, int]:
    from django.apps import apps

    labels = [*MEMBER_FIELDS, *(t.model_label for t in tables.all_tables())]
    found = {label: apps.get_model(label).objects.for_tenant(tenant).count() for label in labels}
    found["memberships"] = Membership.objects.filter(tenant=tenant).count()
    return found


def purge(tenant):
    job = check_purge_tenant(tenant, tenant.slug)
    while not do_run_purge(job.pk):
        pass
    job.refresh_from_db()
    assert job.status == "done", job.error
    assert not Tenant.objects.filter(pk=tenant.pk).exists()


def test_every_kind_of_row_survives_export_purge_import_export(tmp_path, django_capture_on_commit_callbacks):
    acme, token = build_everything("acme")
    build_everything("globex")  # another tenant: nothing of it in acme's file, untouched by acme's purge
    before = counts(acme)
    assert all(before.values()), {k: v for k, v in before.items() if not v}  # every exported table has rows
    first = tmp_path / "first.zip"
    manifest = export_tenant(acme, first, with_secrets=True, passphrase=PASSPHRASE)
    assert manifest["version"] == 2 and manifest["secrets"] is True
    secret = WebhookEndpoint.objects.for_tenant(acme).get().secret
    for name in manifest["files"]:  # the signing secret is only in the encrypted member
        with zipfile.ZipFile(first) as zf:
            data = zf.read(name)
        assert secret.encode() not in (gzip.decompress(data) if name.endswith(".gz") else data), name

    with django_capture_on_commit_callbacks(execute=False):  # the purge task is run by hand
        purge(acme)
    assert ApiToken.objects.unscoped().filter(tenant_id=acme.pk).count() == 0
    globex = Tenant.objects.get(slug="globex")
    globex_before = counts(globex)

    result = import_tenant(first, with_secrets=True, passphrase=PASSPHRASE)
    assert result["secrets"] == "imported"
    restored = Tenant.objects.get(slug="acme")
    assert counts(restored) == before
    assert {k: v["created"] for k, v in result["counts"].items() if k in ("labels", "notes", "note_mentions",
                                                                          "api_tokens", "webhook_endpoints")} == {
        "labels": 2, "notes": 3, "note_mentions": 2, "api_tokens": 2, "webhook_endpoints": 1}
    second = tmp_path / "second.zip"
    export_tenant(restored, second, with_secrets=True, passphrase=PASSPHRASE)
    assert canonical(second) == canonical(first)
    assert counts(globex) == globex_before

    # A second import of the same file changes nothing.
    again = import_tenant(first, with_secrets=True, passphrase=PASSPHRASE)
    assert {k: v["created"] for k, v in again["counts"].items() if v["created"]} == {}
    assert counts(restored) == before
    third = tmp_path / "third.zip"
    export_tenant(restored, third, with_secrets=True, passphrase=PASSPHRASE)
    assert canonical(third) == canonical(first)

    # What the rows mean, not only that they are equal: the token still authenticates, the secret signs,
    # the snooze, the mention notifications' state, the contact's locked name and attributes.
    assert token_for_request(token).tenant_id == restored.pk
    endpoint = WebhookEndpoint.objects.for_tenant(restored).get()
    assert endpoint.secret == secret and endpoint.enabled and endpoint.batch_size == 5
    ana = Contact.objects.for_tenant(restored).get(display_name="Ana Souza")
    assert ana.name_locked and ana.attributes == {"Pedido": "A-1042", "Plan": "gold"}
    assert Snooze.objects.for_tenant(restored).get().conversation.status == Conversation.Status.SNOOZED
    mentions = NoteMention.objects.for_tenant(restored).select_related("user")
    assert sorted((m.user.username, m.read_at is None, m.emailed_at is None) for m in mentions) == [
        ("acme-agent", False, False), ("acme-agent", True, True)]  # the author is never mentioned by their own note


def test_into_the_same_install_only_what_was_deleted_comes_back(tmp_path):
    acme, _ = build_everything("acme")
    path = tmp_path / "acme.zip"
    export_tenant(acme, path)
    before = counts(acme)
    ConversationLabel.objects.for_tenant(acme).filter(label__name="Billing").delete()
    Note.objects.for_tenant(acme).filter(body__startswith="called").delete()
    CannedResponse.objects.for_tenant(acme).filter(shortcut="bye").delete()
    result = import_tenant(path)
    created = {k: v["created"] for k, v in result["counts"].items() if v["created"]}
    assert created == {"conversation_labels": 1, "notes": 1, "canned_responses": 1}
    assert counts(acme) == before


def test_without_secrets_an_endpoint_comes_back_disabled_with_a_new_secret(tmp_path, django_capture_on_commit_callbacks):
    acme, _ = build_everything("acme")
    old_secret = WebhookEndpoint.objects.for_tenant(acme).get().secret
    path = tmp_path / "acme.zip"
    manifest = export_tenant(acme, path)  # no --with-secrets
    assert manifest["secrets"] is False and "secrets.bin" not in manifest["files"]
    with django_capture_on_commit_callbacks(execute=False):
        purge(acme)
    with pytest.raises(ArchiveError, match="made without --with-secrets"):
        import_tenant(path, with_secrets=True, passphrase=PASSPHRASE)
    assert not Tenant.objects.filter(slug="acme").exists()
    result = import_tenant(path)
    assert result["secrets"] == "none"
    endpoint = WebhookEndpoint.objects.for_tenant(Tenant.objects.get(slug="acme")).get()
    assert not endpoint.enabled and endpoint.secret.startswith("whsec_") and endpoint.secret != old_secret
    assert "imported without its signing secret" in endpoint.disabled_reason


def test_secrets_need_the_right_passphrase_and_nothing_is_written_otherwise(tmp_path, monkeypatch):
    acme, _ = build_everything("acme")
    path = tmp_path / "acme.zip"
    monkeypatch.setenv("EXPORT_PASSPHRASE", PASSPHRASE)
    call_command("export_tenant", "--tenant", "acme", "--out", str(path), "--with-secrets")
    Tenant.objects.filter(slug="acme").update(slug="acme-old")  # the import makes a new "acme"
    with pytest.raises(ArchiveError, match="the secrets do not open with this passphrase"):
        import_tenant(path, with_secrets=True, passphrase="not the passphrase at all")
    assert not Tenant.objects.filter(slug="acme").exists()


def test_an_api_token_hash_of_another_tenant_here_refuses_the_import(tmp_path, django_capture_on_commit_callbacks):
    acme, _ = build_everything("acme")
    path = tmp_path / "acme.zip"
    export_tenant(acme, path)
    crm = ApiToken.objects.for_tenant(acme).get(name="CRM")
    with django_capture_on_commit_callbacks(execute=False):
        purge(acme)
    globex = Tenant.objects.create(name="Globex", slug="globex")  # holds the same token hash here (a copied row)
    ApiToken.objects.create(tenant=globex, name="copied", prefix="inb_copied", key_hash=crm.key_hash)
    with pytest.raises(ArchiveError, match=r"api_tokens.jsonl.gz: row \d+ .* belongs to another tenant here"):
        import_tenant(path)
    assert not Tenant.objects.filter(slug="acme").exists()


def test_a_file_of_format_1_from_the_previous_release_still_imports(tmp_path):
    """tests/fixtures/snapshots/tenant-export-v1.zip was written by the export code of format 1 (before the
    agent tools' rows were exported): it imports, the new tables empty, the contacts' new fields defaulted."""
    with zipfile.ZipFile(FIXTURE_V1) as zf:
        assert json.loads(zf.read("manifest.json"))["version"] == 1
        assert "labels.jsonl.gz" not in zf.namelist()
    result = import_tenant(FIXTURE_V1)
    assert result["format_version"] == 1
    oldco = Tenant.objects.get(slug="oldco")
    found = counts(oldco)
    assert found["inbox.Message"] == 9 and found["inbox.Conversation"] == 3 and found["memberships"] == 2
    assert found["inbox.Label"] == found["inbox.Note"] == found["api.ApiToken"] == 0
    assert not Contact.objects.for_tenant(oldco).filter(name_locked=True).exists()
    assert set(Contact.objects.for_tenant(oldco).values_list("notes", flat=True)) == {""}
    again = import_tenant(FIXTURE_V1)
    assert {k: v["created"] for k, v in again["counts"].items() if v["created"]} == {}
    # Exported again in format 2: the same rows as the file of format 1, plus the fields format 1 lacked.
    path = tmp_path / "v2.zip"
    export_tenant(oldco, path)
    new_fields = {"contacts.jsonl.gz": {"name_locked", "notes", "attributes"}, "users.jsonl.gz": {"member_since"},
                  "tenant.jsonl.gz": {"time_zone", "media_retention_days", "archived_at"}}
    v1, v2 = canonical(FIXTURE_V1), canonical(path, drop=new_fields)
    assert {m: rows for m, rows in v2.items() if m in v1} == v1
    assert all(not v2[m] for m in v2 if m not in v1)


@pytest.mark.skipif(not django_connection.settings_dict["ENGINE"].endswith("postgresql"),
                    reason="planner statistics are PostgreSQL's; on SQLite the import never analyzes")
def test_into_a_table_without_statistics_the_import_analyzes_it_once_after_the_first_batch(tmp_path, monkeypatch):
    """A new install's message table has no statistics: the import analyzes it after its first batch (its own
    rows counted), so the planner's probes and search ranges use the indexes instead of scanning every message
    of the number per batch. Batches of 10 here, so the file holds several."""
    from django.db import connection

    from inbox.snapshot import load
    from tests.inbox.test_snapshot import build_tenant as small_tenant

    acme = small_tenant("acme", messages=40)
    path = tmp_path / "acme.zip"
    export_tenant(acme, path)
    Tenant.objects.filter(pk=acme.pk).update(slug="acme-old")
    Connection.objects.for_tenant(acme).exclude(jid=None).update(jid=None)  # the file's number is new here
    monkeypatch.setattr(load, "BATCH", 10)
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = 'inbox_message'::regclass")
        assert cursor.fetchone()[0] < 43  # never analyzed with these rows: the import must analyze
    analyzed = []
    real_execute = type(connection.cursor()).execute

    def watch(self, sql, params=None):
        if sql.startswith("ANALYZE"):
            analyzed.append(sql)
        return real_execute(self, sql, params)

    monkeypatch.setattr(type(connection.cursor()), "execute", watch)
    result = import_tenant(path)
    assert analyzed == ["ANALYZE inbox_message"]
    assert result["counts"]["messages"] == {"read": 43, "created": 43, "existing": 0}
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = 'inbox_message'::regclass")
        assert cursor.fetchone()[0] >= 10  # the first batch's rows (and the other tenant's) were counted
    again = import_tenant(path)  # the statistics now know the rows: no second ANALYZE
    assert analyzed == ["ANALYZE inbox_message"] and again["counts"]["messages"]["created"] == 0
