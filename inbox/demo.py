"""Demo data for `make run` (and the browser tests): idempotent, so it can run on every start.

Everything is keyed on the database's unique keys (slug, username, (connection, chat_jid),
(connection, external_id)), so a second run finds every row and creates none.
"""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from connections.models import Connection
from inbox.actions import get_or_create_contact_for_jid, get_or_create_conversation
from inbox.formatting import message_preview
from inbox.models import Membership, Message, Tenant
from inbox.search import index_messages

DEMO_PASSWORD = "demo-pass-123"

TENANTS = {
    "acme": {
        "name": "Acme Inc.",
        "number": "5511900000001",
        "users": [("acme-admin", Membership.Role.OWNER), ("acme-agent", Membership.Role.AGENT)],
        "chats": [
            ("5511987650001", "Fernanda Costa", ["Hi! My order #1042 has not arrived yet.", "Can you check the tracking?"]),
            ("5521987650002", "Gabriel Martins", ["Do you ship to Rio de Janeiro?"]),
            ("5531987650003", "Helena Ribeiro", ["Thanks, the replacement worked *perfectly*."]),
        ],
    },
    "globex": {
        "name": "Globex Corporation",
        "number": "5511900000002",
        "users": [("globex-admin", Membership.Role.OWNER)],
        "chats": [
            ("5541987650004", "Diego Alves", ["Hello, I need an invoice for last month."]),
            ("5551987650005", "Elisa Rocha", ["Is the store open on Sunday?"]),
        ],
    },
}


def _user(username: str, *, superuser: bool = False):
    User = get_user_model()
    user, created = User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.com"})
    if created:
        user.set_password(DEMO_PASSWORD)
        user.is_staff = user.is_superuser = superuser
        user.save()
    return user


@transaction.atomic
def do_seed_demo() -> None:
    from axes.utils import reset as reset_login_lockouts

    _user("admin", superuser=True)
    for username in ["admin", *(u for spec in TENANTS.values() for u, _ in spec["users"])]:
        reset_login_lockouts(username=username)  # every `make run` starts with the demo logins usable
    now = timezone.now()
    for slug, spec in TENANTS.items():
        tenant, _ = Tenant.objects.get_or_create(slug=slug, defaults={"name": spec["name"]})
        for username, role in spec["users"]:
            Membership.objects.get_or_create(user=_user(username), tenant=tenant, defaults={"role": role})
        connection, _ = Connection.objects.for_tenant(tenant).get_or_create(
            tenant=tenant,
            name=f"{spec['name']} support",
            defaults={
                "transport": Connection.Transport.SIMULATOR,
                # Simulator numbers count as paired: the runner connects them on start.
                "jid": f"{spec['number']}:1@s.whatsapp.net",
                "phone_number": f"+{spec['number']}",
                "paired_at": now,
            },
        )
        for index, (number, name, texts) in enumerate(spec["chats"]):
            chat_jid = f"{number}@s.whatsapp.net"
            contact = get_or_create_contact_for_jid(tenant, chat_jid, display_name=name, push_name=name,
                                                    phone_number=f"+{number}")
            conversation = get_or_create_conversation(connection, chat_jid, contact)
            existing = set(
                Message.objects.for_tenant(tenant).filter(connection=connection, external_id__startswith=f"DEMO-{slug}-{index}-")
                .values_list("external_id", flat=True)
            )
            base = now - timedelta(hours=len(spec["chats"]) - index)
            new = [
                Message(
                    tenant=tenant,
                    conversation=conversation,
                    connection=connection,
                    external_id=f"DEMO-{slug}-{index}-{n}",
                    direction=Message.Direction.INBOUND,
                    status=Message.Status.RECEIVED,
                    body=text,
                    sender_jid=chat_jid,
                    sender_name=name,
                    sent_at=base + timedelta(minutes=n),
                )
                for n, text in enumerate(texts)
                if f"DEMO-{slug}-{index}-{n}" not in existing
            ]
            if new:
                Message.objects.bulk_create(new, ignore_conflicts=True)
                index_messages(Message.objects.for_tenant(tenant)
                               .filter(connection=connection, external_id__in=[m.external_id for m in new])
                               .values_list("id", flat=True))
                last = new[-1]
                conversation.last_message_at = last.sent_at
                conversation.last_message_preview = message_preview(last.body, last.type)
                conversation.unread_count += len(new)
                conversation.oldest_synced_at = conversation.oldest_synced_at or new[0].sent_at
                conversation.newest_synced_at = last.sent_at
                conversation.save()
