"""The owner's delete of the whole workspace (inbox.views.workspace_delete): archived with its slug typed
(every row kept, its numbers logged out, its pages gone for every member), or purged for good; owners only."""

import pytest
from django.urls import reverse

from connections.models import Connection
from inbox.deletion import do_run_purge
from inbox.models import Message, PurgeJob, Tenant
from tests.factories import ConversationFactory, MembershipFactory, MessageFactory, UserFactory

pytestmark = pytest.mark.django_db

URL = "/t/acme/delete/"


@pytest.fixture
def filled(acme, acme_connection):
    Connection.objects.for_tenant(acme).filter(pk=acme_connection.pk).update(desired_state="connected")
    conv = ConversationFactory(connection=acme_connection)
    for i in range(3):
        MessageFactory(conversation=conv, body=f"kept {i}")
    return acme


def test_only_the_owner_sees_and_may_use_it(client, filled, acme_owner, acme_agent, globex_owner):
    admin = MembershipFactory(user=UserFactory(username="acme-2nd"), tenant=filled, role="admin").user
    client.force_login(acme_owner)
    members = client.get("/t/acme/members/")
    assert URL.encode() in members.content
    page = client.get(URL)
    assert page.status_code == 200 and b"To delete it, type its slug" in page.content
    assert b"3 messages" in page.content
    for user, status in ((admin, 403), (acme_agent, 403), (globex_owner, 404)):
        client.force_login(user)
        assert client.get(URL).status_code == status
        assert client.post(URL, {"confirm": "acme"}).status_code == status
        if user == admin:
            assert URL.encode() not in client.get("/t/acme/members/").content
    filled.refresh_from_db()
    assert filled.archived_at is None


@pytest.mark.parametrize("typed", ["", "ACME", "acm", "globex"])
def test_without_the_slug_typed_exactly_nothing_is_deleted(client, filled, acme_owner, typed):
    client.force_login(acme_owner)
    for purge in ("", "on"):
        response = client.post(URL, {"confirm": typed, "purge": purge})
        assert response.status_code == 422
        assert "Nothing was deleted: to delete this workspace, type its slug exactly: acme" in response.content.decode()
    filled.refresh_from_db()
    assert filled.archived_at is None and not PurgeJob.objects.exists()


def test_deleting_archives_it_keeps_every_row_and_closes_it_for_its_members(client, filled, acme_owner, acme_agent,
                                                                             acme_connection, caplog):
    client.force_login(acme_owner)
    response = client.post(URL, {"confirm": "acme"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("tenant_picker") + "?pick=1"
    assert "The workspace Acme was deleted. Its data is kept" in response.content.decode()
    filled.refresh_from_db()
    acme_connection.refresh_from_db()
    assert filled.archived_at is not None
    assert acme_connection.archived_at is not None and acme_connection.desired_state == "logged_out"
    assert Message.objects.for_tenant(filled).count() == 3 and not PurgeJob.objects.exists()
    assert any(r.getMessage() == "tenant.archived" and r.user == "acme-admin" for r in caplog.records)
    for user in (acme_owner, acme_agent):
        client.force_login(user)
        assert client.get("/t/acme/").status_code == 404


def test_purging_queues_the_batched_purge_that_deletes_everything(client, filled, acme_owner,
                                                                  django_capture_on_commit_callbacks):
    client.force_login(acme_owner)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(URL, {"confirm": "acme", "purge": "on"}, follow=True)
    assert "The workspace Acme is being deleted with all its data." in response.content.decode()
    job = PurgeJob.objects.get()
    assert job.kind == "tenant" and job.target_label == "acme" and job.requested_by == "acme-admin"
    assert len(callbacks) >= 1  # purge_task queued on commit; run here by hand, as the worker would
    filled.refresh_from_db()
    assert filled.archived_at is not None
    while not do_run_purge(job.pk):
        pass
    assert not Tenant.objects.filter(slug="acme").exists()
    assert not Message.objects.unscoped().filter(tenant_id=filled.pk).exists()
