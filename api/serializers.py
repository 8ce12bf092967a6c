"""The API's representations: read-only views of the inbox's rows, and the few inputs it accepts.

Webhook payloads use the same serializers (api.webhooks), so an integration sees one shape per object.
"""

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from connections.models import Connection
from inbox.actions import MAX_REPLY_LENGTH
from inbox.models import Alert, Contact, ContactIdentity, Conversation, ConversationLabel, Label, MediaFile, Message


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


class ContactRecordSerializer(ContactSerializer):
    """A contact with what the team keeps about it (the inbox's contact panel): ``name_locked`` (our name
    set by an agent or the API: the sync's names no longer replace it), ``notes``, ``attributes``."""

    attributes = serializers.DictField(child=serializers.CharField(), read_only=True,
                                       help_text="the team's key/value pairs (CPF, order number...)")

    class Meta(ContactSerializer.Meta):
        fields = [*ContactSerializer.Meta.fields, "name_locked", "notes", "attributes"]
        read_only_fields = fields


class ContactDetailSerializer(ContactRecordSerializer):
    identities = IdentitySerializer(many=True, read_only=True)

    class Meta(ContactRecordSerializer.Meta):
        fields = [*ContactRecordSerializer.Meta.fields, "identities"]
        read_only_fields = fields


class AssigneeSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(read_only=True)


class LabelSerializer(serializers.ModelSerializer):
    """A tenant's label for conversations."""

    class Meta:
        model = Label
        fields = ["id", "name", "color", "created_at"]
        read_only_fields = fields


class ConversationLabelSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    color = serializers.CharField(read_only=True)


class ConversationSerializer(serializers.ModelSerializer):
    number_id = serializers.IntegerField(source="connection_id", read_only=True)
    contact = ContactSerializer(read_only=True)
    assignee = AssigneeSerializer(read_only=True, allow_null=True)
    labels = serializers.SerializerMethodField()

    class Meta:
        model = Conversation
        fields = ["id", "number_id", "chat_jid", "is_group", "status", "contact", "assignee", "labels",
                  "last_message_at", "last_message_preview", "unread_count", "created_at", "updated_at"]
        read_only_fields = fields

    @extend_schema_field(ConversationLabelSerializer(many=True))
    def get_labels(self, conversation) -> list:
        """The labels on it, by name (prefetched for lists: ``inbox.labels.labels_prefetch``)."""
        if "label_links" in getattr(conversation, "_prefetched_objects_cache", {}):
            links = conversation.label_links.all()
        else:  # one conversation (a detail answer): one query
            links = ConversationLabel.objects.for_tenant(conversation.tenant_id).filter(
                conversation_id=conversation.pk).select_related("label").order_by("label__name")
        return [{"id": link.label_id, "name": link.label.name, "color": link.label.color} for link in links]


class MediaSerializer(serializers.Serializer):
    """The file of a media message. ``download_url`` (this API, same token) serves the bytes once
    ``state`` is ``fetched``; ``mimetype`` and ``size`` are those of the stored bytes (sniffed), until then
    what WhatsApp announced."""

    kind = serializers.CharField(read_only=True, help_text="image, video, audio, document, sticker")
    state = serializers.ChoiceField(choices=MediaFile.State.choices, read_only=True)
    mimetype = serializers.CharField(read_only=True)
    size = serializers.IntegerField(read_only=True, allow_null=True)
    filename = serializers.CharField(read_only=True)
    download_url = serializers.CharField(read_only=True, allow_null=True,
                                         help_text="path of GET /api/v1/messages/{id}/media/; null until stored")


