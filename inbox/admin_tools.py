"""Django admin of the agent's tools (issue 15), imported by inbox/admin.py. Platform staff see every
tenant's rows here (inbox.middleware.StaffAdminScopeMiddleware), with the tenant as a filter."""

from django.contrib import admin

from inbox.exports import export_as_csv
from inbox.models import CannedResponse, ConversationLabel, Label, Note, NoteMention, Snooze, UserProfile


@admin.register(UserProfile)
class UserProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "time_zone"]
    search_fields = ["user__username", "time_zone"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]


@admin.register(Note)
class NoteAdmin(admin.ModelAdmin):
    list_display = ["id", "conversation", "author", "created_at", "tenant"]
    list_filter = ["tenant"]
    search_fields = ["body"]
    list_select_related = ["conversation", "author", "tenant"]
    raw_id_fields = ["conversation", "author"]
    autocomplete_fields = ["tenant"]
    show_full_result_count = False
    actions = [export_as_csv]


@admin.register(NoteMention)
class NoteMentionAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "note", "created_at", "read_at", "emailed_at", "tenant"]
    list_filter = ["tenant", ("read_at", admin.EmptyFieldListFilter)]
    list_select_related = ["user", "note", "tenant"]
    raw_id_fields = ["note", "user"]
    autocomplete_fields = ["tenant"]
    show_full_result_count = False


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    list_display = ["name", "color", "tenant", "created_at"]
    list_filter = ["tenant", "color"]
    search_fields = ["name"]
    list_select_related = ["tenant"]
    autocomplete_fields = ["tenant"]


@admin.register(ConversationLabel)
class ConversationLabelAdmin(admin.ModelAdmin):
    list_display = ["id", "conversation", "label", "added_by", "created_at", "tenant"]
    list_filter = ["tenant"]
    list_select_related = ["conversation", "label", "added_by", "tenant"]
    raw_id_fields = ["conversation", "label", "added_by"]
    autocomplete_fields = ["tenant"]
    show_full_result_count = False


@admin.register(Snooze)
class SnoozeAdmin(admin.ModelAdmin):
    list_display = ["conversation", "until", "snoozed_by", "tenant"]
    list_filter = ["tenant"]
    list_select_related = ["conversation", "snoozed_by", "tenant"]
    raw_id_fields = ["conversation", "snoozed_by"]
    autocomplete_fields = ["tenant"]


@admin.register(CannedResponse)
class CannedResponseAdmin(admin.ModelAdmin):
    list_display = ["shortcut", "tenant", "created_by", "created_at"]
    list_filter = ["tenant"]
    search_fields = ["shortcut", "body"]
    list_select_related = ["tenant", "created_by"]
    raw_id_fields = ["created_by"]
    autocomplete_fields = ["tenant"]
