from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db import models, transaction
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from inbox import actions, deletion
from inbox.admin_deletion import SafeDeleteAdmin
from inbox.exports import export_as_csv
from inbox.models import (
    Alert,
    AlertEmailOptOut,
    BackupRun,
    Contact,
    ContactIdentity,
    Conversation,
    GroupParticipant,
    MediaFile,
    Membership,
    Message,
    MessageRevision,
    MessageSearchEntry,
    PurgeJob,
    Tenant,
)
from inbox.purge import do_purge_conversations


@admin.display(description=_("body"))
def short_body(obj):
    return obj.body[:80]




class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


# Memberships and accounts decide what a live socket may receive: every change made here goes through
# an action that tells the users' open sockets to re-check (inbox.consumers), so a removed member or a
# demoted admin stops receiving at once, not at the next page load.


def _member_ids(tenants) -> list[int]:
    return list(Membership.objects.filter(tenant__in=tenants).values_list("user_id", flat=True))


@admin.register(Tenant)
class TenantAdmin(SafeDeleteAdmin):
    """Deleting a tenant here archives it (closed to its members, numbers logged out, everything kept);
    a purge needs its slug typed (inbox.deletion)."""

    list_display = ["name", "slug", "alert_webhook_url", "media_retention_days", "created_at", "archived_at"]
    list_filter = [("archived_at", admin.EmptyFieldListFilter)]
    readonly_fields = ["archived_at"]
    actions = ["archive_selected", "restore_selected"]
    confirm_field = "slug"
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]

    def save_formset(self, request, form, formset, change):
        if formset.model is not Membership:
            return super().save_formset(request, form, formset, change)
        concerned = set()
        for inline_form in formset.forms:
            if inline_form.has_changed() or inline_form in formset.deleted_forms:
                concerned.update([inline_form.initial.get("user"), inline_form.instance.user_id])
        with transaction.atomic():
            super().save_formset(request, form, formset, change)
            actions.do_notify_access_changed(concerned)

    # Archiving or purging closes the tenant to its members: their open sockets re-check at once.
    def do_archive(self, request, obj):
        with transaction.atomic():
            deletion.do_archive_tenant(obj, request.user)
            actions.do_notify_access_changed(_member_ids([obj]))

    def do_restore(self, request, obj):
        with transaction.atomic():
            deletion.check_restore_tenant(obj, request.user)
            actions.do_notify_access_changed(_member_ids([obj]))

    def do_purge(self, request, obj, confirm):
        with transaction.atomic():
            job = deletion.check_purge_tenant(obj, confirm, request.user)
            actions.do_notify_access_changed(_member_ids([obj]))
        return job

    def archive_help(self, obj):
        return _("Closes the workspace to its members and logs its numbers out; every row stays, and it can be "
                 "restored.")

    def purge_counts(self, obj):
        return deletion.tenant_counts(obj)


