"""/api/v1/: each view parses its input, resolves access through ``inbox.access`` and calls one selector or
action of the inbox. Nothing here is a second way of doing what the pages do.

The token names the tenant (``request.auth.tenant``); every read is ``for_tenant`` that tenant, so an id
of another tenant's row is the same 404 as a missing one.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from api import serializers as s
from api.idempotency import MAX_KEY_LENGTH, KeyReused, request_fingerprint, run_idempotent
from connections.models import Connection
from inbox import actions
from inbox.access import access_connection, access_contact, access_conversation, access_message
from inbox.models import Alert, Contact
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
        return Response({"results": s.ContactSerializer(rows, many=True).data,
                         "next_cursor": str(rows[-1].pk) if more else None})


class ContactDetail(TenantAPIView):
    @extend_schema(operation_id="contacts_retrieve", tags=["contacts"], summary="One contact with its WhatsApp ids",
                   responses={200: s.ContactDetailSerializer, **READ_ERRORS})
    def get(self, request, pk):
        contact = access_contact(self.tenant, pk)
        return Response(s.ContactDetailSerializer(contact).data)


# --- conversations -----------------------------------------------------------------------------------

class ConversationQuery(CursorQuery):
    status = serializers.ChoiceField(choices=ConversationFilters.STATUSES, required=False, default="open")
    assignee = serializers.CharField(required=False, max_length=20,
                                     help_text='"unassigned", or a member\'s user id')
    number_id = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    q = serializers.CharField(required=False, max_length=100, help_text="name, number or message text")

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
                                      q=query.get("q", ""))
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


# --- messages ----------------------------------------------------------------------------------------

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
    description="Any unique string (a UUID): the same key again creates no second message and gets the first "
                "answer. The same key with another body is a 422.")


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
        key = request.headers.get("Idempotency-Key", "").strip()

        def send():
            try:
                message = actions.check_queue_reply(conversation, None, data["text"])
            except actions.ReplyRefused as refused:
                raise ValidationError({"text": [str(refused)]}) from None
            return status.HTTP_201_CREATED, s.MessageSerializer(message).data, message

        if not key:
            code, body, _ = send()
            return Response(body, status=code)
        if len(key) > MAX_KEY_LENGTH:
            raise ValidationError({"Idempotency-Key": [f"At most {MAX_KEY_LENGTH} characters."]})
        fingerprint = request_fingerprint("POST", f"conversations/{conversation.pk}/messages", data)
        try:
            code, body = run_idempotent(self.tenant, request.auth, key, fingerprint, send)
        except KeyReused as reused:
            return Response({"detail": str(reused)}, status=status.HTTP_422_UNPROCESSABLE_ENTITY)
        return Response(body, status=code)


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
