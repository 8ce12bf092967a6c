"""Django admin's deletes of numbers and tenants archive them (inbox.deletion); a typed confirmation purges.

``SafeDeleteAdmin`` replaces the admin's delete page with one offering "Archive" and "Purge" (the number's
name or the tenant's slug typed exactly), removes the bulk "Delete selected" action (it would cascade) in
favour of "Archive selected" and "Restore selected", and turns any other path into ``delete_model`` /
``delete_queryset`` into an archive. Purges run as a ``PurgeJob`` (Purge jobs in the admin show progress).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from inbox.deletion import DeletionRefused


class SafeDeleteAdmin(admin.ModelAdmin):
    """Subclasses say how to archive, restore and purge one object and what a purge would delete."""

    confirm_field = ""  # the attribute to type: "name" for numbers, "slug" for tenants

    def do_archive(self, request, obj) -> None:
        raise NotImplementedError

    def do_restore(self, request, obj) -> None:
        raise NotImplementedError

    def do_purge(self, request, obj, confirm: str):
        raise NotImplementedError

    def purge_counts(self, obj) -> list[tuple[str, int]]:
        return []

    def archive_help(self, obj) -> str:
        return ""

    # --- the delete page ---------------------------------------------------------------------------
    def delete_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, object_id)
        if obj is None:
            raise Http404
        if not self.has_delete_permission(request, obj):
            raise PermissionDenied
        error, status = "", 200
        if request.method == "POST":
            action = request.POST.get("action")
            if action == "archive":
                self.do_archive(request, obj)
                self.message_user(request, _("%(object)s was archived; nothing was deleted.") % {"object": obj})
                return redirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[obj.pk]))
            if action == "purge":
                try:
                    job = self.do_purge(request, obj, request.POST.get("confirm", ""))
                except DeletionRefused as refused:
                    error, status = str(refused), 422
                else:
                    self.message_user(request, _("%(object)s is being purged (purge job %(job)s shows its progress).")
                                      % {"object": obj, "job": job.pk}, messages.WARNING)
                    return redirect(reverse("admin:inbox_purgejob_change", args=[job.pk]))
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "object": obj, "error": error,
            "title": _("Delete %(object)s") % {"object": obj}, "archive_help": self.archive_help(obj),
            "purge_help": _("Deletes it and everything it holds, in batches, for good:"),
            "confirm_label": _("Type %(value)s to confirm") % {"value": getattr(obj, self.confirm_field)},
            "counts": self.purge_counts(obj), **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/safe_delete.html", context, status=status)

    # --- any other delete path archives ------------------------------------------------------------
    def delete_model(self, request, obj):
        if obj.archived_at is None:  # archiving again would move its archive time (a tenant restores by it)
            self.do_archive(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            if obj.archived_at is None:
                self.do_archive(request, obj)

    def get_actions(self, request):
        found = super().get_actions(request)
        found.pop("delete_selected", None)
        return found

    @admin.action(description=gettext_lazy("Archive selected (nothing is deleted)"))
    def archive_selected(self, request, queryset):
        archived = [obj for obj in queryset if obj.archived_at is None]
        for obj in archived:
            self.do_archive(request, obj)
        self.message_user(request, _("%(count)s archived; nothing was deleted.") % {"count": len(archived)})

    @admin.action(description=gettext_lazy("Restore selected"))
    def restore_selected(self, request, queryset):
        restored = 0
        for obj in queryset.filter(archived_at__isnull=False):
            try:
                self.do_restore(request, obj)
                restored += 1
            except DeletionRefused as refused:
                self.message_user(request, str(refused), messages.ERROR)
        self.message_user(request, _("%(count)s restored.") % {"count": restored})
