"""/api/v1/: each view parses its input, resolves access through ``inbox.access`` and calls one selector or
action of the inbox. Nothing here is a second way of doing what the pages do.

The token names the tenant (``request.auth.tenant``); every read is ``for_tenant`` that tenant, so an id
of another tenant's row is the same 404 as a missing one.
"""

import hashlib

from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from api import serializers as s
from api.idempotency import MAX_KEY_LENGTH, KeyReused, request_fingerprint, run_idempotent
from connections.models import Connection
from inbox import actions, contacts, labels, media
from inbox.access import access_connection, access_contact, access_conversation, access_message
from inbox.models import Alert, Contact, MediaFile, Message
from inbox.selectors import (
    LIST_PAGE_SIZE,
    MAX_ID,
    ConversationFilters,
    conversation_list_for_agent,
    decode_cursor,
    tenant_member,
    thread_page,
)

CURSOR = OpenApiParameter("cursor", str, description="``next_cursor`` of the previous page")
ERRORS = {400: s.ErrorSerializer, 401: s.ErrorSerializer, 403: s.ErrorSerializer, 404: s.ErrorSerializer,
          429: s.ErrorSerializer}
READ_ERRORS = {k: v for k, v in ERRORS.items() if k != 400}


def _query(serializer_class, request) -> dict:
    """Validated query parameters (400 with the field's error otherwise)."""
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _input(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class CursorQuery(serializers.Serializer):
    cursor = serializers.CharField(required=False, max_length=80)

    def validate_cursor(self, value):
        if value and decode_cursor(value) is None:
            raise ValidationError("This cursor is malformed; use next_cursor from a previous page.")
        return value


class IdCursorQuery(serializers.Serializer):
    cursor = serializers.IntegerField(required=False, min_value=0, max_value=MAX_ID)


class TenantAPIView(APIView):
    @property
    def tenant(self):
        return self.request.auth.tenant


# --- numbers -----------------------------------------------------------------------------------------

class NumberList(TenantAPIView):
    @extend_schema(operation_id="numbers_list", responses={200: s.NumberPage, **READ_ERRORS}, tags=["numbers"],
                   summary="The tenant's numbers and their status")
    def get(self, request):
        rows = Connection.objects.for_tenant(self.tenant).filter(archived_at__isnull=True).order_by("name", "id")
        return Response({"results": s.NumberSerializer(rows, many=True).data, "next_cursor": None})


class NumberDetail(TenantAPIView):
    @extend_schema(operation_id="numbers_retrieve", responses={200: s.NumberSerializer, **READ_ERRORS},
                   tags=["numbers"], summary="One number's status")
    def get(self, request, pk):
        return Response(s.NumberSerializer(access_connection(self.tenant, pk)).data)


# --- contacts ----------------------------------------------------------------------------------------

class ContactQuery(IdCursorQuery):
    phone_number = serializers.CharField(required=False, max_length=32)


class ContactList(TenantAPIView):
    @extend_schema(operation_id="contacts_list", tags=["contacts"], summary="Contacts by id (keyset pages)",
                   parameters=[ContactQuery], responses={200: s.ContactPage, **ERRORS})
    def get(self, request):
        query = _query(ContactQuery, request)
        rows = Contact.objects.for_tenant(self.tenant)
        if query.get("phone_number"):
            rows = rows.filter(phone_number=query["phone_number"])
        if query.get("cursor"):
            rows = rows.filter(pk__gt=query["cursor"])
        rows = list(rows.order_by("id")[: LIST_PAGE_SIZE + 1])
        more = len(rows) > LIST_PAGE_SIZE
        rows = rows[:LIST_PAGE_SIZE]
        return Response({"results": s.ContactRecordSerializer(rows, many=True).data,
                         "next_cursor": str(rows[-1].pk) if more else None})


class ContactDetail(TenantAPIView):
    @extend_schema(operation_id="contacts_retrieve", tags=["contacts"], summary="One contact with its WhatsApp ids",
                   responses={200: s.ContactDetailSerializer, **READ_ERRORS})
    def get(self, request, pk):
        contact = access_contact(self.tenant, pk)
        return Response(s.ContactDetailSerializer(contact).data)

    @extend_schema(operation_id="contacts_update", tags=["contacts"], request=s.ContactUpdateInput,
                   summary="Edit our name for a contact, its notes and its attributes (as the contact panel does)",
                   responses={200: s.ContactDetailSerializer, **ERRORS})
    def patch(self, request, pk):
        contact = access_contact(self.tenant, pk)
        data = _input(s.ContactUpdateInput, request)
        attributes = data.get("attributes", contact.attributes or {})
        try:
            contacts.check_edit_contact(
                contact, name=data.get("name", contact.display_name), notes=data.get("notes", contact.notes),
                pairs=list(attributes.items()), user=None)
        except contacts.ContactRefused as refused:
            raise ValidationError({field: [message] for field, message in refused.errors.items()}) from None
        return Response(s.ContactDetailSerializer(access_contact(self.tenant, pk)).data)


# --- conversations -----------------------------------------------------------------------------------

class ConversationQuery(CursorQuery):
    status = serializers.ChoiceField(choices=ConversationFilters.STATUSES, required=False, default="open")
    assignee = serializers.CharField(required=False, max_length=20,
                                     help_text='"unassigned", or a member\'s user id')
    number_id = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    q = serializers.CharField(required=False, max_length=100, help_text="name, number or message text")
    label_id = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID,
                                        help_text="only conversations carrying this label")

    def validate_assignee(self, value):
        if value != "unassigned" and not (value.isascii() and value.isdigit() and 0 < int(value) <= MAX_ID):
            raise ValidationError('"unassigned" or a user id.')
        return value


