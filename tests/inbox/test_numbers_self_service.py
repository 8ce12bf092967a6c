"""Numbers and members, self-service for owners and admins (agents 403): add within the limit, rename,
filters (with a replay), delete keeping history or purging it after a typed confirmation; members
added, role changes and removal under the owner rules; every form error shown back."""

import pytest
from django.urls import reverse

from config.celery import app
from connections.models import Connection, ConnectionEvent
from inbox.models import Conversation, Membership
from sync.models import SyncRun
from tests.factories import ConnectionFactory, ConversationFactory, MessageFactory, UserFactory

pytestmark = pytest.mark.django_db


def url(name, *args):
    return reverse(name, args=["acme", *args])


def test_agents_get_403_on_every_management_page_and_write(client, acme_agent, acme_connection, acme_owner):
    client.force_login(acme_agent)
    member = Membership.objects.get(user=acme_owner)
    for method, path in [("get", url("connections")), ("get", url("members")), ("post", url("connection_add")),
                         ("post", url("connection_rename", acme_connection.pk)),
                         ("post", url("connection_filters", acme_connection.pk)),
                         ("post", url("connection_delete", acme_connection.pk)), ("post", url("member_add")),
                         ("post", url("member_role", member.pk)), ("post", url("member_remove", member.pk))]:
        assert getattr(client, method)(path, {"name": "x", "role": "agent"}).status_code == 403, path
    assert Connection.objects.unscoped().count() == 1 and Membership.objects.get(pk=member.pk).role == "owner"


@pytest.mark.smoke
def test_add_a_number_within_the_tenant_limit(client, acme, acme_owner, settings):
    settings.TENANT_MAX_NUMBERS = 2
    client.force_login(acme_owner)
    response = client.post(url("connection_add"), {"name": "Sales", "transport": "simulator"})
    assert response.status_code == 302
    conn = Connection.objects.unscoped().get(tenant=acme, name="Sales")
    assert conn.transport == "simulator" and conn.status == "new" and conn.desired_state == "connected"
    assert ConnectionEvent.objects.unscoped().filter(connection=conn, kind="added").exists()

    bad = client.post(url("connection_add"), {"name": "  ", "transport": "carrier-pigeon"})
    assert bad.status_code == 422
    assert "Give the number a name." in bad.content.decode() and "Choose one of: Simulator" in bad.content.decode()

    client.post(url("connection_add"), {"name": "Support", "transport": "simulator"})
    full = client.post(url("connection_add"), {"name": "Third", "transport": "simulator"})
    assert full.status_code == 422 and "the most allowed (2)" in full.content.decode()
    assert Connection.objects.unscoped().filter(tenant=acme).count() == 2
    assert b'data-testid="number-limit"' in client.get(url("connections")).content

    # A deleted number (history kept) frees its place.
    client.post(url("connection_delete", conn.pk), {})
    assert client.post(url("connection_add"), {"name": "Third", "transport": "simulator"}).status_code == 302


def test_rename_and_filters_with_a_replay(client, acme_owner, acme_connection, django_capture_on_commit_callbacks):
    client.force_login(acme_owner)
    assert client.post(url("connection_rename", acme_connection.pk), {"name": ""}).status_code == 422
    client.post(url("connection_rename", acme_connection.pk), {"name": "Front desk"})
    acme_connection.refresh_from_db()
    assert acme_connection.name == "Front desk"
    renamed = ConnectionEvent.objects.unscoped().get(connection=acme_connection, kind="renamed")
    assert renamed.detail == "Acme support → Front desk"

    app.conf.task_always_eager = True  # the replay task runs here, on commit (it is idempotent)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            client.post(url("connection_filters", acme_connection.pk), {"skip_groups": "on",
                                                                         "skip_status_broadcasts": "on", "replay": "on"})
    finally:
        app.conf.task_always_eager = False
    acme_connection.refresh_from_db()
    assert acme_connection.skip_groups and not acme_connection.skip_newsletters
    assert "skip_groups=on" in ConnectionEvent.objects.unscoped().get(connection=acme_connection, kind="filters_changed").detail
    assert SyncRun.objects.unscoped().filter(connection=acme_connection, kind="replay", finished_at__isnull=False).count() == 1
    bad = client.post(url("connection_filters", acme_connection.pk), {"skip_groups": "on", "bogus": "1"})
    assert bad.status_code == 302  # unknown fields are ignored; checkboxes are all optional


