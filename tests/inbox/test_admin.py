"""Every admin changelist of our apps: loads, and its query count does not grow with its rows."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from api.models import ApiToken, IdempotencyKey, WebhookDelivery, WebhookEndpoint
from connections.models import Connection, ConnectionEvent
from inbox.models import (
    Alert,
    AlertEmailOptOut,
    BackupRun,
    CannedResponse,
    Contact,
    ContactIdentity,
    Conversation,
    ConversationLabel,
    GroupParticipant,
    Label,
    MediaFile,
    Membership,
    Message,
    MessageRevision,
    MessageSearchEntry,
    Note,
    NoteMention,
    PurgeJob,
    Snooze,
    Tenant,
    UserProfile,
)
from sync.models import JidMapping, PendingOperation, RawEvent, SearchBacklog, SyncRun
from tests.factories import (
    ConnectionFactory,
    ContactFactory,
    ConversationFactory,
    MembershipFactory,
    MessageFactory,
    TenantFactory,
    UserFactory,
)


def _raw_event(n):
    conn = ConnectionFactory()
    return RawEvent.objects.create(
        tenant=conn.tenant, connection=conn, event_name="MessageEv", payload=b"x", digest=f"{n:064d}", received_at=timezone.now()
    )


BUILDERS = {
    Tenant: lambda n: TenantFactory(),
    Membership: lambda n: MembershipFactory(),
    Connection: lambda n: ConnectionFactory(),
    ConnectionEvent: lambda n: ConnectionEvent.objects.create(
        tenant=(c := ConnectionFactory()).tenant, connection=c, kind="connected", detail="ok"
    ),
    Contact: lambda n: ContactFactory(),
    ContactIdentity: lambda n: ContactFactory().identities.get(),
    GroupParticipant: lambda n: GroupParticipant.objects.create(
        tenant=(g := ContactFactory(kind="group")).tenant, group=g, member=ContactFactory(tenant=g.tenant)
    ),
    Conversation: lambda n: ConversationFactory(assignee=UserFactory()),
    Message: lambda n: MessageFactory(),
    MessageRevision: lambda n: MessageRevision.objects.create(
        tenant=(m := MessageFactory()).tenant, message=m, body="old", replaced_at=timezone.now()
    ),
    MessageSearchEntry: lambda n: MessageFactory().search_entry,
    MediaFile: lambda n: MediaFile.objects.create(
        tenant=(m := MessageFactory(type="image")).tenant, message=m, connection=m.connection, kind="image",
        state="failed", ref=b"x" * 100,
    ),
    Alert: lambda n: Alert.objects.create(tenant=(c := ConnectionFactory()).tenant, connection=c, kind="other", message="x"),
    AlertEmailOptOut: lambda n: AlertEmailOptOut.objects.create(user=UserFactory()),
    RawEvent: _raw_event,
    # The agent's tools (issue 15).
    UserProfile: lambda n: UserProfile.objects.create(user=UserFactory(), time_zone="America/Sao_Paulo"),
    Note: lambda n: Note.objects.create(tenant=(c := ConversationFactory()).tenant, conversation=c,
                                        author=UserFactory(), body="note"),
    NoteMention: lambda n: NoteMention.objects.create(
        tenant=(c := ConversationFactory()).tenant, user=UserFactory(),
        note=Note.objects.create(tenant=c.tenant, conversation=c, body="@x")),
    Label: lambda n: Label.objects.create(tenant=TenantFactory(), name=f"label {n}"),
    ConversationLabel: lambda n: ConversationLabel.objects.create(
        tenant=(c := ConversationFactory()).tenant, conversation=c, label=Label.objects.create(tenant=c.tenant, name="x")),
    Snooze: lambda n: Snooze.objects.create(tenant=(c := ConversationFactory()).tenant, conversation=c,
                                            until=timezone.now()),
    CannedResponse: lambda n: CannedResponse.objects.create(tenant=TenantFactory(), shortcut=f"s{n}", body="hi"),
    SyncRun: lambda n: SyncRun.objects.create(
        tenant=(c := ConnectionFactory()).tenant, connection=c, kind="history", started_at=timezone.now()
    ),
    PendingOperation: lambda n: PendingOperation.objects.create(
        tenant=(c := ConnectionFactory()).tenant, connection=c, kind="receipt", target_external_id=f"W{n}", digest=f"{n:064d}"
    ),
    SearchBacklog: lambda n: SearchBacklog.objects.create(
        tenant=(c := ConnectionFactory()).tenant, connection=c, after_id=n, through_id=n + 5000, messages=4000
    ),
    BackupRun: lambda n: BackupRun.objects.create(
        tenant=TenantFactory(), tenant_slug=f"t{n}", status="ok", started_at=timezone.now(), path=f"/b/{n}.zip"
    ),
    PurgeJob: lambda n: PurgeJob.objects.create(kind="connection", target_id=n, target_label=f"Number {n}",
                                                tenant_id_value=n, requested_by="admin", counts={"messages": n}),
    JidMapping: lambda n: JidMapping.objects.create(
        tenant=TenantFactory(), lid_jid=f"{n}@lid", pn_jid=f"55119{n:08d}@s.whatsapp.net"
    ),
    ApiToken: lambda n: ApiToken.objects.create(tenant=TenantFactory(), name="erp", prefix=f"inb_{n:08x}",
                                                key_hash=f"{n:064x}"),
    IdempotencyKey: lambda n: IdempotencyKey.objects.create(tenant=TenantFactory(), key=f"k{n}", request_hash="x"),
    WebhookEndpoint: lambda n: _endpoint(),
    WebhookDelivery: lambda n: WebhookDelivery.objects.create(
        tenant=(e := _endpoint()).tenant, endpoint=e, event="alert.raised", ordering_key="alert:1", object_id=1),
}


def _endpoint():
    return WebhookEndpoint.objects.create(tenant=TenantFactory(), url="https://example.com/h", secret="s", events=[])

OUR_APPS = ("inbox", "connections", "sync", "api")
OUR_ADMINS = [m for m in admin.site._registry if m._meta.app_label in OUR_APPS]


def test_every_model_of_our_apps_has_an_admin():
    ours = {m for app in OUR_APPS for m in apps.get_app_config(app).get_models()}
    missing = ours - set(admin.site._registry)
    assert not missing, f"models without an admin: {missing}"
    assert set(BUILDERS) >= ours, "add a builder for every model so its changelist is measured"


def _changelist_queries(client, model) -> int:
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(ctx.captured_queries)


@pytest.mark.django_db
@pytest.mark.parametrize("model", OUR_ADMINS, ids=lambda m: m._meta.label)
def test_changelist_query_count_does_not_grow_with_rows(admin_client, model):
    BUILDERS[model](0)
    one = _changelist_queries(admin_client, model)
    for n in range(1, 50):
        BUILDERS[model](n)
    assert model._base_manager.count() >= 50
    fifty = _changelist_queries(admin_client, model)
    assert fifty == one, f"{model._meta.label}: {one} queries with 1 row, {fifty} with 50"


@pytest.mark.django_db
def test_admin_reconnect_action_resets_a_failed_number_and_nudges(admin_client, nudges, django_capture_on_commit_callbacks):
    failed = ConnectionFactory(status="failed", desired_state="stopped", reconnect_attempts=30, jid="5511:1@s.whatsapp.net")
    paused = ConnectionFactory(status="disconnected", desired_state="stopped", jid="5511:2@s.whatsapp.net")
    url = reverse("admin:connections_connection_changelist")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            url, {"action": "reconnect_connections", "_selected_action": [failed.pk, paused.pk]}, follow=True
        )
    assert response.status_code == 200
    failed.refresh_from_db()
    paused.refresh_from_db()
    assert (failed.desired_state, failed.status, failed.reconnect_attempts) == ("connected", "disconnected", 0)
    assert (paused.desired_state, paused.status) == ("connected", "disconnected")
    heard = {(n["connection_id"], n["action"]) for n in nudges()}
    assert heard >= {(failed.pk, "resume"), (paused.pk, "resume")}


@pytest.mark.django_db
def test_admin_export_action_writes_the_selected_rows_as_csv(admin_client):
    conversations = [ConversationFactory() for _ in range(3)]
    url = reverse("admin:inbox_conversation_changelist")
    response = admin_client.post(url, {"action": "export_as_csv", "_selected_action": [c.pk for c in conversations[:2]]})
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    lines = response.content.decode().strip().splitlines()
    assert lines[0].startswith("id,chat_jid") and len(lines) == 3
    assert {line.split(",")[1] for line in lines[1:]} == {c.chat_jid for c in conversations[:2]}


def test_message_admin_refuses_moving_a_message_to_another_tenants_conversation(rf, admin_user):
    """Said as a form error; the database would refuse the save anyway (ADR-11)."""
    from django.forms.models import model_to_dict

    message = MessageFactory()
    elsewhere = ConversationFactory()  # another tenant's
    from inbox.tenancy import unscoped_scope

    request = rf.get("/")
    request.user = admin_user
    with unscoped_scope():  # what the admin's middleware gives staff
        form_class = admin.site._registry[Message].get_form(request, message)
        data = model_to_dict(message)
        for name in ("sent_at", "edited_at", "deleted_at", "next_attempt_at"):  # the admin's split widgets
            value = data.pop(name)
            data[f"{name}_0"], data[f"{name}_1"] = (value.strftime("%Y-%m-%d"), value.strftime("%H:%M:%S")) \
                if value else ("", "")
        form = form_class(dict(data, conversation=elsewhere.pk), instance=message)
        assert not form.is_valid()
        assert "another tenant or number" in str(form.non_field_errors())
        same = form_class(data, instance=message)
        assert same.is_valid(), same.errors


def test_admin_acknowledges_alerts_through_the_action(admin_client, admin_user, caplog):
    conn = ConnectionFactory()
    alert = Alert.objects.create(tenant=conn.tenant, connection=conn, kind="other", message="x")
    url = reverse("admin:inbox_alert_changelist")
    response = admin_client.post(url, {"action": "acknowledge_alerts", "_selected_action": [alert.pk]}, follow=True)
    assert b"1 alert acknowledged." in response.content
    alert.refresh_from_db()
    assert alert.acknowledged_at is not None and alert.acknowledged_by == admin_user
    assert any(r.msg == "inbox.alert_acknowledged" for r in caplog.records)  # the action's log line


@pytest.mark.django_db
def test_admin_retries_failed_and_expired_media_and_nudges_its_runner(admin_client, nudges,
                                                                      django_capture_on_commit_callbacks):
    failed = MediaFile.objects.create(tenant=(m := MessageFactory(type="image")).tenant, message=m,
                                      connection=m.connection, kind="image", state="expired", attempts=1, error="404")
    fetched = MediaFile.objects.create(tenant=(m2 := MessageFactory(type="image")).tenant, message=m2,
                                       connection=m2.connection, kind="image", state="fetched")
    url = reverse("admin:inbox_mediafile_changelist")
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(url, {"action": "retry_media", "_selected_action": [failed.pk, fetched.pk]})
    failed.refresh_from_db()
    fetched.refresh_from_db()
    assert (failed.state, failed.attempts, failed.error) == ("pending", 0, "")
    assert fetched.state == "fetched"
    assert (failed.connection_id, "fetch_media") in {(n["connection_id"], n["action"]) for n in nudges()}
