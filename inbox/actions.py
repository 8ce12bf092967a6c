"""Writes of the inbox core. ``do_*`` change state and validate nothing; ``check_*`` validate first.

Side effects (live events, tasks, runner nudges) are scheduled on commit from here, never from views.
"""

from django.db import IntegrityError, transaction

from inbox.models import Contact, ContactIdentity, Conversation


def get_or_create_conversation(connection, chat_jid: str, contact: Contact, *, is_group: bool = False) -> Conversation:
    """The conversation for (connection, chat_jid), created if missing; safe under concurrency.

    Two callers racing on the same chat both get the one row: the loser's INSERT hits the unique
    constraint inside a savepoint and it reads the winner's row instead. Never looks up by contact.
    """
    existing = Conversation.objects.filter(connection=connection, chat_jid=chat_jid).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return Conversation.objects.create(
                tenant_id=connection.tenant_id,
                connection=connection,
                chat_jid=chat_jid,
                contact=contact,
                is_group=is_group,
            )
    except IntegrityError:
        return Conversation.objects.get(connection=connection, chat_jid=chat_jid)


def identity_kind_for_jid(jid: str) -> str:
    server = jid.rpartition("@")[2]
    return {
        "s.whatsapp.net": ContactIdentity.Kind.PN,
        "c.us": ContactIdentity.Kind.PN,
        "lid": ContactIdentity.Kind.LID,
        "g.us": ContactIdentity.Kind.GROUP,
    }.get(server, ContactIdentity.Kind.OTHER)


def get_or_create_contact_for_jid(tenant, jid: str, **defaults) -> Contact:
    """The contact owning this JID in the tenant, created with one identity if missing; race-safe."""
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    identity = ContactIdentity.objects.select_related("contact").filter(tenant_id=tenant_id, jid=jid).first()
    if identity is not None:
        return identity.contact
    kind = identity_kind_for_jid(jid)
    try:
        with transaction.atomic():
            contact = Contact.objects.create(
                tenant_id=tenant_id,
                kind=Contact.Kind.GROUP if kind == ContactIdentity.Kind.GROUP else Contact.Kind.PERSON,
                **defaults,
            )
            ContactIdentity.objects.create(tenant_id=tenant_id, contact=contact, jid=jid, kind=kind)
            return contact
    except IntegrityError:
        return ContactIdentity.objects.select_related("contact").get(tenant_id=tenant_id, jid=jid).contact