class ConversationList(TenantAPIView):
    @extend_schema(operation_id="conversations_list", tags=["conversations"], parameters=[ConversationQuery],
                   summary="The inbox: newest activity first, with the inbox's filters",
                   responses={200: s.ConversationPage, **ERRORS})
    def get(self, request):
        query = _query(ConversationQuery, request)
        filters = ConversationFilters(status=query["status"], connection_id=query.get("number_id"),
                                      q=query.get("q", ""), label_id=query.get("label_id"))
        user = None
        assignee = query.get("assignee")
        if assignee == "unassigned":
            filters.scope = "unassigned"
        elif assignee:
            # "mine" of that member: the selector's own filter, asked for on their behalf.
            user = tenant_member(self.tenant, int(assignee))
            if user is None:
                return Response({"results": [], "next_cursor": None})
            filters.scope = "mine"
        page = conversation_list_for_agent(self.tenant, user, filters, query.get("cursor"))
        return Response({"results": s.ConversationSerializer(page.items, many=True).data,
                         "next_cursor": page.next_cursor})


class ConversationDetail(TenantAPIView):
    @extend_schema(operation_id="conversations_retrieve", tags=["conversations"],
                   responses={200: s.ConversationSerializer, **READ_ERRORS})
    def get(self, request, pk):
        return Response(s.ConversationSerializer(access_conversation(self.tenant, pk)).data)


class ConversationAssign(TenantAPIView):
    @extend_schema(operation_id="conversations_assign", tags=["conversations"], request=s.AssignInput,
                   summary="Assign to a member of the tenant, or unassign (null)",
                   responses={200: s.ConversationSerializer, **ERRORS})
    def post(self, request, pk):
        conversation = access_conversation(self.tenant, pk)
        data = _input(s.AssignInput, request)
        try:
            actions.check_assign_conversation(conversation, data["assignee_id"], acting_user=None)
        except actions.AssignRefused as refused:
            raise ValidationError({"assignee_id": [str(refused)]}) from None
        return Response(s.ConversationSerializer(access_conversation(self.tenant, pk)).data)


class ConversationStatus(TenantAPIView):
    @extend_schema(operation_id="conversations_set_status", tags=["conversations"], request=s.StatusInput,
                   summary="Open, pending or resolved", responses={200: s.ConversationSerializer, **ERRORS})
    def post(self, request, pk):
        conversation = access_conversation(self.tenant, pk)
        data = _input(s.StatusInput, request)
        actions.do_set_conversation_status(conversation, data["status"], acting_user=None)
        return Response(s.ConversationSerializer(access_conversation(self.tenant, pk)).data)


# --- labels ------------------------------------------------------------------------------------------

def _label_refused(refused) -> ValidationError:
    text = str(refused)
    return ValidationError({"color" if "color" in text else "name": [text]})


class LabelList(TenantAPIView):
    @extend_schema(operation_id="labels_list", tags=["labels"], summary="The tenant's labels, by name",
                   responses={200: s.LabelPage, **READ_ERRORS})
    def get(self, request):
        return Response({"results": s.LabelSerializer(labels.tenant_labels(self.tenant), many=True).data,
                         "next_cursor": None})

    @extend_schema(operation_id="labels_create", tags=["labels"], request=s.LabelInput,
                   summary="Create a label (names are unique per tenant, whatever their case)",
                   responses={201: s.LabelSerializer, **ERRORS})
    def post(self, request):
        data = _input(s.LabelInput, request)
        try:
            label = labels.check_create_label(self.tenant, data["name"], data["color"])
        except labels.LabelRefused as refused:
            raise _label_refused(refused) from None
        return Response(s.LabelSerializer(label).data, status=status.HTTP_201_CREATED)


