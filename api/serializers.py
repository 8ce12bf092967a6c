"""The API's representations: read-only views of the inbox's rows, and the few inputs it accepts.

Webhook payloads use the same serializers (api.webhooks), so an integration sees one shape per object.
"""

from rest_framework import serializers

from connections.models import Connection
from inbox.actions import MAX_REPLY_LENGTH
from inbox.models import Alert, Contact, ContactIdentity, Conversation, Message


class NumberSerializer(serializers.ModelSerializer):
    """A linked WhatsApp number (a connection) and its live status."""

    class Meta:
        model = Connection
        fields = ["id", "name", "status", "desired_state", "status_detail", "phone_number", "push_name",
                  "last_heartbeat_at", "last_connected_at", "paired_at", "created_at"]
        read_only_fields = fields


class IdentitySerializer(serializers.ModelSerializer):
    class Meta:
        model = ContactIdentity
        fields = ["jid", "kind"]
        read_only_fields = fields


class ContactSerializer(serializers.ModelSerializer):
    name = serializers.CharField(read_only=True)

    class Meta:
        model = Contact
        fields = ["id", "kind", "name", "display_name", "push_name", "phone_number", "created_at", "updated_at"]
        read_only_fields = fields


class ContactDetailSerializer(ContactSerializer):
    identities = IdentitySerializer(many=True, read_only=True)

    class Meta(ContactSerializer.Meta):
        fields = [*ContactSerializer.Meta.fields, "identities"]
        read_only_fields = fields


class AssigneeSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(read_only=True)


class ConversationSerializer(serializers.ModelSerializer):
    number_id = serializers.IntegerField(source="connection_id", read_only=True)
    contact = ContactSerializer(read_only=True)
    assignee = AssigneeSerializer(read_only=True, allow_null=True)

    class Meta:
        model = Conversation
        fields = ["id", "number_id", "chat_jid", "is_group", "status", "contact", "assignee", "last_message_at",
                  "last_message_preview", "unread_count", "created_at", "updated_at"]
        read_only_fields = fields


class MessageSerializer(serializers.ModelSerializer):
    conversation_id = serializers.IntegerField(read_only=True)
    number_id = serializers.IntegerField(source="connection_id", read_only=True)
    whatsapp_id = serializers.SerializerMethodField()
    body = serializers.SerializerMethodField()

    class Meta:
        model = Message
        fields = ["id", "conversation_id", "number_id", "whatsapp_id", "direction", "status", "type", "body",
                  "media_mimetype", "media_filename", "media_size", "sender_jid", "sender_name",
                  "quoted_external_id", "reactions", "sent_at", "edited_at", "deleted_at", "error", "created_at"]
        read_only_fields = fields

    def get_whatsapp_id(self, message) -> str | None:
        """WhatsApp's id once sent; null while an outbound message waits in the outbox (local id)."""
        return None if message.external_id.startswith("local-") else message.external_id

    def get_body(self, message) -> str:
        """Empty once the sender deleted it (the inbox keeps it for admins, the API does not hand it out)."""
        return "" if message.deleted_at else message.body


class AlertSerializer(serializers.ModelSerializer):
    number_id = serializers.IntegerField(source="connection_id", read_only=True, allow_null=True)

    class Meta:
        model = Alert
        fields = ["id", "kind", "cause", "message", "number_id", "times_raised", "created_at", "last_raised_at",
                  "resolved_at", "acknowledged_at"]
        read_only_fields = fields


def page_serializer(name: str, item):
    """A page of a keyset-paginated list: ``next_cursor`` is null on the last page."""
    return type(name, (serializers.Serializer,), {
        "results": item(many=True, read_only=True),
        "next_cursor": serializers.CharField(read_only=True, allow_null=True),
    })


NumberPage = page_serializer("NumberPage", NumberSerializer)
ContactPage = page_serializer("ContactPage", ContactSerializer)
ConversationPage = page_serializer("ConversationPage", ConversationSerializer)
MessagePage = page_serializer("MessagePage", MessageSerializer)
AlertPage = page_serializer("AlertPage", AlertSerializer)


# --- inputs ------------------------------------------------------------------------------------------

class AssignInput(serializers.Serializer):
    assignee_id = serializers.IntegerField(allow_null=True, min_value=1, max_value=2**63 - 1,
                                           help_text="a member's user id; null unassigns")


class StatusInput(serializers.Serializer):
    status = serializers.ChoiceField(choices=Conversation.Status.choices)


class SendTextInput(serializers.Serializer):
    text = serializers.CharField(max_length=MAX_REPLY_LENGTH, trim_whitespace=True, allow_blank=False)


class ErrorSerializer(serializers.Serializer):
    """Every error answer."""

    detail = serializers.CharField()
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False,
                                   help_text="input that did not validate: field name -> messages")

