"""Django admin for the journal, sync runs, waiting operations and LID mappings (platform admins)."""

from django.contrib import admin, messages
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from inbox.exports import export_as_csv
from sync.actions import do_index_search_backlogs, do_reprocess_events
from sync.models import JidMapping, PendingOperation, RawEvent, SearchBacklog, SyncRun


class HasErrorFilter(admin.SimpleListFilter):
    title = "error"
    parameter_name = "has_error"

    def lookups(self, request, model_admin):
        return [("yes", "With an error"), ("no", "Without an error")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(error="")
        if self.value() == "no":
            return queryset.filter(error="")
        return queryset


@admin.register(RawEvent)
class RawEventAdmin(admin.ModelAdmin):
    list_display = ("id", "connection", "event_name", "state", "attempts", "received_at", "processed_at", "short_error")
    list_filter = ("state", HasErrorFilter, "event_name", "connection__tenant")
    search_fields = ("error", "event_name", "digest", "=connection__id")
    list_select_related = ("connection",)
    date_hierarchy = "received_at"
    ordering = ("-id",)
    actions = ["reprocess"]
    readonly_fields = ("tenant", "connection", "event_name", "digest", "received_at", "processed_at", "attempts",
                       "next_attempt_at", "sync_run", "created_at", "payload_size", "decoded_payload")
    exclude = ("payload",)

    @admin.display(description=_("error"))
    def short_error(self, obj):
        return obj.error[:120]

    @admin.display(description=_("payload size (bytes)"))
    def payload_size(self, obj):
        return len(obj.payload or b"")

    @admin.display(description=_("payload (decoded)"))
    def decoded_payload(self, obj):
        from sync.events_builder import EVENT_CLASSES

        cls = EVENT_CLASSES.get(obj.event_name)
        if cls is None:
            return f"unknown event name {obj.event_name!r}"
        try:
            text = str(cls.FromString(bytes(obj.payload)))
        except Exception as exc:  # shown to the admin, never raised
            return f"cannot decode: {exc}"
        return format_html("<pre style='white-space:pre-wrap;max-height:40em;overflow:auto'>{}</pre>", text[:20000])

    @admin.action(description=_("Reprocess selected events (idempotent)"))
    def reprocess(self, request, queryset):
        counts = do_reprocess_events(queryset)
        total = sum(counts.values())
        self.message_user(request, ngettext("%(n)d event requeued and processed for %(connections)d connection(s).",
                                            "%(n)d events requeued and processed for %(connections)d connection(s).",
                                            total) % {"n": total, "connections": len(counts)}, messages.SUCCESS)


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    list_display = ("id", "connection", "kind", "sync_type", "started_at", "finished_at", "progress", "chunks",
                    "received", "saved", "duplicates", "skipped_total", "failed", "refused_total", "discrepancy")
    list_filter = ("kind", "discrepancy", "connection__tenant")
    search_fields = ("=connection__id", "sync_type", "error")
    list_select_related = ("connection",)
    ordering = ("-started_at",)
    readonly_fields = [f.name for f in SyncRun._meta.fields]
    actions = [export_as_csv]
    export_fields = [*list_display, "error"]

    @admin.display(description=_("refused operations"))
    def refused_total(self, obj):
        return sum(obj.refused.values())


@admin.register(PendingOperation)
class PendingOperationAdmin(admin.ModelAdmin):
    list_display = ("id", "connection", "kind", "target_external_id", "chat_jid", "sender_jid", "from_me", "created_at")
    list_filter = ("kind",)
    search_fields = ("target_external_id", "chat_jid", "sender_jid")
    list_select_related = ("connection",)
    readonly_fields = ("tenant", "connection", "kind", "target_external_id", "data", "chat_jid", "sender_jid", "from_me",
                       "raw_event", "digest", "created_at")


@admin.register(JidMapping)
class JidMappingAdmin(admin.ModelAdmin):
    list_display = ("lid_jid", "pn_jid", "tenant", "created_at")
    search_fields = ("lid_jid", "pn_jid")
    list_select_related = ("tenant",)


@admin.register(SearchBacklog)
class SearchBacklogAdmin(admin.ModelAdmin):
    """History batches whose messages are not in the message-text search yet (sync.search_index)."""

    list_display = ("id", "connection", "messages", "after_id", "through_id", "created_at")
    list_filter = ("connection__tenant",)
    search_fields = ("=connection__id",)
    list_select_related = ("connection",)
    ordering = ("id",)
    readonly_fields = ("tenant", "connection", "messages", "after_id", "through_id", "created_at")
    actions = ["index_now"]

    @admin.action(description=_("Index these connections' backlogs now"))
    def index_now(self, request, queryset):
        indexed = do_index_search_backlogs(queryset.values_list("connection_id", flat=True))
        self.message_user(request, ngettext("%(n)d message added to the search.", "%(n)d messages added to the search.",
                                            indexed) % {"n": indexed}, messages.SUCCESS)