@admin.register(PurgeJob)
class PurgeJobAdmin(admin.ModelAdmin):
    """Confirmed purges and their progress (counts so far); records, read-only."""

    list_display = ["id", "kind", "target_label", "status", "requested_by", "created_at", "finished_at", "counts"]
    list_filter = ["kind", "status"]
    search_fields = ["target_label", "requested_by"]
    readonly_fields = [f.name for f in PurgeJob._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role", "tenant"]
    search_fields = ["user__username", "user__email", "tenant__name", "tenant__slug"]
    list_select_related = ["user", "tenant"]
    autocomplete_fields = ["tenant"]
    raw_id_fields = ["user"]

    def save_model(self, request, obj, form, change):
        actions.do_save_membership(obj, previous_user_id=form.initial.get("user") if change else None)

    def delete_model(self, request, obj):
        actions.do_remove_memberships([obj])

    def delete_queryset(self, request, queryset):
        actions.do_remove_memberships(queryset)


class UserAdmin(DjangoUserAdmin):
    """Django's user admin; a change to an account (deactivated, password set, deleted) re-checks its sockets."""

    def save_model(self, request, obj, form, change):
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            if change:
                actions.do_notify_access_changed([obj.pk])

    def delete_model(self, request, obj):
        with transaction.atomic():
            actions.do_notify_access_changed([obj.pk])
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            actions.do_notify_access_changed(list(queryset.values_list("pk", flat=True)))
            super().delete_queryset(request, queryset)

    def user_change_password(self, request, id, form_url=""):
        with transaction.atomic():
            response = super().user_change_password(request, id, form_url)
            if request.method == "POST" and response.status_code == 302:  # the password was set
                actions.do_notify_access_changed([int(id)])
        return response


admin.site.unregister(get_user_model())
admin.site.register(get_user_model(), UserAdmin)


class ContactIdentityInline(admin.TabularInline):
    model = ContactIdentity
    extra = 0
    fields = ["jid", "kind", "created_at"]
    readonly_fields = ["created_at"]


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["id", "display_name", "push_name", "phone_number", "kind", "tenant", "updated_at"]
    list_filter = ["kind", "tenant"]
    search_fields = ["display_name", "push_name", "phone_number", "identities__jid"]
    list_select_related = ["tenant"]
    autocomplete_fields = ["tenant"]
    inlines = [ContactIdentityInline]
    actions = [export_as_csv]
    show_full_result_count = False


@admin.register(ContactIdentity)
class ContactIdentityAdmin(admin.ModelAdmin):
    list_display = ["jid", "kind", "contact", "tenant", "created_at"]
    list_filter = ["kind", "tenant"]
    search_fields = ["jid", "contact__display_name", "contact__push_name"]
    list_select_related = ["contact", "tenant"]
    raw_id_fields = ["contact"]
    autocomplete_fields = ["tenant"]
    show_full_result_count = False


@admin.register(GroupParticipant)
class GroupParticipantAdmin(admin.ModelAdmin):
    list_display = ["group", "member", "is_admin", "tenant"]
    list_filter = ["is_admin", "tenant"]
    search_fields = ["group__display_name", "member__display_name", "member__phone_number"]
    list_select_related = ["group", "member", "tenant"]
    raw_id_fields = ["group", "member"]
    autocomplete_fields = ["tenant"]


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["id", "chat_jid", "contact", "connection", "status", "assignee", "unread_count", "last_message_at", "tenant"]
    list_filter = ["status", "is_group", "tenant", "connection"]
    search_fields = ["chat_jid", "contact__display_name", "contact__push_name", "contact__phone_number"]
    list_select_related = ["contact", "connection", "assignee", "tenant"]
    raw_id_fields = ["contact", "assignee"]
    autocomplete_fields = ["tenant", "connection"]
    date_hierarchy = "last_message_at"
    actions = [export_as_csv]
    show_full_result_count = False

    # The database refuses to delete a conversation that still has messages (ADR-11): the purge action
    # deletes its messages, revisions and search entries first, in one transaction.
    def delete_model(self, request, obj):
        do_purge_conversations([obj.pk])

    def delete_queryset(self, request, queryset):
        do_purge_conversations(queryset.values_list("pk", flat=True))


class MessageRevisionInline(admin.TabularInline):
    model = MessageRevision
    extra = 0
    fields = ["body", "replaced_at"]
    readonly_fields = ["body", "replaced_at"]
    can_delete = False


class MessageAdminForm(forms.ModelForm):
    """A message stays in its conversation's tenant and number (the database refuses it otherwise,
    ADR-11): said here as a form error instead of a failed save. (The admin supplies model and fields.)"""

    def clean(self):
        cleaned = super().clean()
        conversation = cleaned.get("conversation")
        tenant, connection = cleaned.get("tenant"), cleaned.get("connection")
        if conversation and tenant and connection and (
                conversation.tenant_id != tenant.pk or conversation.connection_id != connection.pk):
            raise forms.ValidationError(_("The conversation belongs to another tenant or number than this message."))
        return cleaned


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    form = MessageAdminForm
    list_display = ["id", "external_id", "conversation", "direction", "status", "type", short_body, "sent_at", "deleted_at"]
    list_filter = ["direction", "status", "type", "tenant", "connection"]
    # The search box's fields; get_search_results says how each is searched.
    search_fields = ["external_id", "sender_jid", "conversation__chat_jid", "body"]
    search_help_text = _("A message id, a JID, or words of the text.")
    list_select_related = ["conversation", "tenant", "connection"]
    raw_id_fields = ["conversation", "sender_user"]
    autocomplete_fields = ["tenant", "connection"]
    date_hierarchy = "sent_at"
    inlines = [MessageRevisionInline]
    actions = [export_as_csv]
    # The export carries the whole text (the changelist shows 80 characters of it).
    export_fields = ["id", "external_id", "tenant", "connection", "conversation", "direction", "status", "type",
                     "sender_jid", "sender_user", "body", "sent_at", "edited_at", "deleted_at"]
    export_select_related = ["conversation", "tenant", "connection", "sender_user"]
    show_full_result_count = False

    def get_search_results(self, request, queryset, search_term):
        """A message id or a JID exactly, or the text through the message-search table and its trigram
        index (ADR-10), as the inbox searches it: never a scan of every message body."""
        term = search_term.strip()
        if not term:
            return queryset, False
        matching = MessageSearchEntry.objects.unscoped().filter(body__icontains=term).values("message_id")
        return queryset.filter(Q(external_id=term) | Q(sender_jid=term) | Q(conversation__chat_jid=term)
                               | Q(pk__in=matching)), False


@admin.register(MessageRevision)
class MessageRevisionAdmin(admin.ModelAdmin):
    list_display = ["id", "message", "replaced_at", "tenant"]
    list_filter = ["tenant"]
    search_fields = ["body", "message__external_id"]
    list_select_related = ["message", "tenant"]
    raw_id_fields = ["message"]
    autocomplete_fields = ["tenant"]
    show_full_result_count = False


@admin.action(description=_("Download again (failed or expired media)"))
def retry_media(modeladmin, request, queryset):
    from inbox.media import do_retry_media

    retried = 0
    for item in queryset.filter(state__in=[MediaFile.State.FAILED, MediaFile.State.EXPIRED]).defer("ref"):
        do_retry_media(item)
        retried += 1
    modeladmin.message_user(request, ngettext("%(n)d media file queued for another download.",
                                              "%(n)d media files queued for another download.", retried) % {"n": retried})


@admin.register(MediaFile)
class MediaFileAdmin(admin.ModelAdmin):
    """Files of media messages (inbox.media): written by the runner and the reply box, read-only here."""

    list_display = ["id", "kind", "state", "mimetype", "size", "attempts", "message", "tenant", "fetched_at"]
    list_filter = ["state", "kind", "history", "tenant"]
    search_fields = ["sha256", "message__external_id", "filename"]
    list_select_related = ["message", "tenant"]
    exclude = ["ref"]
    readonly_fields = [f.name for f in MediaFile._meta.fields if f.name != "ref"]
    actions = [retry_media]
    show_full_result_count = False

    def get_queryset(self, request):
        return super().get_queryset(request).defer("ref")

    def has_add_permission(self, request):
        return False


@admin.register(MessageSearchEntry)
class MessageSearchEntryAdmin(admin.ModelAdmin):
    """What the inbox's message-text search reads (inbox.search); written only by the app."""

    list_display = ["message", "conversation", "tenant", short_body]
    list_filter = ["tenant"]
    list_select_related = ["message", "conversation", "tenant"]
    raw_id_fields = ["message", "conversation"]
    readonly_fields = ["message", "conversation", "tenant", "body"]
    show_full_result_count = False


    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.action(description=_("Acknowledge selected alerts"))
def acknowledge_alerts(modeladmin, request, queryset):
    pending = list(queryset.filter(acknowledged_at__isnull=True))
    for alert in pending:
        actions.do_acknowledge_alert(alert, request.user)
    updated = len(pending)
    modeladmin.message_user(request, ngettext("%(n)d alert acknowledged.", "%(n)d alerts acknowledged.", updated)
                            % {"n": updated})


@admin.register(AlertEmailOptOut)
class AlertEmailOptOutAdmin(admin.ModelAdmin):
    list_display = ["user", "created_at"]
    search_fields = ["user__username", "user__email"]
    raw_id_fields = ["user"]


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "message", "tenant", "connection", "cause", "times_raised", "created_at",
                    "last_raised_at", "resolved_at", "acknowledged_at", "acknowledged_by"]
    list_filter = ["kind", ("resolved_at", admin.EmptyFieldListFilter), ("acknowledged_at", admin.EmptyFieldListFilter),
                   ("tenant", admin.EmptyFieldListFilter), "tenant"]
    search_fields = ["message", "cause"]
    list_select_related = ["tenant", "connection", "acknowledged_by"]
    raw_id_fields = ["acknowledged_by"]
    autocomplete_fields = ["tenant", "connection"]
    actions = [acknowledge_alerts, export_as_csv]


@admin.register(BackupRun)
class BackupRunAdmin(admin.ModelAdmin):
    """Scheduled and asked-for backups (inbox.snapshot.backups); read-only: runs are records."""

    list_display = ["id", "tenant_slug", "status", "started_at", "finished_at", "size", "path", "error"]
    list_filter = ["status", "tenant_slug"]
    search_fields = ["tenant_slug", "path", "error"]
    readonly_fields = [f.name for f in BackupRun._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
from inbox import admin_tools  # noqa: E402, F401 - the agent tools' admins (issue 15)
