"""The one resolver of the current tenant for a request: URLs under ``/t/<slug>/``.

``tenant_view`` wraps a view taking ``(request, slug, ...)``: it sends anonymous users to login,
answers 404 to users who are not members of the tenant (the tenant's existence is not revealed),
403 to members whose role is too low, and sets ``request.tenant`` and ``request.membership``; the view
runs in ``tenant_scope(tenant)`` (plain queries of tenant-scoped models see only this tenant's rows)
with the viewer's time zone and language active (``inbox.timezones``: the user's own zone, else the tenant's).
A view's request parameters that do not validate (``inbox.forms.BadParameters``) are answered here
with a 400 page that says which value is wrong, never a 500. Every answer is marked
``Cache-Control: no-store, private`` (Django's never_cache): a tenant's pages must not be kept by a
shared proxy or by the browser's back/forward cache after logout.
"""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from inbox.access import access_tenant
from inbox.forms import BadParameters
from inbox.languages import activate_user_language
from inbox.models import Membership
from inbox.tenancy import tenant_scope
from inbox.timezones import activate_for_tenant


def tenant_view(view=None, *, manager_only=False):
    def decorate(fn):
        @wraps(fn)
        @never_cache
        def wrapper(request, slug, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            tenant, membership = access_tenant(request.user, slug)
            if manager_only and membership.role not in Membership.MANAGER_ROLES:
                raise PermissionDenied("Only owners and admins may do this.")
            request.tenant = tenant
            request.membership = membership
            request.time_zone = activate_for_tenant(tenant, membership.user)  # undone by TimeZoneMiddleware
            activate_user_language(request, membership.user)  # undone by LocaleMiddleware
            try:
                with tenant_scope(tenant):
                    return fn(request, slug, *args, **kwargs)
            except BadParameters as bad:
                return render(request, "inbox/bad_request.html",
                              {"errors": bad.form.errors, "slug": slug, "tenant": tenant, "membership": membership},
                              status=400)

        wrapper.tenant_view = True
        wrapper.manager_only = manager_only
        return wrapper

    return decorate(view) if view is not None else decorate
