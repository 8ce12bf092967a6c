"""factory-boy factories: test data built the same way everywhere."""

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from connections.models import Connection
from inbox.models import Contact, ContactIdentity, Conversation, Membership, Message, Tenant
from inbox.search import index_messages

PASSWORD = "demo-pass-123"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Tenant {n}")
    slug = factory.Sequence(lambda n: f"tenant-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    tenant = factory.SubFactory(TenantFactory)
    role = Membership.Role.AGENT


class ConnectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Connection

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Number {n}")
    transport = Connection.Transport.SIMULATOR
    status = Connection.Status.NEW


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact
        skip_postgeneration_save = True

    tenant = factory.SubFactory(TenantFactory)
    display_name = factory.Sequence(lambda n: f"Customer {n}")
    phone_number = factory.Sequence(lambda n: f"+55119{n:08d}")

    @factory.post_generation
    def identity(obj, create, extracted, **kwargs):
        if create and obj.phone_number:
            ContactIdentity.objects.unscoped().get_or_create(
                tenant=obj.tenant,
                jid=f"{obj.phone_number.lstrip('+')}@s.whatsapp.net",
                defaults={"contact": obj, "kind": ContactIdentity.Kind.PN},
            )


class ConversationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Conversation

    connection = factory.SubFactory(ConnectionFactory)
    tenant = factory.LazyAttribute(lambda c: c.connection.tenant)
    contact = factory.SubFactory(ContactFactory, tenant=factory.SelfAttribute("..tenant"))
    chat_jid = factory.LazyAttribute(lambda c: f"{c.contact.phone_number.lstrip('+')}@s.whatsapp.net")


class MessageFactory(factory.django.DjangoModelFactory):
    """A stored message whose conversation's aggregates (last message and preview, synced window, unread count)
    move as the sync's batch moves them (``sync.aggregates``, ``sync.statements.update_conversation_aggregates``),
    so a page never shows a list row that disagrees with its thread. The first message of a conversation
    lists it at that message, as the sync's batch that creates a conversation does. ``live=False``: a
    history message (no unread count added)."""

    class Meta:
        model = Message
        skip_postgeneration_save = True

    conversation = factory.SubFactory(ConversationFactory)
    tenant = factory.LazyAttribute(lambda m: m.conversation.tenant)
    connection = factory.LazyAttribute(lambda m: m.conversation.connection)
    external_id = factory.Sequence(lambda n: f"3EB0{n:012X}")
    direction = Message.Direction.INBOUND
    status = Message.Status.RECEIVED
    body = factory.Sequence(lambda n: f"message {n}")
    sent_at = factory.LazyFunction(timezone.now)

    @factory.post_generation
    def searchable(obj, create, extracted, **kwargs):  # noqa: N805 - factory_boy's signature
        """Like every write path of the app, give the message its search entry (inbox.search)."""
        if create and extracted is not False:
            index_messages([obj.pk])

    @classmethod
    def _create(cls, model_class, *args, live=True, **kwargs):
        message = super()._create(model_class, *args, **kwargs)
        apply_aggregates(message, live=live)
        return message


def apply_aggregates(message: Message, *, live: bool = True) -> None:
    """Move ``message``'s conversation's aggregates through the product's path for a stored message: the
    batch's ``ConversationAggregate`` applied by ``update_conversation_aggregates``; a conversation without
    earlier messages first reset to one listed at this message (``reset_conversation_aggregates``)."""
    from sync.aggregates import ConversationAggregate, reset_conversation_aggregates
    from sync.records import MessageRecord
    from sync.statements import update_conversation_aggregates

    conversation = message.conversation
    cid = conversation.pk
    record = MessageRecord(external_id=message.external_id, chat_jid=conversation.chat_jid, sender_jid="",
                           from_me=message.direction == Message.Direction.OUTBOUND, is_group=conversation.is_group,
                           timestamp=message.sent_at, type=message.type, body=message.body, live=live)
    aggregate = ConversationAggregate()
    aggregate.add([record])
    first = not Message.objects.for_tenant(message.tenant_id).filter(conversation_id=cid).exclude(pk=message.pk).exists()
    if first:
        unread = Conversation.objects.for_tenant(message.tenant_id).filter(pk=cid).values_list("unread_count", flat=True)
        reset_conversation_aggregates([cid], {cid: message.sent_at}, {cid: unread.get()})
    update_conversation_aggregates({cid: aggregate})
    conversation.refresh_from_db(fields=["last_message_at", "last_message_preview", "oldest_synced_at",
                                         "newest_synced_at", "unread_count", "updated_at"])
