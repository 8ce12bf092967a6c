"""Request middleware of the inbox app."""

from django.urls import NoReverseMatch, reverse

from inbox.tenancy import unscoped_scope


class StaffAdminScopeMiddleware:
    """Staff in the Django admin see every tenant: their requests run in ``unscoped_scope()``.

    Platform admins work across tenants by design (DESIGN.md); everyone else's requests stay outside any
    scope, so a plain query of a tenant-scoped model fails closed (``inbox.tenancy``), and tenant pages
    get their tenant's scope from the resolver (``inbox.resolver.tenant_view``). Place after
    ``AuthenticationMiddleware``. Admin responses are rendered before they are returned, so no query of
    a scoped model runs after the scope ends.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            prefix = reverse("admin:index")  # per request: the URLconf can be another (tests, urlconf routing)
        except NoReverseMatch:  # no admin in this URLconf
            return self.get_response(request)
        if request.path.startswith(prefix) and request.user.is_active and request.user.is_staff:
            with unscoped_scope():
                return self.get_response(request)
        return self.get_response(request)