class MessageSerializer(serializers.ModelSerializer):
    conversation_id = serializers.IntegerField(read_only=True)
    number_id = serializers.IntegerField(source="connection_id", read_only=True)
    whatsapp_id = serializers.SerializerMethodField()
    body = serializers.SerializerMethodField()
    media = serializers.SerializerMethodField()

    class Meta:
        model = Message
        fields = ["id", "conversation_id", "number_id", "whatsapp_id", "direction", "status", "type", "body",
                  "media_mimetype", "media_filename", "media_size", "media", "sender_jid", "sender_name",
                  "quoted_external_id", "reactions", "sent_at", "edited_at", "deleted_at", "error", "created_at"]
        read_only_fields = fields

    @extend_schema_field(MediaSerializer(allow_null=True))
    def get_media(self, message) -> dict | None:
        """The media file of a media message (null for text); select_related("media") for lists."""
        try:
            media = message.media
        except MediaFile.DoesNotExist:
            return None
        fetched = media.state == MediaFile.State.FETCHED and bool(media.storage_name)
        return {"kind": media.kind, "state": media.state,
                "mimetype": media.mimetype or media.declared_mimetype,
                "size": media.size if media.size is not None else media.declared_size,
                "filename": media.filename,
                "download_url": reverse("api-message-media", args=[message.pk]) if fetched else None}

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
ContactPage = page_serializer("ContactPage", ContactRecordSerializer)
ConversationPage = page_serializer("ConversationPage", ConversationSerializer)
MessagePage = page_serializer("MessagePage", MessageSerializer)
AlertPage = page_serializer("AlertPage", AlertSerializer)
LabelPage = page_serializer("LabelPage", LabelSerializer)


# --- inputs ------------------------------------------------------------------------------------------

class AssignInput(serializers.Serializer):
    assignee_id = serializers.IntegerField(allow_null=True, min_value=1, max_value=2**63 - 1,
                                           help_text="a member's user id; null unassigns")


class StatusInput(serializers.Serializer):
    # Not snoozed: a snooze needs its time and its wake-up (inbox.snooze); a bare status would never wake.
    status = serializers.ChoiceField(choices=[c for c in Conversation.Status.choices
                                              if c[0] != Conversation.Status.SNOOZED])


class SendTextInput(serializers.Serializer):
    text = serializers.CharField(max_length=MAX_REPLY_LENGTH, trim_whitespace=True, allow_blank=False)


class LabelInput(serializers.Serializer):
    name = serializers.CharField(max_length=50, trim_whitespace=True, allow_blank=False)
    color = serializers.ChoiceField(choices=Label.Color.choices, required=False, default=Label.Color.GRAY)


class LabelUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=50, trim_whitespace=True, allow_blank=False, required=False)
    color = serializers.ChoiceField(choices=Label.Color.choices, required=False)


class AttributesField(serializers.DictField):
    """``{key: text}``; a null value is an empty one (drops the key). The errors are one list for the field
    (the API's error shape), not one per key."""

    child = serializers.CharField(allow_blank=True, trim_whitespace=False)

    def run_child_validation(self, data):
        values = {}
        for key, value in data.items():
            if value is None:
                value = ""
            elif isinstance(value, bool) or not isinstance(value, str | int | float):
                raise serializers.ValidationError(f"The value of {str(key)[:60]!r} must be text.")
            values[str(key)] = str(value)
        return values


class ContactUpdateInput(serializers.Serializer):
    """What an agent edits on the contact panel; a field left out keeps its value. Validated as there
    (``inbox.contacts.check_edit_contact``)."""

    name = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                 help_text="our name for the contact (it then stays, whatever WhatsApp says); "
                                           "empty hands the name back to WhatsApp's")
    notes = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                  help_text="free text, at most 4,000 characters")
    attributes = AttributesField(
        required=False,
        help_text="the whole set of key/value pairs (replaces the stored one; an empty value drops its key): "
                  "at most 30, keys of up to 40 letters, digits, spaces and . - / #, unique whatever their case, "
                  "values of up to 500 characters; a key CPF must hold a valid CPF")


class AddLabelInput(serializers.Serializer):
    label_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1, help_text="one of the tenant's labels")


class SendMediaInput(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=False, use_url=False,
                                 help_text="the file; its bytes decide what it is sent as (image, video, audio, "
                                           "or a document) and the size limit that applies")
    caption = serializers.CharField(max_length=MAX_REPLY_LENGTH, required=False, allow_blank=True, default="")


class ErrorSerializer(serializers.Serializer):
    """Every error answer."""

    detail = serializers.CharField()
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False,
                                   help_text="input that did not validate: field name -> messages")

