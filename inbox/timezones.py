"""Which time zone a page is shown in: the user's own zone if they set one, else their tenant's.

Times are stored in UTC (``USE_TZ``); only presentation is local. The zone is activated per request
(``django.utils.timezone.activate``): ``TimeZoneMiddleware`` for pages outside a tenant (the user's own
zone or ``settings.TIME_ZONE``) and ``inbox.resolver.tenant_view`` for tenant pages, which knows the
tenant and reads the user's profile in the same query as the membership (no extra query per page).
The middleware deactivates it after every response, so nothing leaks into the next request a thread serves.

Live fragments (inbox.events) are rendered without a request, by whichever process commits, and are
sent to every viewer of a conversation, whose zones may differ. They are rendered in UTC with machine
readable times (``<time datetime>``); static/inbox/live.js re-formats the time, the day (``data-day``) and
the day separator's label of every pushed message and list row in the page's zone (``<body data-tz>``).
See docs/decisions.md (ADR "Time zones of live fragments").
"""

from __future__ import annotations

import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _

# A tenant created for a team speaking one of these languages starts in this zone.
TIME_ZONE_BY_LANGUAGE = {"pt-br": "America/Sao_Paulo", "pt": "America/Sao_Paulo"}


def is_time_zone(name: str) -> bool:
    if not name or name != name.strip() or ".." in name or name.startswith("/"):
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def validate_time_zone(name: str) -> None:
    if name and not is_time_zone(name):
        raise ValidationError(_("Unknown time zone: %(name)s. Use an IANA name such as America/Sao_Paulo."),
                              params={"name": name}, code="invalid")


def default_tenant_time_zone(language: str | None = None) -> str:
    """A new tenant's zone: by its language (pt-BR: America/Sao_Paulo), else TENANT_DEFAULT_TIME_ZONE."""
    language = (language or settings.LANGUAGE_CODE or "").lower()
    return TIME_ZONE_BY_LANGUAGE.get(language) or settings.TENANT_DEFAULT_TIME_ZONE


def tenant_time_zone(tenant) -> str:
    zone = getattr(tenant, "time_zone", "") or ""
    return zone if is_time_zone(zone) else default_tenant_time_zone()


def user_time_zone(user) -> str:
    """The user's own zone, or "" (no profile, or none set). Reads ``user.inbox_profile`` (a query unless
    it was select_related)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return ""
    try:
        zone = user.inbox_profile.time_zone
    except Exception:  # noqa: BLE001 - RelatedObjectDoesNotExist: no profile yet
        return ""
    return zone if is_time_zone(zone) else ""


def viewer_time_zone(tenant, user) -> str:
    """The zone this user sees this tenant's pages in."""
    return user_time_zone(user) or tenant_time_zone(tenant)


def activate_for_tenant(tenant, user) -> str:
    zone = viewer_time_zone(tenant, user)
    timezone.activate(zoneinfo.ZoneInfo(zone))
    return zone


class TimeZoneMiddleware:
    """Activates the viewer's zone for every request and deactivates it afterwards.

    Tenant pages (views wrapped by ``tenant_view``) get theirs from the resolver, which has the tenant;
    other pages (the tenant picker, /ops/) the user's own zone if they set one, else settings.TIME_ZONE.
    Place after ``AuthenticationMiddleware``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()

    def process_view(self, request, view_func, view_args, view_kwargs):
        if getattr(view_func, "tenant_view", False):
            return None  # inbox.resolver.tenant_view activates the tenant's (or the user's) zone
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            zone = user_time_zone(user)
            if zone:
                timezone.activate(zoneinfo.ZoneInfo(zone))
        return None


def time_zone_choices() -> list[str]:
    """Every IANA zone this machine knows, sorted (the preferences page's choices)."""
    return sorted(z for z in zoneinfo.available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV/")))


def do_set_user_time_zone(user, zone: str) -> None:
    """The user's own zone ("" for their tenants' zones). The caller has validated it."""
    from inbox.models import UserProfile

    UserProfile.objects.update_or_create(user=user, defaults={"time_zone": zone})


def do_set_tenant_time_zone(tenant, zone: str) -> None:
    """The team's zone ("" for the deployment's default). The caller has validated it."""
    from inbox.models import Tenant

    Tenant.objects.filter(pk=tenant.pk).update(time_zone=zone)
    tenant.time_zone = zone
