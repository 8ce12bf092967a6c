"""Tenant scoping fails closed (inbox.tenancy): a plain query of a scoped model names its tenant or says
it means every tenant; requests get their tenant's scope from the resolver, staff in the admin the
unscoped one. Every tenant-owned model is scoped: what customers said and who they are, and the numbers,
their history, alerts, the journal, sync runs and the sync's bookkeeping."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.apps import apps
from django.urls import reverse
from django.utils import timezone

from api.models import ApiToken, IdempotencyKey, WebhookDelivery, WebhookEndpoint
from connections.models import Connection, ConnectionEvent
from inbox.models import (
    Alert,
    CannedResponse,
    Contact,
    ContactIdentity,
    Conversation,
    ConversationLabel,
    GroupParticipant,
    Label,
    MediaFile,
    Message,
    MessageRevision,
    MessageSearchEntry,
    Note,
    NoteMention,
    Snooze,
    Tenant,
)
from inbox.tenancy import (
    SCOPED_MODELS,
    ScopedTenantManager,
    TenantOwned,
    UnscopedQueryError,
    current_tenant_id,
    tenant_scope,
    unscoped_scope,
)
from sync.models import JidMapping, PendingOperation, RawEvent, SearchBacklog, SyncRun
from tests.factories import ContactFactory, MessageFactory, UserFactory

SCOPED = [Message, Conversation, Contact, ContactIdentity, GroupParticipant, MessageRevision, MessageSearchEntry,
          Alert, Connection, ConnectionEvent, RawEvent, SyncRun, PendingOperation, JidMapping, SearchBacklog,
          Note, NoteMention, Label, ConversationLabel, Snooze, CannedResponse, MediaFile,
          ApiToken, IdempotencyKey, WebhookEndpoint, WebhookDelivery]


def one_row_of_each(message) -> Message:
    """A row of every tenant-owned model on the message's tenant and number (the factory made the
    message, its conversation, contact, identity, number and search entry)."""
    tenant, conn, now = message.tenant, message.connection, timezone.now()
    name = tenant.slug
    ConnectionEvent.objects.create(tenant=tenant, connection=conn, kind="disconnected", detail=f"{name} dropped")
    Alert.objects.create(tenant=tenant, connection=conn, kind="other", message=f"{name} alert", cause=f"test:{conn.pk}")
    group = ContactFactory(tenant=tenant, kind=Contact.Kind.GROUP, phone_number="")
    GroupParticipant.objects.create(tenant=tenant, group=group, member=message.conversation.contact)
    run = SyncRun.objects.create(tenant=tenant, connection=conn, kind="history", started_at=now)
    raw = RawEvent.objects.create(tenant=tenant, connection=conn, event_name="MessageEv", payload=b"x",
                                  digest=f"d{conn.pk}", received_at=now, sync_run=run)
    PendingOperation.objects.create(tenant=tenant, connection=conn, kind="edit", target_external_id="X",
                                    raw_event=raw, digest=f"p{conn.pk}")
    JidMapping.objects.create(tenant=tenant, lid_jid=f"{conn.pk}@lid", pn_jid=f"55{conn.pk}@s.whatsapp.net")
    SearchBacklog.objects.create(tenant=tenant, connection=conn, after_id=0, through_id=message.pk, messages=1)
    MessageRevision.objects.create(tenant=tenant, message=message, body="before", replaced_at=now)
    conversation, author = message.conversation, UserFactory()
    note = Note.objects.create(tenant=tenant, conversation=conversation, author=author, body=f"{name} note")
    NoteMention.objects.create(tenant=tenant, note=note, user=author)
    label = Label.objects.create(tenant=tenant, name=f"{name} label")
    ConversationLabel.objects.create(tenant=tenant, conversation=conversation, label=label)
    Snooze.objects.create(tenant=tenant, conversation=conversation, until=now)
    CannedResponse.objects.create(tenant=tenant, shortcut=f"{name[:30]}", body="Hello {{contact_name}}")
    MediaFile.objects.create(tenant=tenant, message=message, connection=conn, kind="image")
    token = ApiToken.objects.create(tenant=tenant, name=f"{name} token", prefix=f"t{conn.pk}", key_hash=f"h{conn.pk}")
    IdempotencyKey.objects.create(tenant=tenant, key=f"k{conn.pk}", request_hash="r", token=token, message=message)
    endpoint = WebhookEndpoint.objects.create(tenant=tenant, url="https://example.com/hook", secret="s")
    WebhookDelivery.objects.create(tenant=tenant, endpoint=endpoint, event="message.received",
                                   ordering_key=f"conversation:{conversation.pk}", object_id=message.pk)
    return message


@pytest.fixture
def two_tenants(db):
    ours, theirs = one_row_of_each(MessageFactory()), one_row_of_each(MessageFactory())
    assert ours.tenant_id != theirs.tenant_id
    return ours, theirs


def test_every_tenant_owned_model_fails_closed():
    owned = {m.__name__ for m in apps.get_models() if issubclass(m, TenantOwned)}
    assert sorted(m.__name__ for m in SCOPED) == sorted(SCOPED_MODELS) == sorted(owned)
    for model in SCOPED:
        assert type(model._default_manager) is ScopedTenantManager, model
    # A model with a tenant column that is not TenantOwned would escape scoping: the only ones are the
    # membership, which is how a user reaches a tenant at all (inbox.access.access_tenant reads it by user),
    # and the operators' record of backups (kept when its tenant is deleted; read by staff views, the
    # watchdog, and /health/detailed with the tenant ids an admin manages).
    with_tenant = {m.__name__ for m in apps.get_models()
                   if any(getattr(f, "related_model", None) is Tenant and f.name == "tenant" for f in m._meta.fields)}
    assert with_tenant - owned == {"Membership", "BackupRun"}


@pytest.mark.parametrize("model", SCOPED, ids=lambda m: m.__name__)
def test_an_unscoped_query_raises_a_clear_error(two_tenants, model):
    name = model.__name__
    for query in (lambda: list(model.objects.all()), lambda: model.objects.filter(pk=1).exists(),
                  lambda: model.objects.count(), lambda: model.objects.get(pk=1),
                  lambda: model.objects.filter(pk=0).update(tenant_id=1), lambda: model.objects.filter(pk=0).delete()):
        with pytest.raises(UnscopedQueryError, match=rf"{name}.objects queried outside a tenant scope.*"
                                                     rf"{name}.objects.for_tenant\(tenant\)"):
            query()


def test_scoped_queries_return_only_that_tenants_rows(two_tenants):
    ours, theirs = two_tenants
    with tenant_scope(ours.tenant):
        assert current_tenant_id() == ours.tenant_id
        assert list(Message.objects.values_list("pk", flat=True)) == [ours.pk]
        assert list(Conversation.objects.values_list("pk", flat=True)) == [ours.conversation_id]
        assert not Message.objects.filter(pk=theirs.pk).exists()
        with pytest.raises(Message.DoesNotExist):
            Message.objects.get(pk=theirs.pk)
        # An update or delete in the scope cannot reach another tenant's rows either.
        assert Message.objects.filter(pk=theirs.pk).update(body="overwritten") == 0
        with tenant_scope(theirs.tenant_id):  # scopes nest; the inner one wins until it ends
            assert list(Message.objects.values_list("pk", flat=True)) == [theirs.pk]
        assert current_tenant_id() == ours.tenant_id
    assert current_tenant_id() is None
    theirs.refresh_from_db()
    assert theirs.body != "overwritten"
    assert list(Message.objects.for_tenant(theirs.tenant).values_list("pk", flat=True)) == [theirs.pk]
    assert Message.objects.unscoped().count() == 2
    with unscoped_scope():
        assert Message.objects.count() == 2


@pytest.mark.parametrize("model", SCOPED, ids=lambda m: m.__name__)
def test_a_scope_sees_only_its_tenants_rows_of_every_model(two_tenants, model):
    ours, theirs = two_tenants
    every = model.objects.unscoped()
    assert set(every.values_list("tenant_id", flat=True)) == {ours.tenant_id, theirs.tenant_id}
    with tenant_scope(ours.tenant):
        seen = sorted(model.objects.values_list("pk", flat=True))
        assert seen and seen == sorted(every.filter(tenant_id=ours.tenant_id).values_list("pk", flat=True))
        assert not model.objects.filter(tenant_id=theirs.tenant_id).exists()
        assert model.objects.filter(tenant_id=theirs.tenant_id).update(tenant_id=ours.tenant_id) == 0
    assert sorted(model.objects.for_tenant(theirs.tenant_id).values_list("pk", flat=True)) == sorted(
        every.filter(tenant_id=theirs.tenant_id).values_list("pk", flat=True))


def test_platform_alerts_are_read_only_through_unscoped(two_tenants):
    """A platform alert (a dead worker, runner or beat) has no tenant: no tenant's scope shows it, and only
    code that says it means every tenant (the watchdog, the staff pages, the admin) reads it."""
    ours, _ = two_tenants
    platform = Alert.objects.create(kind=Alert.Kind.PLATFORM, message="no worker answers", cause="platform:workers")
    with pytest.raises(UnscopedQueryError):
        Alert.objects.filter(tenant__isnull=True).exists()
    with tenant_scope(ours.tenant):
        assert not Alert.objects.filter(pk=platform.pk).exists()
        with pytest.raises(UnscopedQueryError, match="written inside the scope"):
            Alert.objects.create(kind=Alert.Kind.PLATFORM, message="raised from a tenant page", cause="")
    assert list(Alert.objects.unscoped().filter(tenant__isnull=True)) == [platform]
    with unscoped_scope():
        assert Alert.objects.filter(tenant__isnull=True).get() == platform


def test_a_write_inside_another_tenants_scope_is_refused(two_tenants):
    ours, theirs = two_tenants
    with tenant_scope(ours.tenant_id), pytest.raises(UnscopedQueryError, match="written inside the scope"):
        Contact.objects.create(tenant_id=theirs.tenant_id, display_name="stranger")
    assert not Contact.objects.unscoped().filter(display_name="stranger").exists()


def test_related_managers_are_scoped_by_their_parent_row(two_tenants):
    ours, _ = two_tenants
    assert list(ours.conversation.messages.values_list("pk", flat=True)) == [ours.pk]


@pytest.mark.parametrize("bad", [None, "1", 1.5, True, object()])
def test_a_scope_needs_a_tenant(db, bad):
    with pytest.raises(ValueError, match="needs a"), tenant_scope(bad):
        pass
    with pytest.raises(ValueError, match="needs a"):
        Message.objects.for_tenant(bad)


def test_the_scope_follows_async_code_and_does_not_leak_between_tasks():
    """What a websocket consumer does: ORM work in a sync_to_async thread sees the scope of its own task."""

    def in_thread():
        where = Message.objects.all().query.where
        return current_tenant_id(), [(c.lhs.target.attname, c.rhs) for c in where.children]

    async def read(tenant_id):
        with tenant_scope(tenant_id):
            await asyncio.sleep(0.01)  # the other task runs meanwhile, in its own scope
            return await sync_to_async(in_thread)()

    async def both():
        return await asyncio.gather(read(7), read(8))

    assert asyncio.run(both()) == [(7, [("tenant_id", 7)]), (8, [("tenant_id", 8)])]
    assert current_tenant_id() is None


def test_tenant_pages_run_in_their_tenants_scope(client, acme_agent, acme, globex):
    ours = MessageFactory(conversation__connection__tenant=acme, body="acme's secret")
    MessageFactory(conversation__connection__tenant=globex, body="globex's secret")
    client.force_login(acme_agent)
    response = client.get(reverse("conversation", args=[acme.slug, ours.conversation_id]))
    assert response.status_code == 200
    assert b"acme&#x27;s secret" in response.content or b"acme's secret" in response.content
    assert b"globex" not in response.content.lower().replace(b"globex-admin", b"")
    assert current_tenant_id() is None  # the scope ended with the request


def test_the_numbers_pages_show_only_their_tenants_numbers_history_and_alerts(client, acme, acme_owner, globex):
    ours = one_row_of_each(MessageFactory(conversation__connection__tenant=acme,
                                          conversation__connection__name="Acme front desk"))
    theirs = one_row_of_each(MessageFactory(conversation__connection__tenant=globex,
                                            conversation__connection__name="Globex back office"))
    client.force_login(acme_owner)
    page = client.get(reverse("connections", args=[acme.slug])).content.decode()
    assert ours.connection.name in page and "acme dropped" in page and "acme alert" in page
    assert theirs.connection.name not in page and "globex dropped" not in page and "globex alert" not in page
    history = client.get(reverse("connection_history", args=[acme.slug, ours.connection_id])).content.decode()
    assert "acme dropped" in history and "globex dropped" not in history
    assert client.get(reverse("connection_history", args=[acme.slug, theirs.connection_id])).status_code == 404
    assert current_tenant_id() is None


def test_detailed_health_for_a_tenant_admin_counts_only_its_tenants_rows(client, settings, acme, acme_owner, globex):
    settings.HEALTH_WORKER_PING_SECONDS = 0.2
    ours = one_row_of_each(MessageFactory(conversation__connection__tenant=acme))
    one_row_of_each(MessageFactory(conversation__connection__tenant=globex))
    client.force_login(acme_owner)
    body = client.get(reverse("health_detailed")).json()
    assert [n["id"] for n in body["numbers"]] == [ours.connection_id]
    assert body["journal"]["pending"] == 1 and body["search_backlog"]["batches"] == 1  # of 2 each


def test_admin_pages_load_for_staff_and_list_every_tenant(admin_client, two_tenants):
    ours, theirs = two_tenants
    response = admin_client.get(reverse("admin:inbox_message_changelist"))
    assert response.status_code == 200
    assert ours.external_id.encode() in response.content and theirs.external_id.encode() in response.content
    response = admin_client.get(reverse("admin:inbox_conversation_change", args=[theirs.conversation_id]))
    assert response.status_code == 200


def test_admin_delete_of_a_conversation_purges_its_messages(admin_client, two_tenants):
    ours, theirs = two_tenants
    url = reverse("admin:inbox_conversation_delete", args=[ours.conversation_id])
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert not Conversation.objects.unscoped().filter(pk=ours.conversation_id).exists()
    assert list(Message.objects.unscoped().values_list("pk", flat=True)) == [theirs.pk]