def test_delete_keeps_history_unless_the_name_is_typed(client, acme_owner, acme, nudges,
                                                       django_capture_on_commit_callbacks):
    keep = ConnectionFactory(tenant=acme, name="Old line", jid="5511970000001:1@s.whatsapp.net", status="connected")
    conv = ConversationFactory(connection=keep)
    MessageFactory(conversation=conv)
    client.force_login(acme_owner)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(url("connection_delete", keep.pk), {}).status_code == 302
    keep.refresh_from_db()
    assert keep.archived_at is not None and keep.desired_state == "logged_out"
    assert ("logout", keep.pk) in [(n["action"], n["connection_id"]) for n in nudges()]
    assert Conversation.objects.unscoped().filter(connection=keep).exists()  # history kept
    assert "Old line" not in client.get(url("connections")).content.decode()
    assert client.post(url("connection_rename", keep.pk), {"name": "x"}).status_code == 404  # gone from the pages

    purge = ConnectionFactory(tenant=acme, name="Spam line")
    ConversationFactory(connection=purge)
    wrong = client.post(url("connection_delete", purge.pk), {"purge": "on", "confirm": "spam line"})
    assert wrong.status_code == 422 and "type the number&#x27;s name exactly: Spam line" in wrong.content.decode()
    assert Connection.objects.unscoped().filter(pk=purge.pk, archived_at__isnull=True).exists()
    app.conf.task_always_eager = True  # the purge task runs here, on commit (tests/inbox/test_deletion.py: a worker)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            assert client.post(url("connection_delete", purge.pk), {"purge": "on", "confirm": "Spam line"}).status_code == 302
    finally:
        app.conf.task_always_eager = False
    assert not Connection.objects.unscoped().filter(pk=purge.pk).exists()
    assert not Conversation.objects.unscoped().filter(connection_id=purge.pk).exists()


def test_another_tenants_number_and_member_are_404(client, acme_owner, globex, globex_owner):
    theirs = ConnectionFactory(tenant=globex, name="Globex line")
    client.force_login(acme_owner)
    assert client.post(url("connection_rename", theirs.pk), {"name": "mine"}).status_code == 404
    assert client.post(url("connection_delete", theirs.pk), {}).status_code == 404
    their_member = Membership.objects.get(user=globex_owner)
    assert client.post(url("member_remove", their_member.pk)).status_code == 404
    assert client.post(url("member_role", their_member.pk), {"role": "agent"}).status_code == 404


def test_members_added_roles_changed_and_removed_under_the_owner_rules(client, acme, acme_owner, acme_agent):
    client.force_login(acme_owner)
    bad = client.post(url("member_add"), {"username": "x", "email": "nope", "role": "king", "password": "short"})
    html = bad.content.decode()
    assert bad.status_code == 422
    assert "3-150 letters" in html and "valid email" in html and "Select a valid choice" in html and "at least 10" in html
    taken = client.post(url("member_add"), {"username": "ACME-AGENT", "email": "a@example.com", "role": "agent",
                                            "password": "a-long-password-1"})
    assert "That username is taken" in taken.content.decode()
    assert client.post(url("member_add"), {"username": "newbie", "email": "newbie@example.com", "role": "admin",
                                           "password": "a-long-password-1"}).status_code == 302
    newbie = Membership.objects.get(tenant=acme, user__username="newbie")
    assert newbie.role == "admin" and newbie.user.check_password("a-long-password-1")
    assert "newbie@example.com" in client.get(url("members")).content.decode()

    owner = Membership.objects.get(user=acme_owner)
    last = client.post(url("member_role", owner.pk), {"role": "agent"})
    assert last.status_code == 422 and "at least one owner" in last.content.decode()
    assert client.post(url("member_remove", owner.pk)).status_code == 422

    # An admin cannot touch owners nor make owners.
    client.force_login(newbie.user)
    agent = Membership.objects.get(user=acme_agent)
    assert "Only an owner" in client.post(url("member_role", agent.pk), {"role": "owner"}).content.decode()
    assert "Only an owner" in client.post(url("member_remove", owner.pk)).content.decode()
    assert client.post(url("member_role", agent.pk), {"role": "admin"}).status_code == 302
    agent.refresh_from_db()
    assert agent.role == "admin"
    assert client.post(url("member_remove", agent.pk)).status_code == 302
    assert not Membership.objects.filter(pk=agent.pk).exists()
    assert UserFactory(username="acme-agent").pk == acme_agent.pk  # the account stays; only the membership went


def test_an_expired_qr_says_so_and_offers_pairing_again(client, acme_owner, acme_connection):
    Connection.objects.unscoped().filter(pk=acme_connection.pk).update(status="pairing", runner_id="r", pairing_code="2@x,y")
    from connections import actions as connection_actions

    connection_actions.do_mark_terminal(acme_connection.pk, "r", "qr_expired", "nobody scanned the QR code within 60 s")
    client.force_login(acme_owner)
    html = client.get(url("connections")).content.decode()
    assert 'data-testid="pair-expired"' in html and "nobody scanned the QR code within 60 s" in html
    assert "Pair with a QR code" in html  # the retry
