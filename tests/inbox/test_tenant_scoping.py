"""Tenant scoping fails closed (inbox.tenancy): a plain query of a scoped model names its tenant or says
it means every tenant; requests get their tenant's scope from the resolver, staff in the admin the
unscoped one."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from connections.models import Connection
from inbox.models import Contact, ContactIdentity, Conversation, MediaFile, Message, MessageRevision, MessageSearchEntry
from inbox.tenancy import (
    SCOPED_MODELS,
    UnscopedQueryError,
    current_tenant_id,
    tenant_scope,
    unscoped_scope,
)
from tests.factories import ConnectionFactory, MessageFactory

SCOPED = [Message, Conversation, Contact, ContactIdentity, MessageRevision, MessageSearchEntry, MediaFile]


@pytest.fixture
def two_tenants(db):
    ours, theirs = MessageFactory(), MessageFactory()
    assert ours.tenant_id != theirs.tenant_id
    return ours, theirs


def test_the_scoped_models_are_the_ones_documented():
    assert sorted(m.__name__ for m in SCOPED) == sorted(SCOPED_MODELS)


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


def test_models_not_yet_scoped_keep_working_unscoped(db):
    ConnectionFactory()
    assert Connection.objects.count() == 1  # permissive manager (the docstring of inbox.tenancy says which)


def test_tenant_pages_run_in_their_tenants_scope(client, acme_agent, acme, globex):
    ours = MessageFactory(conversation__connection__tenant=acme, body="acme's secret")
    MessageFactory(conversation__connection__tenant=globex, body="globex's secret")
    client.force_login(acme_agent)
    response = client.get(reverse("conversation", args=[acme.slug, ours.conversation_id]))
    assert response.status_code == 200
    assert b"acme&#x27;s secret" in response.content or b"acme's secret" in response.content
    assert b"globex" not in response.content.lower().replace(b"globex-admin", b"")
    assert current_tenant_id() is None  # the scope ended with the request


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
