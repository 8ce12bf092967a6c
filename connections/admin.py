from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from connections import actions
from connections.models import Connection, ConnectionEvent
from inbox import deletion
from inbox.admin_deletion import SafeDeleteAdmin
from inbox.exports import export_as_csv


def _set_desired_states(queryset, desired: str) -> int:
    connections = list(queryset)
    actions.do_set_desired_states(connections, desired)
    return len(connections)


@admin.action(description=_("Reconnect selected numbers (desired state: connected, attempts reset)"))
def reconnect_connections(modeladmin, request, queryset):
    n = _set_desired_states(queryset, Connection.DesiredState.CONNECTED)
    modeladmin.message_user(request, ngettext("Asked the runners to reconnect %(n)d number.",
                                              "Asked the runners to reconnect %(n)d numbers.", n) % {"n": n})


@admin.action(description=_("Pause selected numbers (desired state: stopped)"))
def pause_connections(modeladmin, request, queryset):
    n = _set_desired_states(queryset, Connection.DesiredState.STOPPED)
    modeladmin.message_user(request, ngettext("Asked the runners to pause %(n)d number.",
                                              "Asked the runners to pause %(n)d numbers.", n) % {"n": n})


@admin.register(Connection)
class ConnectionAdmin(SafeDeleteAdmin):
    """Deleting a number here archives it (logged out, history kept); a purge needs its name typed."""

    list_display = [
        "name", "tenant", "transport", "status", "desired_state", "jid", "last_heartbeat_at", "runner_id",
        "lease_expires_at", "reconnect_attempts", "archived_at",
    ]
    list_filter = [("archived_at", admin.EmptyFieldListFilter), "status", "desired_state", "transport", "tenant"]
    search_fields = ["name", "jid", "phone_number", "tenant__name", "tenant__slug"]
    list_select_related = ["tenant"]
    autocomplete_fields = ["tenant"]
    readonly_fields = [
        "created_at", "updated_at", "last_heartbeat_at", "runner_id", "lease_expires_at", "paired_at", "recent_events",
    ]
    actions = [reconnect_connections, pause_connections, "archive_selected", "restore_selected", export_as_csv]
    confirm_field = "name"

    def do_archive(self, request, obj):
        actions.do_archive_connection(obj, request.user)

    def do_restore(self, request, obj):
        deletion.check_restore_connection(obj, request.user)

    def do_purge(self, request, obj, confirm):
        return deletion.check_purge_connection(obj, confirm, request.user)

    def archive_help(self, obj):
        return _("Logs the number out (the runner unlinks its session) and hides it from its team's pages; its "
                 "conversations, messages and journal stay, read-only, and it can be restored.")

    def purge_counts(self, obj):
        return deletion.connection_counts(obj)

    @admin.display(description=_("Recent state changes"))
    def recent_events(self, obj):
        # The last 20 only: a long-lived number accumulates thousands; the full history is in its own list.
        events = obj.events.order_by("-created_at")[:20] if obj.pk else []
        url = reverse("admin:connections_connectionevent_changelist") + f"?connection__id__exact={obj.pk}"
        return format_html(
            "<ul>{}</ul><a href='{}'>All events</a>",
            format_html_join("", "<li>{} {}: {}</li>", ((e.created_at, e.get_kind_display(), e.detail) for e in events)),
            url,
        )


@admin.register(ConnectionEvent)
class ConnectionEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "connection", "kind", "detail", "runner_id", "tenant"]
    list_filter = ["kind", "tenant", "connection"]
    search_fields = ["detail", "runner_id", "connection__name", "connection__jid"]
    list_select_related = ["connection", "tenant"]
    autocomplete_fields = ["tenant", "connection"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    actions = [export_as_csv]

    def has_change_permission(self, request, obj=None):
        return False
