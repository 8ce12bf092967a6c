"""An agent starts a conversation with a phone number (issue 15).

The number is validated with phonenumbers (a number without ``+`` is read in ``PHONE_DEFAULT_REGION``,
Brazil by default), and its JID is the sync engine's canonical one (``sync.identity.normalize_jid``): a
Brazilian mobile typed with or without its ninth digit is one line, one JID. Nothing is duplicated: the
contact is the one owning that JID, else the one with that phone number, else a new one; the
conversation is the number's existing chat with that JID, else the number's chat with the same contact
under another JID (a LID chat of the same person), else a new one. Nothing is sent until the agent
replies (the ordinary outbox).
"""

from __future__ import annotations

import logging

import phonenumbers
from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _

from inbox.models import Contact, ContactIdentity, Conversation
from sync.identity import PN_SERVER, e164, normalize_jid

logger = logging.getLogger(__name__)


class NewConversationRefused(ValueError):
    """The number (or the linked number) cannot start a conversation; the message says why."""


def parse_phone(text: str, region: str | None = None) -> str:
    """E.164 of a typed phone number ("+55 (11) 8765-4321" -> "+5511987654321"), or NewConversationRefused."""
    text = (text or "").strip()
    if not text or len(text) > 40:
        raise NewConversationRefused(_("Type a phone number, e.g. +55 11 98765-4321."))
    try:
        parsed = phonenumbers.parse(text, region or settings.PHONE_DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        raise NewConversationRefused(_("%(text)s is not a phone number.") % {"text": text}) from None
    number = e164(f"{parsed.country_code}{parsed.national_number}")  # the ninth digit of Brazilian mobiles
    if not number or not phonenumbers.is_valid_number(phonenumbers.parse(number)):
        raise NewConversationRefused(_("%(text)s is not a valid phone number.") % {"text": text})
    return number


def check_start_conversation(tenant, connection, phone_text: str, user=None) -> tuple[Conversation, bool]:
    """Validate, then start (or find) the conversation. Returns (conversation, created)."""
    if connection.archived_at is not None:
        raise NewConversationRefused(_("This number was deleted."))
    return do_start_conversation(tenant, connection, parse_phone(phone_text), user)


def do_start_conversation(tenant, connection, number: str, user=None) -> tuple[Conversation, bool]:
    from inbox import actions, events

    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    jid = normalize_jid(f"{number[1:]}@{PN_SERVER}")
    with transaction.atomic():
        existing = (Conversation.objects.for_tenant(tenant_id).filter(connection=connection, chat_jid=jid).first())
        if existing is not None:
            return existing, False
        identity = ContactIdentity.objects.for_tenant(tenant_id).select_related("contact").filter(jid=jid).first()
        contact = identity.contact if identity else (
            Contact.objects.for_tenant(tenant_id).filter(phone_number=number, kind=Contact.Kind.PERSON)
            .order_by("pk").first())
        if contact is not None:
            same_person = (Conversation.objects.for_tenant(tenant_id).filter(connection=connection, contact=contact,
                                                                               is_group=False).order_by("pk").first())
            if same_person is not None:  # e.g. their chat under a LID: one conversation per person and number
                return same_person, False
            if identity is None:
                ContactIdentity.objects.for_tenant(tenant_id).get_or_create(
                    jid=jid, defaults={"tenant_id": tenant_id, "contact": contact, "kind": ContactIdentity.Kind.PN})
        else:
            contact = actions.get_or_create_contact_for_jid(tenant_id, jid, phone_number=number)
        conversation = actions.get_or_create_conversation(connection, jid, contact)
        events.publish_conversations_on_commit(tenant_id, [conversation.pk])
    logger.info("inbox.conversation_started", extra={"conversation_id": conversation.pk, "connection_id": connection.pk,
                                                     "user_id": getattr(user, "pk", None)})
    return conversation, True
