from django.contrib import admin
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from api import tokens, webhooks
from api.models import ApiToken, IdempotencyKey, WebhookDelivery, WebhookEndpoint


@admin.action(description=_("Revoke selected tokens"))
def revoke_tokens(modeladmin, request, queryset):
    live = list(queryset.filter(revoked_at__isnull=True))
    for token in live:
        tokens.do_revoke_token(token, user=request.user)
    modeladmin.message_user(request, ngettext("Revoked %(n)d token.", "Revoked %(n)d tokens.", len(live)) % {"n": len(live)})


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are made on the tenant's API page (the clear token exists only there, once)."""

    list_display = ["name", "tenant", "prefix", "scope", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["scope", ("revoked_at", admin.EmptyFieldListFilter), "tenant"]
    search_fields = ["name", "prefix", "tenant__name", "tenant__slug"]
    list_select_related = ["tenant"]
    readonly_fields = ["tenant", "prefix", "key_hash", "created_by", "created_at", "last_used_at", "revoked_at"]
    actions = [revoke_tokens]

    def has_add_permission(self, request):
        return False


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(admin.ModelAdmin):
    list_display = ["key", "tenant", "response_status", "message_id", "created_at"]
    search_fields = ["key", "tenant__slug"]
    list_select_related = ["tenant"]
    readonly_fields = ["tenant", "key", "request_hash", "token", "message", "response_status", "response_body",
                       "created_at"]
    raw_id_fields = ["token", "message"]

    def has_add_permission(self, request):
        return False


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ["url", "tenant", "enabled", "consecutive_failures", "disabled_reason", "created_at"]
    list_filter = ["enabled", "tenant"]
    search_fields = ["url", "tenant__name", "tenant__slug"]
    list_select_related = ["tenant"]
    raw_id_fields = ["tenant", "created_by"]
    readonly_fields = ["consecutive_failures", "created_at", "updated_at"]


@admin.action(description=_("Redeliver selected deliveries (as new log entries, same body)"))
def redeliver(modeladmin, request, queryset):
    rows = list(queryset)
    for delivery in rows:
        webhooks.do_redeliver(delivery, user=request.user)
    modeladmin.message_user(request, ngettext("Queued %(n)d redelivery.", "Queued %(n)d redeliveries.", len(rows))
                            % {"n": len(rows)})


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "event", "tenant", "endpoint", "status", "attempts", "response_code", "created_at",
                    "last_attempt_at"]
    list_filter = ["status", "event"]
    search_fields = ["endpoint__url", "ordering_key", "tenant__slug"]
    list_select_related = ["tenant", "endpoint"]
    raw_id_fields = ["endpoint", "redelivery_of", "tenant"]
    readonly_fields = ["payload", "data", "attempts", "last_attempt_at", "response_code", "error", "created_at"]
    actions = [redeliver]