class LabelDetail(TenantAPIView):
    @extend_schema(operation_id="labels_retrieve", tags=["labels"], responses={200: s.LabelSerializer, **READ_ERRORS})
    def get(self, request, pk):
        return Response(s.LabelSerializer(labels.access_label(self.tenant, pk)).data)

    @extend_schema(operation_id="labels_update", tags=["labels"], request=s.LabelUpdateInput,
                   summary="Rename or recolor a label", responses={200: s.LabelSerializer, **ERRORS})
    def patch(self, request, pk):
        label = labels.access_label(self.tenant, pk)
        data = _input(s.LabelUpdateInput, request)
        try:
            label = labels.check_update_label(label, name=data.get("name"), color=data.get("color"))
        except labels.LabelRefused as refused:
            raise _label_refused(refused) from None
        return Response(s.LabelSerializer(label).data)

    @extend_schema(operation_id="labels_delete", tags=["labels"], summary="Delete a label (conversations lose it)",
                   responses={204: None, **READ_ERRORS})
    def delete(self, request, pk):
        labels.do_delete_label(labels.access_label(self.tenant, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ConversationLabels(TenantAPIView):
    @extend_schema(operation_id="conversations_add_label", tags=["conversations", "labels"], request=s.AddLabelInput,
                   summary="Put a label on a conversation (again: no change)",
                   responses={200: s.ConversationSerializer, **ERRORS})
    def post(self, request, pk):
        conversation = access_conversation(self.tenant, pk)
        data = _input(s.AddLabelInput, request)
        try:
            label = labels.access_label(self.tenant, data["label_id"])
        except Http404:
            raise ValidationError({"label_id": ["No such label."]}) from None
        labels.do_add_label(conversation, label)
        return Response(s.ConversationSerializer(access_conversation(self.tenant, pk)).data)


class ConversationLabelDetail(TenantAPIView):
    @extend_schema(operation_id="conversations_remove_label", tags=["conversations", "labels"],
                   summary="Take a label off a conversation", responses={200: s.ConversationSerializer, **READ_ERRORS})
    def delete(self, request, pk, label_id):
        conversation = access_conversation(self.tenant, pk)
        labels.do_remove_label(conversation, labels.access_label(self.tenant, label_id))
        return Response(s.ConversationSerializer(access_conversation(self.tenant, pk)).data)


# --- messages ----------------------------------------------------------------------------------------

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
    description="Any unique string (a UUID): the same key again creates no second message and gets the first "
                "answer. The same key with another body is a 422.")


def _idempotent(request, tenant, path: str, fingerprint_data, send) -> Response:
    """``send()`` once per ``Idempotency-Key`` (api.idempotency), or plainly when the request has none."""
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        code, body, _ = send()
        return Response(body, status=code)
    if len(key) > MAX_KEY_LENGTH:
        raise ValidationError({"Idempotency-Key": [f"At most {MAX_KEY_LENGTH} characters."]})
    fingerprint = request_fingerprint("POST", path, fingerprint_data)
    try:
        code, body = run_idempotent(tenant, request.auth, key, fingerprint, send)
    except KeyReused as reused:
        return Response({"detail": str(reused)}, status=status.HTTP_422_UNPROCESSABLE_ENTITY)
    return Response(body, status=code)


def _sha256(upload) -> str:
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    return digest.hexdigest()


def _message(tenant, message_id):
    """A message with its media row, as lists read it."""
    return Message.objects.for_tenant(tenant).select_related("media").defer("media__ref").get(pk=message_id)


class MessageList(TenantAPIView):
    @extend_schema(operation_id="messages_list", tags=["messages"], parameters=[CursorQuery],
                   summary="A conversation's messages: the newest page, oldest first; next_cursor pages back",
                   responses={200: s.MessagePage, **ERRORS})
    def get(self, request, pk):
        conversation = access_conversation(self.tenant, pk)
        query = _query(CursorQuery, request)
        page = thread_page(conversation, before=query.get("cursor"))
        return Response({"results": s.MessageSerializer(page.items, many=True).data, "next_cursor": page.next_cursor})

    @extend_schema(operation_id="messages_send_text", tags=["messages"], request=s.SendTextInput,
                   parameters=[IDEMPOTENCY_KEY],
                   summary="Send a text: queued in the outbox, sent by the number's runner (status follows)",
                   responses={201: s.MessageSerializer, 422: s.ErrorSerializer, **ERRORS})
    def post(self, request, pk):
        conversation = access_conversation(self.tenant, pk)
        data = _input(s.SendTextInput, request)

        def send():
            try:
                message = actions.check_queue_reply(conversation, None, data["text"])
            except actions.ReplyRefused as refused:
                raise ValidationError({"text": [str(refused)]}) from None
            return status.HTTP_201_CREATED, s.MessageSerializer(message).data, message

        return _idempotent(request, self.tenant, f"conversations/{conversation.pk}/messages", data, send)


class MediaSend(TenantAPIView):
    parser_classes = [MultiPartParser]

    @extend_schema(operation_id="messages_send_media", tags=["messages"], request={"multipart/form-data": s.SendMediaInput},
                   parameters=[IDEMPOTENCY_KEY],
                   summary="Send a file (image, video, audio, document) with an optional caption, through the outbox",
                   description="The same limits as the inbox's reply box: the file's bytes decide its kind and the "
                               "size limit of that kind (MEDIA_MAX_*_BYTES). 201 with the message (status queued).",
                   responses={201: s.MessageSerializer, 422: s.ErrorSerializer, **ERRORS})
    def post(self, request, pk):
        conversation = access_conversation(self.tenant, pk)
        data = _input(s.SendMediaInput, request)
        upload = data["file"]

        def send():
            try:
                message = media.check_queue_media_reply(conversation, None, upload, data["caption"])
            except media.MediaRefused as refused:
                raise ValidationError({"file": [str(refused)]}) from None
            return status.HTTP_201_CREATED, s.MessageSerializer(_message(self.tenant, message.pk)).data, message

        return _idempotent(request, self.tenant, f"conversations/{conversation.pk}/media", {
            "caption": data["caption"], "filename": upload.name, "size": upload.size, "sha256": _sha256(upload)}, send)


class MessageMedia(TenantAPIView):
    @extend_schema(operation_id="messages_media_download", tags=["messages"],
                   summary="The stored file of a media message (404 until it is downloaded from WhatsApp)",
                   description="An attachment of the file's sniffed type (the message's media.mimetype).",
                   responses={(200, "*/*"): OpenApiTypes.BINARY, **READ_ERRORS})
    def get(self, request, pk):
        message = access_message(self.tenant, pk)
        item = MediaFile.objects.for_tenant(self.tenant).defer("ref").filter(message_id=message.pk).first()
        if item is None or item.state != MediaFile.State.FETCHED or not item.storage_name:
            raise NotFound("This message has no stored file (not a media message, or not downloaded yet).")
        # Always an attachment of its sniffed type, inert: nosniff and a sandboxing CSP, as the inbox serves it.
        response = FileResponse(media.open_stored(item.storage_name), as_attachment=True,
                                filename=media.download_name(item), content_type=item.mimetype or "application/octet-stream")
        if "Content-Length" not in response and item.size is not None:  # an S3 body: its length is the row's
            response["Content-Length"] = str(item.size)
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Security-Policy"] = "default-src 'none'; sandbox"
        return response


class MessageDetail(TenantAPIView):
    @extend_schema(operation_id="messages_retrieve", tags=["messages"], summary="One message (its status moves on)",
                   responses={200: s.MessageSerializer, **READ_ERRORS})
    def get(self, request, pk):
        return Response(s.MessageSerializer(access_message(self.tenant, pk)).data)


# --- alerts ------------------------------------------------------------------------------------------

class AlertQuery(IdCursorQuery):
    open = serializers.BooleanField(required=False, default=False, help_text="only alerts not resolved yet")


class AlertList(TenantAPIView):
    @extend_schema(operation_id="alerts_list", tags=["alerts"], parameters=[AlertQuery],
                   summary="The tenant's alerts, newest first", responses={200: s.AlertPage, **ERRORS})
    def get(self, request):
        query = _query(AlertQuery, request)
        rows = Alert.objects.for_tenant(self.tenant)
        if query["open"]:
            rows = rows.filter(resolved_at__isnull=True)
        if query.get("cursor"):
            rows = rows.filter(pk__lt=query["cursor"])
        rows = list(rows.order_by("-id")[: LIST_PAGE_SIZE + 1])
        more = len(rows) > LIST_PAGE_SIZE
        rows = rows[:LIST_PAGE_SIZE]
        return Response({"results": s.AlertSerializer(rows, many=True).data,
                         "next_cursor": str(rows[-1].pk) if more else None})


def exception_handler(exc, context):
    """DRF's answers, with one shape for every error: ``{"detail": ..., "errors": {field: [...]}}``
    (``errors`` only for input that did not validate), as the schema's Error says."""
    from rest_framework.views import exception_handler as drf_handler

    response = drf_handler(exc, context)
    if response is not None and isinstance(exc, ValidationError):
        errors = response.data if isinstance(response.data, dict) else {"non_field_errors": response.data}
        response.data = {"detail": "The request did not validate.", "errors": errors}
    return response
