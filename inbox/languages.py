"""Which language a page is shown in: the user's own choice if they made one, else the browser's.

``django.middleware.locale.LocaleMiddleware`` picks the browser's language (Accept-Language, among
``settings.LANGUAGES``) for every request, anonymous ones (the login page) included. A signed-in user who
chose a language on their preferences page (``UserProfile.language``) gets it instead: tenant pages
activate it in ``inbox.resolver.tenant_view`` (the profile comes in the membership's query, so no page pays
a query for it), other pages in ``UserLanguageMiddleware``.

Live fragments are rendered without a request, once per language (``inbox.events``); each socket
delivers the one in its page's language (``inbox.consumers``). E-mails use their recipient's language.
See docs/i18n.md.
"""

from __future__ import annotations

from django.conf import settings
from django.utils import translation


def language_codes() -> list[str]:
    return [code for code, _name in settings.LANGUAGES]


def supported_language(code: str | None) -> str:
    """``code`` if it is one of LANGUAGES (case-insensitive), else ""."""
    code = (code or "").strip().lower()
    return code if code in language_codes() else ""


def user_language(user) -> str:
    """The user's own language, or "" (no profile, or none chosen: the browser's). Reads
    ``user.inbox_profile`` (a query unless it was select_related or read before in this request)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return ""
    try:
        return supported_language(user.inbox_profile.language)
    except Exception:  # noqa: BLE001 - RelatedObjectDoesNotExist: no profile yet
        return ""


def activate_user_language(request, user) -> None:
    """The user's chosen language for the rest of this request (else LocaleMiddleware's choice stands)."""
    language = user_language(user)
    if language:
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()


def recipient_language(user) -> str:
    """The language of something sent to ``user`` outside a request (an e-mail): theirs, else the default."""
    return user_language(user) or settings.LANGUAGE_CODE


class UserLanguageMiddleware:
    """Activates a signed-in user's chosen language on pages outside a tenant (the tenant picker, /ops/).
    Tenant pages (``tenant_view``) do it themselves. Place after ``AuthenticationMiddleware`` and
    ``LocaleMiddleware`` (which deactivates the language after the response)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if getattr(view_func, "tenant_view", False):
            return None  # inbox.resolver.tenant_view activates it
        activate_user_language(request, getattr(request, "user", None))
        return None


def do_set_user_language(user, language: str) -> None:
    """The user's own language ("" for the browser's). The caller has validated it."""
    from inbox.models import UserProfile

    UserProfile.objects.update_or_create(user=user, defaults={"language": language})
